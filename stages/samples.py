"""Stage `samples`: leafy-chain windows of the corpus (params.yaml:samples, split).

    dvc repro samples          # or, outside DVC: python stages/samples.py

Writes data/samples/{train,val,tails,candidates}.parquet and metrics/samples.json.
"""

from graphmer import guarded
from graphmer.chains import Layout, build_samples
from graphmer.config import load_section


def main() -> None:
    cfg, split = load_section("samples"), load_section("split")
    m = build_samples(
        "data/raw",
        "data/kg",
        "models/tokenizer.json",
        "data/samples",
        Layout(cfg.roots, cfg.leaves, cfg.stride),
        split.val_fraction,
        split.seed,
        "metrics/samples.json",
    )
    print(
        f"samples: {m['train']['windows']} train / {m['val']['windows']} val windows, "
        f"{m['train']['anchored_heads_per_window']} anchored heads per window"
    )


if __name__ == "__main__":
    guarded("samples", main, __doc__)
