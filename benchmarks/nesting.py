"""Time and peak memory of extracting one deeply nested file, at growing depths.

    python benchmarks/nesting.py [--depths 1000,2000,4000,8000,16000,20000] [--kinds js_functions,...]

Each (kind, depth) runs `extract_kg` (the real path: classify, parse, query,
resolve, write Parquet) over a folder holding that one file, in a fresh
subprocess, so the peak resident memory (ru_maxrss) belongs to that file alone.
The `x2` columns are the ratio to the previous depth when depths double: about 2
means linear growth, about 4 quadratic. `skipped` is the file's reason in
files.parquet (e.g. `too_deep`), empty when it was extracted. Depths past the
caps of graphmer.extract.records (MAX_SYNTAX_DEPTH, MAX_NESTING) are skipped; to
see the growth below them, try `--depths 500,1000,2000,3900`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def js_functions(depth: int) -> tuple[str, str]:
    """Named functions inside named functions (the issue's 340 KB file at 20,000)."""
    opens = "".join(f"function f{i}(a) {{\n" for i in range(depth))
    return "deep.js", opens + "g(a);\n" + "}\n" * depth


def java_classes(depth: int) -> tuple[str, str]:
    """Member classes inside member classes, a method at the bottom."""
    opens = "".join(f"class C{i} {{\n" for i in range(depth))
    return "Deep.java", opens + "void m() { n(); }\n" + "}\n" * depth


def js_defs_in_blocks(depth: int) -> tuple[str, str]:
    """Deep syntax that defines nothing (blocks in a method), then `depth` definitions and `this.x`
    uses at the bottom: costs depth squared if each one asks tree-sitter for its parent."""
    body = "".join(f"/** @param {{T}} a */ function g{i}(a) {{}}\nthis.x{i} = a;\n" for i in range(depth))
    return "blocks.js", "class A { m(a) {\n" + "{\n" * depth + body + "}\n" * depth + "} }\n"


def python_self_in_brackets(depth: int) -> tuple[str, str]:
    """Python's deep syntax without indentation: nested lists, `self.x` and calls at the bottom."""
    body = "".join(f"self.x{i}, self.f{i}(),\n" for i in range(depth))
    return "deep.py", "class A:\n  def m(self):\n    x = " + "[\n" * depth + body + "]\n" * depth


def java_expressions(depth: int) -> tuple[str, str]:
    """Parenthesised expressions inside one method: deep syntax, one definition."""
    return "Expr.java", "class E { int f() { return " + "(\n" * depth + "1" + ")\n" * depth + "; } }\n"


def python_attribute_chain(depth: int) -> tuple[str, str]:
    """`a.b.b.b...()`: one call whose callee is an attribute chain `depth` links long (continued
    over lines, or the file would be skipped as minified)."""
    links = "\\\n".join(".b" * 50 for _ in range(depth // 50))
    return "chain.py", "def f():\n    a" + links + "()\n"


KINDS = {
    f.__name__: f
    for f in (
        js_functions,
        java_classes,
        js_defs_in_blocks,
        python_self_in_brackets,
        java_expressions,
        python_attribute_chain,
    )
}


def run_one(kind: str, depth: int) -> dict:
    """In this process: write the file, extract it, report time, memory and its row of files.parquet."""
    import pyarrow.parquet as pq

    from graphmer.config import ExtractConfig
    from graphmer.extract.pipeline import extract_kg

    name, source = KINDS[kind](depth)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "src")
        src.mkdir()
        (src / name).write_text(source)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        cfg = ExtractConfig(workers=1, max_file_bytes=50_000_000)
        extract_kg({"p": src}, Path(tmp, "kg"), cfg, progress=False)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        row = pq.read_table(Path(tmp, "kg", "files.parquet")).to_pylist()[0]
    return {
        "bytes": len(source.encode()),
        "seconds": seconds,
        "peak_mb": peak / 1024,
        "growth_mb": (peak - base) / 1024,
        "skipped": row["skipped"] or "",
    }


def measure(kind: str, depth: int, timeout: float) -> dict | str:
    """run_one in a fresh interpreter, or why it gave no figures (timed out, crashed)."""
    cmd = [sys.executable, __file__, "--one", kind, str(depth)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if out.returncode != 0:
        return "crashed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:80]
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depths", default="1000,2000,4000,8000,16000,20000", help="comma-separated depths")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of: {', '.join(KINDS)}")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per file before giving up")
    ap.add_argument("--one", nargs=2, metavar=("KIND", "DEPTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        return
    depths = [int(d) for d in args.depths.split(",")]
    head = f"{'kind':24} {'depth':>6} {'KB':>7} {'s':>8} {'x2':>5} {'peak MB':>8} {'+MB':>7} {'x2':>5}"
    print(head + "  skipped")
    for kind in args.kinds.split(","):
        prev = None
        for depth in depths:
            r = measure(kind, depth, args.timeout)
            if isinstance(r, str):
                print(f"{kind:24} {depth:>6}  {r}", flush=True)
                break
            t_ratio = m_ratio = ""
            if prev and depth == 2 * prev[0]:
                t_ratio = f"{r['seconds'] / max(prev[1]['seconds'], 1e-3):.1f}"
                m_ratio = f"{r['growth_mb'] / max(prev[1]['growth_mb'], 1.0):.1f}"
            print(
                f"{kind:24} {depth:>6} {r['bytes'] / 1e3:>7.0f} {r['seconds']:>8.2f} {t_ratio:>5} "
                f"{r['peak_mb']:>8.0f} {r['growth_mb']:>7.0f} {m_ratio:>5}  {r['skipped']}",
                flush=True,
            )
            prev = (depth, r)


if __name__ == "__main__":
    main()
