"""Stage `tokenizer`: byte-level BPE on the training-split files (params.yaml:tokenizer).

    dvc repro tokenizer        # or, outside DVC: python stages/tokenizer.py

Reads the split of data/split.parquet. Writes models/tokenizer.json (loads in
transformers.PreTrainedTokenizerFast) and metrics/tokenizer.json.
"""

from graphmer import guarded, tokenizer
from graphmer.config import load_section


def main() -> None:
    tok, paths = load_section("tokenizer"), load_section("paths")
    metrics = paths.metrics / "tokenizer.json"
    m = tokenizer.build(paths.raw, paths.split, paths.tokenizer, tok, metrics)
    print(
        f"tokenizer: {m['vocab_size']} tokens; dev {m['dev']['tokens_per_line']} tokens/line, "
        f"{m['dev']['identifier_single_token_share']:.1%} of identifiers one token"
    )


if __name__ == "__main__":
    guarded("tokenizer", main, __doc__)
