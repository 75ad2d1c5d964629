"""Stage `samples`: leafy-chain windows of the corpus (params.yaml:samples).

    dvc repro samples          # or, outside DVC: python stages/samples.py

Reads the split of data/split.parquet. Writes data/samples/{train,dev,test,tails,candidates}.parquet
and metrics/samples.json.
"""

from graphmer import guarded
from graphmer.config import load_section
from graphmer.samples import build_samples


def main() -> None:
    cfg, paths = load_section("samples"), load_section("paths")
    m = build_samples(
        paths.raw,
        paths.kg,
        paths.tokenizer,
        paths.split,
        paths.samples,
        cfg,
        paths.metrics / "samples.json",
    )
    print(
        f"samples: {m['train']['windows']} train / {m['dev']['windows']} dev / {m['test']['windows']} test "
        f"windows, {m['train']['anchored_heads_per_window']} anchored heads per train window"
    )


if __name__ == "__main__":
    guarded("samples", main, __doc__)
