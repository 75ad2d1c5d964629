"""Byte-level BPE for code (HuggingFace `tokenizers`), trained on the training split only.

Pre-tokenization keeps identifiers whole (`self._cache_key` is `self`, `.`,
`_cache_key`), unlike the GPT-2 regex that splits at every underscore, so a
frequent identifier can become a single token. Unlike GPT-2 it never glues the
preceding space to an identifier: a name has one token form wherever it occurs
(`x: int`, `(int)`, a leaf group holding the tail `int`), so the model can copy a
tail from the code id for id. Byte-level BPE covers every byte:
decode(encode(x)) == x for any text, which the stage checks on every file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from graphmer import GraphmerError, atomic
from graphmer.config import TokenizerConfig

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(len(SPECIAL_TOKENS))
# What transformers calls them (tokenizer_config.json, special_tokens_map.json).
SPECIAL_TOKENS_MAP = dict(
    zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), SPECIAL_TOKENS)
)
# What the tokenizer keeps whole as an identifier: ASCII only (Python and JavaScript allow other
# letters, but a non-ASCII letter is pre-tokenized with punctuation, so it splits a name).
WORD_CHARS = "A-Za-z0-9_$"
IDENTIFIER_PATTERN = f"[A-Za-z_$][{WORD_CHARS}]*"
IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
# An identifier (never with a leading space: one token form everywhere), a number or a run of
# punctuation (each with one optional leading space), a run of whitespace. tokenizer.json stores
# this string: changing it changes every token.
PRETOKEN = rf"{IDENTIFIER_PATTERN}| ?[0-9]+| ?[^\s{WORD_CHARS}]+|\s+"


def new_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKEN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(
    texts: Iterable[str],
    cfg: TokenizerConfig,
    length: int | None = None,
    progress: bool = False,
) -> Tokenizer:
    """Train on a stream of texts (never held in memory at once)."""
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=progress,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=length)
    for i, special in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(special) == i, "special tokens must have ids 0..4"
    return tok


def leaf_ids(tok: Tokenizer, names: list[str], leaves: int) -> list[tuple[int, ...]]:
    """The leaf tokens of each tail name: its first `leaves` token ids, exactly the ids the name has
    where it occurs in the code (the one place that encodes tails, so samples, training and
    evaluation agree)."""
    return [tuple(e.ids[:leaves]) for e in tok.encode_batch(list(names))]


def leaf_ids_by_name(tok: Tokenizer, names: Iterable[str], leaves: int) -> dict[str, tuple[int, ...]]:
    """`leaf_ids` of each distinct name, by name (each name encoded once)."""
    unique = sorted(set(names))
    return dict(zip(unique, leaf_ids(tok, unique, leaves)))


def tail_leaf_ids(tok: Tokenizer, names: Mapping[str, str], leaves: int) -> dict[str, tuple[int, ...]]:
    """Each tail id of `names` (tail id -> its name: `graphmer.kg.names_of`) -> the `leaf_ids` of its
    name, each distinct name encoded once."""
    by_name = leaf_ids_by_name(tok, names.values(), leaves)
    return {t: by_name[name] for t, name in names.items()}


def save(tok: Tokenizer, path: str | Path) -> None:
    """tokenizer.json, and beside it what `transformers.AutoTokenizer.from_pretrained(folder)` reads
    to load it as a fast tokenizer with our special tokens."""
    folder = Path(path).parent
    atomic.write_text(path, tok.to_str())
    atomic.write_json(folder / "special_tokens_map.json", SPECIAL_TOKENS_MAP)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],  # what GraphMERT.encode takes
    }
    atomic.write_json(folder / "tokenizer_config.json", config | SPECIAL_TOKENS_MAP)


def load(path: str | Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises its own Exception subclass
        raise GraphmerError(f"cannot load tokenizer {path}: {err}") from err


def read_texts(paths: Iterable[Path]) -> Iterator[str]:
    for p in paths:
        yield p.read_bytes().decode("utf-8")


def text_stats(tok: Tokenizer, texts: Iterable[str], batch: int = 64) -> dict:
    """Tokens per line and per file, identifiers kept as one token, round-trip failures."""
    files = lines = tokens = idents = single = failures = 0
    buf: list[str] = []

    def flush() -> None:
        nonlocal files, lines, tokens, idents, single, failures
        for text, enc in zip(buf, tok.encode_batch(buf)):
            files += 1
            lines += text.count("\n") + (not text.endswith("\n"))
            tokens += len(enc.ids)
            whole = {(s, e) for s, e in enc.offsets}
            for m in IDENTIFIER.finditer(text):
                idents += 1
                s, e = m.span()
                single += (s, e) in whole or (s > 0 and text[s - 1] == " " and (s - 1, e) in whole)
            failures += tok.decode(enc.ids, skip_special_tokens=False) != text
        buf.clear()

    for text in texts:
        buf.append(text)
        if len(buf) == batch:
            flush()
    flush()
    return {
        "files": files,
        "tokens": tokens,
        "tokens_per_file": round(tokens / max(files, 1), 2),
        "tokens_per_line": round(tokens / max(lines, 1), 3),
        "identifier_single_token_share": round(single / max(idents, 1), 4),
        "roundtrip_failures": failures,
    }


def build(
    raw_dir: str | Path,
    split_path: str | Path,
    out_path: str | Path,
    cfg: TokenizerConfig,
    metrics_path: str | Path | None = None,
) -> dict:
    """Train on the training-split files of a fetched, split corpus; save; measure every split."""
    from graphmer.split import SPLITS, read_split

    splits = read_split(split_path)
    paths = {s: [Path(raw_dir) / p for p, sp in sorted(splits.items()) if sp == s] for s in SPLITS}
    if not paths["train"]:
        raise GraphmerError(f"no training files in {split_path}: the corpus is empty")
    tok = train_tokenizer(read_texts(paths["train"]), cfg, len(paths["train"]))
    metrics = {"vocab_size": tok.get_vocab_size(), "special_tokens": list(SPECIAL_TOKENS)}
    for split, files in paths.items():
        metrics[split] = text_stats(tok, read_texts(files))
    failures = sum(metrics[s]["roundtrip_failures"] for s in paths)
    if failures:
        raise GraphmerError(f"decode(encode(x)) != x on {failures} files: the tokenizer is not lossless")
    save(tok, out_path)
    if metrics_path is not None:
        atomic.write_json(metrics_path, metrics)
    return metrics
