"""Tail completion with a trained GraphMERT: rank candidate tails for a masked leaf group.

A question is a window (an item of `LeafyChains.inject`, or one built from a user's
file) and the root `anchor` of a head whose leaf group should hold a tail of relation r.
For each tail length l the group holds l [MASK] tokens with relation r (every other
group as it is, or emptied for the code-only baseline). One batched forward pass over
those length variants gives log p(token) at every masked slot and, with the copy path,
the pointer's mass on each start of a whole word of length l; a candidate of length l
scores log((1 - g) prod p(token) + g * sum of the pointer's mass on its occurrences) in
the length-l variant: the candidates are gathered from those few rows, never run one
by one, and no variant
reveals how long the true tail is. A variant tells the model that l tokens are
missing (in training a masked group always held its tail's length), so those token
probabilities are conditional on l; adding log p(l | r), the length distribution of
r's tails in the training graph, makes each score the log-probability of the whole tail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from graphmer import GraphmerError, one_line
from graphmer.config import ExtractConfig
from graphmer.loader import IGNORE, bare_window, collate, compact, word_bounds, word_starts
from graphmer.model import CONFIG_FILE, COPY_INPUTS, MODEL_INPUTS, WEIGHTS_FILE, GraphMERT, read_model_config
from graphmer.tokenizer import IDENTIFIER, MASK, PAD, leaf_ids
from graphmer.tokenizer import load as load_tokenizer


def load_model(model_dir: str | Path, tokenizer_path: str | Path) -> tuple[GraphMERT, object]:
    """The trained encoder (eval mode, `GraphMERT.from_pretrained`) and its tokenizer, which must
    be the one it was trained with; each mismatch is a one-line error."""
    model_dir, tokenizer_path = Path(model_dir), Path(tokenizer_path)
    for path in (model_dir / CONFIG_FILE, model_dir / WEIGHTS_FILE, tokenizer_path):
        if not path.is_file():
            raise GraphmerError(f"{path} not found: train a model first (`dvc repro train`)")
    vocab_size = read_model_config(model_dir / CONFIG_FILE).vocab_size
    tok = load_tokenizer(tokenizer_path)
    if tok.get_vocab_size() != vocab_size:  # said first: weights that fit no tokenizer are the lesser news
        raise GraphmerError(
            f"tokenizer {tokenizer_path} has {tok.get_vocab_size()} tokens but the model was trained "
            f"with {vocab_size}: they belong to different runs"
        )
    return GraphMERT.from_pretrained(model_dir), tok


@dataclass
class Candidates:
    """The candidate tails of one relation: leaf tokens padded to L, their lengths, names, counts."""

    ids: torch.Tensor  # (C, L), PAD after `lengths`
    lengths: torch.Tensor  # (C,)
    names: list[str]
    train_count: np.ndarray  # (C,) triples with this tail in the training graph
    log_length_prior: torch.Tensor  # (L+1,) log p(length) over the training graph's triples, add-one
    _index: dict | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, table: pa.Table, relation: int, leaves: int) -> Candidates:
        """Rows of samples/candidates.parquet with `relation`."""
        rows = table.filter(pc.equal(table["relation"], relation)).to_pydict()
        return cls.from_lists(rows["ids"], rows["name"], rows["train_count"], leaves)

    @classmethod
    def from_lists(cls, ids: list[list[int]], names: list[str], counts, leaves: int) -> Candidates:
        ids = [x[:leaves] for x in ids]
        padded = torch.full((len(ids), leaves), PAD, dtype=torch.long)
        for i, x in enumerate(ids):
            padded[i, : len(x)] = torch.as_tensor(x, dtype=torch.long)
        lengths = torch.as_tensor([len(x) for x in ids], dtype=torch.long)
        counts = np.asarray(counts, dtype=np.int64)
        mass = np.bincount(lengths.numpy(), weights=counts, minlength=leaves + 1)[1:] + 1.0
        prior = torch.full((leaves + 1,), float("-inf"))
        prior[1:] = torch.from_numpy(np.log(mass / mass.sum())).float()
        return cls(padded, lengths, list(names), counts, prior)

    def __len__(self) -> int:
        return len(self.names)

    def index(self) -> dict[tuple[int, ...], int]:
        """Leaf tokens -> candidate row (built once)."""
        if self._index is None:
            self._index = {tuple(self.ids[i, : self.lengths[i]].tolist()): i for i in range(len(self))}
        return self._index

    def present_lengths(self) -> list[int]:
        return sorted(set(self.lengths.tolist()))


def masked_variants(
    item: dict[str, np.ndarray],
    anchor: int,
    relation: int,
    head_end: int,
    lengths: list[int],
    roots: int,
    leaves: int,
    graph: bool = True,
) -> list[dict[str, np.ndarray]]:
    """Copies of an unmasked window whose group at `anchor` holds l [MASK]s of `relation`,
    one per l in `lengths`; `graph=False` empties every other leaf group (code only)."""
    R, L = roots, leaves
    if not graph:
        n = int(item["attention_mask"][:R].sum())
        bounds = (item["word_start"][:n], item["word_stop"][:n]) if "word_start" in item else None
        item = bare_window(item["input_ids"][:n], R, L, bounds)
    out = []
    for length in lengths:
        v = {k: x.copy() for k, x in item.items()}
        group = slice(R + anchor * L, R + (anchor + 1) * L)
        v["input_ids"][group] = PAD
        v["attention_mask"][group] = False
        v["input_ids"][R + anchor * L : R + anchor * L + length] = MASK
        v["attention_mask"][R + anchor * L : R + anchor * L + length] = True
        v["leaf_relation"][anchor] = relation
        v["head_end"][anchor] = head_end
        v["leaf_tail"][anchor], v["leaf_copyable"][anchor] = -1, False  # nothing of the answer
        v["labels"] = np.full(len(v["input_ids"]), IGNORE, np.int64)
        out.append(v)
    return out


@dataclass
class GroupOutput:
    """What the model says about one masked leaf group of length l: log p over the vocabulary per
    slot (l, V) and, with the copy path, its pointer: log g, log (1 - g) and log a over the
    window's roots (-inf where no tail of length l starts), with the roots' token ids."""

    vocab: torch.Tensor
    log_gate: float = float("-inf")
    log_keep: float = 0.0
    log_attn: torch.Tensor | None = None
    root_ids: torch.Tensor | None = None


@torch.no_grad()
def group_outputs(
    model: GraphMERT, variants: list[dict[str, np.ndarray]], anchors: list[int], lengths: list[int]
) -> list[GroupOutput]:
    """One forward pass over `variants`; for each, the model's output on its masked group."""
    R, L = model.cfg.roots, model.cfg.leaves
    batch = compact(collate(variants), R, L)
    device = next(model.parameters()).device
    inputs = {k: batch[k].to(device) for k in (*MODEL_INPUTS, *COPY_INPUTS) if k in batch}
    hidden = model(*(inputs[k] for k in MODEL_INPUTS))
    b, p, first = [], [], []
    for i, (anchor, length) in enumerate(zip(anchors, lengths)):
        k = int(torch.nonzero(batch["group_root"][i] == anchor)[0, 0])
        b += [i] * length
        p += range(R + k * L, R + k * L + length)
        first.append(R + k * L)
    b, p = torch.as_tensor(b, device=device), torch.as_tensor(p, device=device)
    vocab = torch.split(model.vocab_logprobs(hidden, b, p).cpu(), lengths)
    rows = torch.arange(len(variants), device=device)
    ptr = model.pointer(hidden, inputs, rows, torch.as_tensor(first, device=device))
    if ptr is None:
        return [GroupOutput(v) for v in vocab]
    root_ids = batch["input_ids"][:, :R]
    return [
        GroupOutput(v, float(ptr.log_gate[i]), float(ptr.log_keep[i]), ptr.log_attn[i].cpu(), root_ids[i])
        for i, v in enumerate(vocab)
    ]


