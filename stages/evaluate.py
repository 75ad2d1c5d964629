"""Stage `evaluate`: held-out metrics on the validation files (params.yaml:evaluate, samples, split).

    dvc repro evaluate       # after train; `dvc metrics diff` and `dvc plots diff` compare runs

Fails if a validation file's content occurs in training. Writes metrics/eval.json
(masked MLM/MNM accuracy; tail prediction MRR and Hits@1/3/10 of the model, the
model on code alone and a frequency baseline), metrics/eval_relations.{csv,md} and
metrics/eval_hits10/ (plot data).
"""

from graphmer import guarded
from graphmer.config import load_section
from graphmer.evaluate import evaluate


def main() -> None:
    m = evaluate(load_section("evaluate"), load_section("samples"), load_section("split"))
    tp = m["tail_prediction"]["overall"]
    print(
        f"evaluate: MLM acc {m['masked']['mlm'].get('acc', 0):.3f}; "
        f"tail MRR model {tp['model'].get('mrr', 0):.3f}, "
        f"code only {tp['code_only'].get('mrr', 0):.3f}, frequency {tp['frequency'].get('mrr', 0):.3f} "
        f"({tp['model']['triples']} held-out triples)"
    )


if __name__ == "__main__":
    guarded("evaluate", main, __doc__)
