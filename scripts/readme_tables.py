"""Refresh the result tables of README.md from the files under metrics/ (`make readme`).

A table in the README sits between two markers naming its source file:

    <!-- table: metrics/eval_relations.md -->
    ...replaced by the file's contents...
    <!-- end table -->

so the README never holds a hand-copied number that a later run could contradict.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BLOCK = re.compile(r"(<!-- table: (?P<src>\S+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


def refresh(readme: Path, root: Path) -> int:
    text = readme.read_text()
    missing = [m["src"] for m in BLOCK.finditer(text) if not (root / m["src"]).is_file()]
    if missing:
        sys.exit(f"readme: {missing[0]} not found: run the pipeline first (`make repro`)")
    new, count = BLOCK.subn(lambda m: m[1] + (root / m["src"]).read_text().rstrip("\n") + "\n" + m[4], text)
    readme.write_text(new)
    return count


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    print(f"readme: {refresh(root / 'README.md', root)} tables refreshed")
