"""Tail completion with a trained GraphMERT: rank candidate tails for a masked leaf group.

A question is a window (an item of `LeafyChains.inject`, or one built from a user's
file) and the root `anchor` of a head whose leaf group should hold a tail of relation r.
For each tail length l the group holds l [MASK] tokens with relation r (every other
group as it is, or emptied for the code-only baseline). One batched forward pass over
those length variants gives log p(token) at every masked slot and, with the copy path,
the pointer's mass on each start of a whole word of length l, and with the tail memory its
distribution over the training graph's tail names of length l; a candidate of length l
scores log((1 - g) [(1 - h) prod p(token) + h p_mem(name)] + g * sum of the pointer's mass on
its occurrences) in the length-l variant (`model.mix`): the candidates are gathered from
those few rows, never run one by one, and no variant reveals how long the true tail is.
A variant tells the model that l tokens are missing (in training a masked group always
held its tail's length), so those probabilities are conditional on l; adding log p(l | r),
the length distribution of r's tails in the training graph, makes each score the
log-probability of the whole tail.

Used by `evaluate` (held-out questions), `distill` (gaps) and `graphmer predict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from graphmer.loader import IGNORE, bare_window, collate, compact, word_bounds
from graphmer.model import COPY_INPUTS, MODEL_INPUTS, GraphMERT, TailMemory, mix
from graphmer.tokenizer import MASK, PAD


@dataclass
class Candidates:
    """The candidate tails of one relation: leaf tokens padded to L, their lengths, names, counts."""

    ids: torch.Tensor  # (C, L), PAD after `lengths`
    lengths: torch.Tensor  # (C,)
    names: list[str]
    train_count: np.ndarray  # (C,) triples with this tail in the training graph
    log_length_prior: torch.Tensor  # (L+1,) log p(length) over the training graph's triples, add-one
    _index: dict | None = field(default=None, init=False, repr=False, compare=False)
    _memory: tuple | None = field(default=None, init=False, repr=False, compare=False)

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

    def memory_rows(self, memory: TailMemory) -> torch.Tensor:
        """(C,) each candidate's row in a model's tail memory, -1 for a name it does not hold."""
        if self._memory is None or self._memory[0] is not memory:
            rows, found = memory.rows(), torch.full((len(self),), -1, dtype=torch.long)
            for name, i in self.index().items():
                found[i] = rows.get(name, -1)
            self._memory = (memory, found)
        return self._memory[1]

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
    slot (l, V); with the copy path, its pointer: log g, log (1 - g) and log a over the
    window's roots (-inf where no tail of length l starts), with the roots' token ids; with the
    tail memory, log h, log (1 - h) and log p_mem over its names (-inf where not of length l)."""

    vocab: torch.Tensor
    log_gate: float = float("-inf")
    log_keep: float = 0.0
    log_attn: torch.Tensor | None = None
    root_ids: torch.Tensor | None = None
    mem_gate: float = float("-inf")
    mem_keep: float = 0.0
    log_mem: torch.Tensor | None = None
    memory: TailMemory | None = None


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
    rows, first = torch.arange(len(variants), device=device), torch.as_tensor(first, device=device)
    outs = [GroupOutput(v) for v in vocab]
    ptr = model.pointer(hidden, inputs, rows, first)
    if ptr is not None:
        root_ids = batch["input_ids"][:, :R]
        for i, o in enumerate(outs):
            o.log_gate, o.log_keep = float(ptr.log_gate[i]), float(ptr.log_keep[i])
            o.log_attn, o.root_ids = ptr.log_attn[i].cpu(), root_ids[i]
    mem = model.remember(hidden, inputs, rows, first)
    if mem is not None:
        log_p = mem.log_p.cpu()
        for i, o in enumerate(outs):
            o.mem_gate, o.mem_keep = float(mem.log_gate[i]), float(mem.log_keep[i])
            o.log_mem, o.memory = log_p[i], model.memory
    return outs


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
        none = torch.full((len(sel),), float("-inf"))
        remembered, copied = none, none
        if o.log_mem is not None:
            rows = cands.memory_rows(o.memory)[sel]
            remembered = torch.where(rows >= 0, o.log_mem[rows.clamp(min=0)], none)
        if o.log_attn is not None:
            copied = torch.full((len(cands),), float("-inf"))
            for j in torch.nonzero(torch.isfinite(o.log_attn))[:, 0].tolist():
                i = index.get(tuple(o.root_ids[j : j + length].tolist()))
                if i is not None:
                    copied[i] = torch.logaddexp(copied[i], o.log_attn[j])
            copied = copied[sel]
        gates = [torch.tensor(x) for x in (o.mem_gate, o.mem_keep, o.log_gate, o.log_keep)]
        scores[sel] = mix(tokens, remembered, copied, *gates) + cands.log_length_prior[length]
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


def code_window(
    ids: list[int], first: int, roots: int, leaves: int, starts: tuple[np.ndarray, np.ndarray]
) -> tuple[dict[str, np.ndarray], int]:
    """An unmasked window of R roots around token `first` (a quarter of it before), no leaves;
    `starts` is `word_starts` of the tokenizer's vocabulary (computed once by the caller)."""
    start = max(0, min(first - roots // 4, len(ids) - roots))
    window = np.asarray(ids[start : start + roots], np.int64)
    return bare_window(window, roots, leaves, word_bounds(window, *starts)), start
