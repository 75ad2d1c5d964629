"""Stage `card`: the trained model's card, models/README.md (Hugging Face reads it).

    dvc repro card

Generated from params.yaml, models/config.json and the run's metrics (corpus, kg, split,
train, eval, distill), so it always describes the model beside it.
"""

from pathlib import Path

from graphmer import guarded
from graphmer.card import write_card
from graphmer.config import load_section


def main() -> None:
    paths = load_section("paths")
    write_card(Path("params.yaml"), paths)
    print(f"card: {paths.models / 'README.md'}")


if __name__ == "__main__":
    guarded("card", main, __doc__)