def score_candidates(out: dict[int, GroupOutput], cands: Candidates) -> torch.Tensor:
    """(C,) log p(length) + log p(tail | length): the vocabulary's summed token log-probabilities,
    mixed by the gate with the pointer's mass on the starts that spell the candidate; out[l]
    is the model's output on the length-l variant."""
    scores = torch.full((len(cands),), float("-inf"))
    index = cands.index()
    for length, o in out.items():
        sel = torch.nonzero(cands.lengths == length)[:, 0]
        if not len(sel):
            continue
        tokens = o.vocab[torch.arange(length)[None, :], cands.ids[sel, :length]].sum(1)
        if o.log_attn is None:
            scores[sel] = tokens + cands.log_length_prior[length]
            continue
        copied = torch.full((len(cands),), float("-inf"))
        for j in torch.nonzero(torch.isfinite(o.log_attn))[:, 0].tolist():
            i = index.get(tuple(o.root_ids[j : j + length].tolist()))
            if i is not None:
                copied[i] = torch.logaddexp(copied[i], o.log_attn[j])
        mixed = torch.logaddexp(o.log_keep + tokens, o.log_gate + copied[sel])
        scores[sel] = mixed + cands.log_length_prior[length]
    return scores


@dataclass(frozen=True)
class Question:
    """Which tail belongs in the leaf group of `anchor` (head roots anchor..head_end-1)?"""

    item: dict  # an unmasked window (LeafyChains.inject)
    anchor: int
    relation: int
    head_end: int


def answer(
    model: GraphMERT, questions: list[Question], cands: list[Candidates], graph: bool, batch_size: int
) -> list[torch.Tensor]:
    """Candidate scores for each question (cands[i] are question i's candidates)."""
    R, L = model.cfg.roots, model.cfg.leaves
    jobs = []  # (question, length, variant)
    for qi, q in enumerate(questions):
        lengths = cands[qi].present_lengths()
        for length, v in zip(
            lengths, masked_variants(q.item, q.anchor, q.relation, q.head_end, lengths, R, L, graph)
        ):
            jobs.append((qi, length, v))
    logp: list[dict[int, GroupOutput]] = [{} for _ in questions]
    for lo in range(0, len(jobs), batch_size):
        chunk = jobs[lo : lo + batch_size]
        rows = group_outputs(
            model,
            [v for _, _, v in chunk],
            [questions[qi].anchor for qi, _, _ in chunk],
            [n for _, n, _ in chunk],
        )
        for (qi, length, _), lp in zip(chunk, rows):
            logp[qi][length] = lp
    return [score_candidates(lp, c) for lp, c in zip(logp, cands)]


