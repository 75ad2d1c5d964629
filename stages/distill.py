"""Stage `distill`: the static graph completed by the model (params.yaml:distill).

    dvc repro distill                               # after train (and evaluate)
    dvc exp run -S distill.max_questions=0          # every gap of the test files, not a sample

Fits, on dev, the scorer (the model alone or with the cheap rules, by dev MRR) and
per-relation isotonic calibrators; checks them on test facts hidden the way gaps are
(annotations deleted from the code), beside the rules alone fitted and calibrated the same
way (paired differences on the same questions); asks the gaps of the test files (untyped parameters,
fields and functions) and keeps the valid predictions. Writes data/distilled.parquet (static
triples of those files plus model triples with probabilities), models/calibration.json
(what `graphmer distill` applies), metrics/distill.json, metrics/distill.md and
metrics/distill_reliability.csv (plot data).
"""

from graphmer import guarded
from graphmer.config import load_section
from graphmer.distill import distill


def _f(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def main() -> None:
    paths = load_section("paths")
    m = distill(load_section("distill"), paths)
    test, d, chosen = m["test"], m["distilled"], m["scorer"]["chosen"]
    top = max(test["thresholds"], key=float)
    at, rules = test["thresholds"][top], test["rules"]["thresholds"][top]
    added = sum(v.get(top, 0) for v in d["added"].values())
    print(
        f"distill: scorer {chosen} (dev MRR {m['scorer']['dev_mrr'][chosen]:.3f}); test p>={top}: "
        f"precision {_f(at['precision'])}, coverage {_f(at['coverage'])}, ECE {_f(test['ece'])} "
        f"(rules alone: {_f(rules['precision'])}, {_f(rules['coverage'])}); "
        f"{sum(d['questions_asked'].values())} gaps asked, {added} triples at p>={top} "
        f"({sum(v['all'] for v in d['added'].values())} in all) -> {paths.distilled}"
    )


if __name__ == "__main__":
    guarded("distill", main, __doc__)
