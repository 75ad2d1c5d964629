"""Refresh the result tables of README.md from the files under metrics/ (`make readme`).

A table in the README sits between two markers naming its source: a file, whose contents
replace the block, `summary`, the one-row-per-stage table of the default run built from
the stages' metrics/*.json, or `resolution`, how the graph's tails were found (kg.json):

    <!-- table: metrics/eval_relations.md -->
    ...replaced by the file's contents...
    <!-- end table -->

so the README never holds a hand-copied number that a later run could contradict.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

BLOCK = re.compile(r"(<!-- table: (?P<src>\S+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


def refresh(readme: Path, root: Path) -> int:
    text = readme.read_text()
    files = [m["src"] for m in BLOCK.finditer(text) if m["src"] not in GENERATED]
    missing = [src for src in files if not (root / src).is_file()]
    if missing:
        sys.exit(f"readme: {missing[0]} not found: run the pipeline first (`make repro`)")

    def body(src: str) -> str:
        if src in GENERATED:
            return GENERATED[src](root / "metrics")
        return (root / src).read_text()

    new, count = BLOCK.subn(lambda m: m[1] + body(m["src"]).rstrip("\n") + "\n" + m[4], text)
    readme.write_text(new)
    return count


def summary(metrics: Path) -> str:
    """What each stage of the run gave, from its metrics file."""
    try:
        m = {n: json.loads((metrics / f"{n}.json").read_text()) for n in SUMMARY_FILES}
    except FileNotFoundError as err:
        sys.exit(f"readme: {err.filename} not found: run the pipeline first (`make repro`)")
    c, kg, sp, tok, sa, tr = m["corpus"], m["kg"], m["split"], m["tokenizer"], m["samples"], m["train"]
    tp, masked = m["eval"]["tail_prediction"], m["eval"]["masked"]
    best = tp["strongest_baseline"]
    d, t = m["distill"]["distilled"], m["distill"]["test"]
    top = max(t["thresholds"], key=float)
    added = {k: sum(per[k] for per in d["added"].values()) for k in ("all", top)}
    langs = ", ".join(f"{lang} {v['files']:,}" for lang, v in c["by_language"].items())
    rows = [
        ("fetch", f"{c['files']:,} source files ({langs}), {c['skipped_files']:,} skipped with a reason"),
        ("extract", f"{kg['entities']:,} entities (+{kg['external_entities']:,} external), "
         f"{kg['triples']:,} triples, {kg['mentions']:,} mentions"),
        ("split", f"{sp['files']['train']:,} train / {sp['files']['dev']:,} dev / {sp['files']['test']:,} "
         f"test files, {sp['files']['duplicate']} duplicates, "
         f"{sp['near_duplicate_groups']} near-duplicate groups"),
        ("tokenizer", f"{tok['vocab_size']:,} tokens; {tok['train']['identifier_single_token_share']:.0%} of "
         f"training identifiers one token; {tok['test']['roundtrip_failures']} test files not lossless"),
        ("samples", f"{sa['train']['windows']:,} train / {sa['dev']['windows']:,} dev / "
         f"{sa['test']['windows']:,} test windows"),
        ("train", f"{tr['step']} steps: dev MLM acc {tr['dev_mlm_acc']:.1%}, MNM acc {tr['dev_mnm_acc']:.1%} "
         "(training masks)"),
        ("evaluate", f"tail MRR {tp['overall']['model']['mrr']:.3f} (strongest rule {best} "
         f"{tp['overall'][best]['mrr']:.3f}, copy_name {tp['overall']['copy_name']['mrr']:.3f}); "
         f"MLM {masked['mlm']['acc']:.1%}, MNM {masked['mnm']['overall']['exact_match']:.1%}"),
        ("distill", f"{sum(d['questions_asked'].values()):,} gaps asked, {added['all']:,} triples added "
         f"({added[top]:,} at p >= {top}); held-out "
         f"precision {t['thresholds'][top]['precision']:.3f} at p >= {top} (coverage "
         f"{t['thresholds'][top]['coverage']:.3f}), ECE {t['ece']:.3f}"),
    ]
    return "| stage | result |\n|---|---|\n" + "".join(f"| {s} | {r} |\n" for s, r in rows)


SUMMARY_FILES = ("corpus", "kg", "split", "tokenizer", "samples", "train", "eval", "distill")


def resolution(metrics: Path) -> str:
    """How the graph's tails were found (metrics/kg.json): per language the `calls` whose tail the
    corpus defines, and the share of each resolution label over all triples."""
    path = metrics / "kg.json"
    if not path.is_file():
        sys.exit(f"readme: {path} not found: run the pipeline first (`make repro`)")
    kg = json.loads(path.read_text())
    lines = ["| language | triples | calls | calls to a corpus entity |", "|---|---|---|---|"]
    for lang, n in kg["triples_by_language"].items():
        calls = kg["triples_by_relation"]["calls"][lang]
        inside, share = kg["calls_in_corpus"][lang], kg["calls_in_corpus_share"][lang]
        lines.append(f"| {lang} | {n:,} | {calls:,} | {inside:,} ({share:.1%}) |")
    labels = kg["resolution_share"]
    lines += ["", "| " + " | ".join(labels) + " |", "|" + "---|" * len(labels)]
    lines.append("| " + " | ".join(f"{v:.1%}" for v in labels.values()) + " |")
    return "\n".join(lines) + "\n"


GENERATED = {"summary": summary, "resolution": resolution}


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    print(f"readme: {refresh(root / 'README.md', root)} tables refreshed")
