"""`graphmer predict`: the likeliest tails of (entity, relation) for a source file, seen in the corpus or not.

    graphmer predict path/to/shop.py --entity add --relation calls --top-k 5
    predict("path/to/shop.py", "add", "calls", 5)   # the same from Python

The model reads the code around the entity's definition alone (R roots, a quarter of them
before it, no graph: `ranking.code_window`) and ranks every tail of the relation in the
training graph (samples/candidates.parquet) plus every identifier of the file
(`ranking.answer`). The file, the model and the candidates table are checked first: each
problem is one line naming the file and the reason, and nothing large is read before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from graphmer import GraphmerError, one_line
from graphmer.checkpoint import load_model
from graphmer.config import ExtractConfig, PathsConfig
from graphmer.loader import word_starts
from graphmer.ranking import Candidates, Question, answer, code_window
from graphmer.samples import CANDIDATE_SCHEMA, CANDIDATES_TABLE, char_offsets, mention_tokens
from graphmer.tokenizer import IDENTIFIER, leaf_ids

TOP_K = 10  # tails shown unless asked for another number


@dataclass(frozen=True)
class Prediction:
    name: str
    score: float  # log-probability of the whole tail (length, vocabulary and copy path)
    source: str  # "graph": a tail of the relation in the training corpus graph; "file": a name in the file


def find_head(path: Path, data: bytes, entity: str) -> tuple[tuple[int, int], str, int]:
    """Byte span of the definition of `entity` in the file (a name, or a dotted suffix of its id),
    its id and line; a one-line error lists what the file defines when nothing matches."""
    from graphmer.extract.pipeline import EXTRACTORS
    from graphmer.extract.records import SkipExtraction
    from graphmer.languages import language_of

    lang = language_of(path.name)
    if lang is None:
        raise GraphmerError(f"{path}: not a Python, Java or JavaScript file")
    try:
        graph = EXTRACTORS[lang](path.name, data, path.stem if lang == "python" else path.name)
    except SkipExtraction as skip:  # nested past the extractor's caps
        raise GraphmerError(f"{path}: not extracted ({skip.reason})") from skip
    defined = [e for e in graph.entities if e.span is not None]
    for e in defined:
        if entity in (e.name, e.id) or e.id.endswith("." + entity):
            return e.span, e.id, e.start_line
    names = ", ".join(sorted({e.name for e in defined})[:8]) or "nothing"
    raise GraphmerError(f"entity {entity!r} is not defined in {path} (it defines: {names})")


def read_source(path: Path, max_bytes: int) -> tuple[bytes, str]:
    """A user's source file as bytes and text. Its size is checked before it is read whole, and
    at most one byte more is read, so a huge file (or one still growing) costs nothing."""
    if max_bytes <= 0:
        raise GraphmerError(f"--max-file-bytes must be > 0, got {max_bytes}")
    if not path.is_file():
        raise GraphmerError(f"{path}: no such file")
    too_big = f"{path} is larger than --max-file-bytes ({max_bytes} bytes)"
    size = path.stat().st_size
    if size > max_bytes:
        raise GraphmerError(f"{too_big}: it has {size} bytes")
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise GraphmerError(too_big)
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise GraphmerError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from err


# The columns predict reads, with the types the samples stage writes.
CANDIDATE_COLUMNS = ("relation", "name", "ids", "train_count")


def read_candidates(path: Path, vocab_size: int) -> pa.Table:
    """samples/candidates.parquet; a file that is not one (unreadable, a column missing or of another
    type, an empty value, a token id outside the vocabulary) is a one-line error naming it."""
    import pyarrow.parquet as pq

    schema = pa.schema([CANDIDATE_SCHEMA.field(name) for name in CANDIDATE_COLUMNS])
    try:
        table = pq.read_table(path, columns=list(CANDIDATE_COLUMNS)).cast(schema)
    except (OSError, pa.ArrowException) as err:
        raise GraphmerError(f"{path} is not a candidates table: {one_line(err)}") from err
    problem = _candidates_problem(table, vocab_size)
    if problem:
        raise GraphmerError(f"{path} is not a candidates table: {problem}")
    return table


def _candidates_problem(table: pa.Table, vocab_size: int) -> str | None:
    """What would crash or mislead the scoring further on: nulls, empty tails, ids the model's
    embedding cannot look up, negative counts (their log prior would be NaN)."""
    ids = pc.list_flatten(table["ids"])
    if any(table[c].null_count for c in CANDIDATE_COLUMNS) or ids.null_count:
        return "a value is null"
    if not len(table):
        return None
    if pc.min(pc.list_value_length(table["ids"])).as_py() < 1:
        return "a tail has no tokens"
    lo, hi = pc.min(ids).as_py(), pc.max(ids).as_py()
    if lo < 0 or hi >= vocab_size:
        return f"token id {lo if lo < 0 else hi} is outside the model's vocabulary of {vocab_size}"
    if pc.min(table["train_count"]).as_py() < 0:
        return "a train_count is negative"
    return None


def predict(
    path: str | Path,
    entity: str,
    relation: str,
    top_k: int = TOP_K,
    paths: PathsConfig = PathsConfig(),
    max_file_bytes: int = ExtractConfig.max_file_bytes,
    *,
    tokenizer: Path | None = None,
    candidates: Path | None = None,
) -> tuple[str, list[Prediction]]:
    """Top-k tails of (entity, relation) for a source file, ranked by the model on the file's code.

    Candidates are every tail of the relation in the training corpus graph plus every identifier
    of the file, so a name that static extraction could not resolve can still be proposed. A file
    over `max_file_bytes` (extraction's limit by default) is refused before it is read. The model
    is `paths.models`'s; `tokenizer` and `candidates` name files kept elsewhere than the table says
    (`paths.tokenizer`, the candidates of `paths.samples`)."""
    from graphmer.relations import RELATION_NAMES

    path = Path(path)
    if relation not in RELATION_NAMES:
        raise GraphmerError(f"unknown relation {relation!r} (known: {', '.join(RELATION_NAMES)})")
    r = RELATION_NAMES.index(relation)
    if top_k <= 0:
        raise GraphmerError("--top-k must be > 0")
    data, text = read_source(path, max_file_bytes)
    span, head_id, line = find_head(path, data, entity)
    candidates = Path(candidates or paths.samples / CANDIDATES_TABLE)
    if not candidates.is_file():
        raise GraphmerError(f"{candidates} not found: build the samples first (`dvc repro samples`)")
    model, tok = load_model(paths.models, tokenizer or paths.tokenizer)
    question = _question(tok, data, text, span, r, model.cfg.roots, model.cfg.leaves)
    known = Candidates.of(read_candidates(candidates, model.cfg.vocab_size), r, model.cfg.leaves)
    cands = _with_file_names(known, tok, text, model.cfg.leaves)
    with torch.inference_mode():
        (scores,) = answer(model, [question], [cands], graph=False, batch_size=model.cfg.leaves)
    order = torch.argsort(scores, descending=True)[:top_k].tolist()
    label = f"{head_id} (line {line})"
    return label, [
        Prediction(cands.names[i], float(scores[i]), "graph" if i < len(known) else "file") for i in order
    ]


def _question(tok, data: bytes, text: str, span: tuple[int, int], relation: int, R: int, L: int) -> Question:
    """The question of the head at bytes `span` of the file: its code window, nothing of the graph."""
    enc = tok.encode(text)
    ends = np.asarray([e for _, e in enc.offsets], dtype=np.int64)
    chars = char_offsets(data, text, np.asarray([span], dtype=np.int64))
    first, last = mention_tokens(ends, chars[:, 0], chars[:, 1])
    item, start = code_window(enc.ids, int(first[0]), R, L, word_starts(tok.get_vocab()))
    anchor = int(first[0]) - start
    head_end = min(int(last[0]) + 1 - start, R)
    return Question(item, anchor, relation, head_end)


def _with_file_names(known: Candidates, tok, text: str, L: int) -> Candidates:
    """The graph's candidates, then the file's own names that spell none of them (train count 0)."""
    seen = dict(known.index())  # a copy: the cached index stays the graph's
    names = sorted(set(IDENTIFIER.findall(text)))
    extra = []  # the file's own names the graph does not already offer
    for n, key in zip(names, leaf_ids(tok, names, L)):
        if key and key not in seen:
            seen[key] = -1
            extra.append((n, list(key)))
    return Candidates.from_lists(
        [known.ids[i, : known.lengths[i]].tolist() for i in range(len(known))] + [ids for _, ids in extra],
        known.names + [n for n, _ in extra],
        np.concatenate([known.train_count, np.zeros(len(extra), np.int64)]),
        L,
    )
