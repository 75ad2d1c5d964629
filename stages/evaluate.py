"""Stage `evaluate`: held-out metrics (params.yaml:evaluate, samples).

    dvc repro evaluate                          # after train: the reported numbers (test files)
    dvc exp run -S evaluate.split=dev           # tuning: the same on the dev files

Fails if a held-out file's content occurs in training or a training window carries a
triple of a non-training file. Writes metrics/eval.json (masked MLM/MNM accuracy; tail
prediction MRR and Hits@1/3/10 of the model, the model on code alone and the cheap
rules frequency, copy, name_lookup, copy_name), metrics/eval_relations.{csv,md} and
metrics/eval_hits10/ (plot data).
"""

from graphmer import guarded
from graphmer.config import load_section
from graphmer.evaluate import evaluate


def main() -> None:
    m = evaluate(load_section("evaluate"), load_section("samples"), load_section("paths"))
    tp = m["tail_prediction"]
    best = tp["strongest_baseline"]
    gain = tp["overall"]["gain"][f"model_vs_{best}"]
    print(
        f"evaluate: MLM acc {m['masked']['mlm'].get('acc', 0):.3f}; tail MRR model "
        f"{tp['overall']['model'].get('mrr', 0):.3f}, strongest rule {best} "
        f"{tp['overall'][best].get('mrr', 0):.3f} (model - rule {gain.get('mrr_diff', 0):+.3f} "
        f"[{gain.get('ci95_low', 0):+.3f}, {gain.get('ci95_high', 0):+.3f}]; "
        f"{tp['overall']['model']['triples']} held-out triples)"
    )


if __name__ == "__main__":
    guarded("evaluate", main, __doc__)
