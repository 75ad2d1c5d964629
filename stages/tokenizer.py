"""Stage `tokenizer`: byte-level BPE on the training-split files (params.yaml:tokenizer, split).

    dvc repro tokenizer        # or, outside DVC: python stages/tokenizer.py

Writes models/tokenizer.json (loads in transformers.PreTrainedTokenizerFast) and
metrics/tokenizer.json.
"""

from graphmer import guarded, tokenizer
from graphmer.config import load_section


def main() -> None:
    tok, split = load_section("tokenizer"), load_section("split")
    m = tokenizer.build(
        "data/raw",
        "data/kg/files.parquet",
        "models/tokenizer.json",
        tok.vocab_size,
        tok.min_frequency,
        split.val_fraction,
        split.seed,
        "metrics/tokenizer.json",
    )
    print(
        f"tokenizer: {m['vocab_size']} tokens; val {m['val']['tokens_per_line']} tokens/line, "
        f"{m['val']['identifier_single_token_share']:.1%} of identifiers one token"
    )


if __name__ == "__main__":
    guarded("tokenizer", main, __doc__)