def rank_metrics(scores: torch.Tensor, target: int, exclude: torch.Tensor | None = None) -> dict[str, float]:
    """Reciprocal rank and Hits@1/3/10 of `target`, in expectation over a random order of ties
    (a constant scorer gets the rank of a coin, not the best or worst one). `exclude` marks other
    true answers, left out of the ranking (the filtered setting of Bordes et al., NeurIPS 2013)."""
    keep = torch.ones(len(scores), dtype=torch.bool) if exclude is None else ~exclude
    keep[target] = False
    s, t = scores[keep].double(), scores[target].double()
    above, ties = int((s > t).sum()), int((s == t).sum())
    positions = torch.arange(above + 1, above + ties + 2, dtype=torch.float64)  # equally likely ranks
    out = {"rr": float((1.0 / positions).mean())}
    for k in (1, 3, 10):
        out[f"hits{k}"] = min(max((k - above) / (ties + 1), 0.0), 1.0)
    return out


# --------------------------------------------------------------------------- `graphmer predict`


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

    from graphmer.samples import CANDIDATE_SCHEMA

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


def code_window(
    ids: list[int], first: int, roots: int, leaves: int, starts: tuple[np.ndarray, np.ndarray]
) -> tuple[dict[str, np.ndarray], int]:
    """An unmasked window of R roots around token `first` (a quarter of it before), no leaves;
    `starts` is `word_starts` of the tokenizer's vocabulary (computed once by the caller)."""
    start = max(0, min(first - roots // 4, len(ids) - roots))
    window = np.asarray(ids[start : start + roots], np.int64)
    return bare_window(window, roots, leaves, word_bounds(window, *starts)), start


def predict(
    path: str | Path,
    entity: str,
    relation: str,
    top_k: int = 10,
    model_dir: str | Path = "models",
    tokenizer: str | Path = "models/tokenizer.json",
    candidates: str | Path = "data/samples/candidates.parquet",
    max_file_bytes: int = ExtractConfig.max_file_bytes,
) -> tuple[str, list[Prediction]]:
    """Top-k tails of (entity, relation) for a source file, ranked by the model on the file's code.

    Candidates are every tail of the relation in the training corpus graph plus every identifier
    of the file, so a name that static extraction could not resolve can still be proposed. A file
    over `max_file_bytes` (extraction's limit by default) is refused before it is read."""
    from graphmer.relations import RELATION_NAMES
    from graphmer.samples import char_offsets, mention_tokens

    path = Path(path)
    if relation not in RELATION_NAMES:
        raise GraphmerError(f"unknown relation {relation!r} (known: {', '.join(RELATION_NAMES)})")
    r = RELATION_NAMES.index(relation)
    if top_k <= 0:
        raise GraphmerError("--top-k must be > 0")
    data, text = read_source(path, max_file_bytes)
    span, head_id, line = find_head(path, data, entity)
    candidates = Path(candidates)
    if not candidates.is_file():
        raise GraphmerError(f"{candidates} not found: build the samples first (`dvc repro samples`)")
    model, tok = load_model(model_dir, tokenizer)
    R, L = model.cfg.roots, model.cfg.leaves

    enc = tok.encode(text)
    ends = np.asarray([e for _, e in enc.offsets], dtype=np.int64)
    chars = char_offsets(data, text, np.asarray([span], dtype=np.int64))
    first, last = mention_tokens(ends, chars[:, 0], chars[:, 1])
    item, start = code_window(enc.ids, int(first[0]), R, L, word_starts(tok.get_vocab()))
    anchor = int(first[0]) - start
    head_end = min(int(last[0]) + 1 - start, R)

    known = Candidates.of(read_candidates(candidates, model.cfg.vocab_size), r, L)
    seen = dict(known.index())  # a copy: the cached index stays the graph's
    names = sorted(set(IDENTIFIER.findall(text)))
    extra = []  # the file's own names the graph does not already offer
    for n, key in zip(names, leaf_ids(tok, names, L)):
        if key and key not in seen:
            seen[key] = -1
            extra.append((n, list(key)))
    cands = Candidates.from_lists(
        [known.ids[i, : known.lengths[i]].tolist() for i in range(len(known))] + [ids for _, ids in extra],
        known.names + [n for n, _ in extra],
        np.concatenate([known.train_count, np.zeros(len(extra), np.int64)]),
        L,
    )
    with torch.inference_mode():
        (scores,) = answer(model, [Question(item, anchor, r, head_end)], [cands], graph=False, batch_size=L)
    order = torch.argsort(scores, descending=True)[:top_k].tolist()
    label = f"{head_id} (line {line})"
    return label, [
        Prediction(cands.names[i], float(scores[i]), "graph" if i < len(known) else "file") for i in order
    ]
