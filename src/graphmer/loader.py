"""The leafy-chain data loader: fill leaf groups and draw masks at batch time.

For each window and epoch (deterministic in seed, epoch and window index):
1. every anchored head gets one of its candidate triples (relation-balanced:
   weight 1/frequency of the relation in this split when `balance`), whose tail
   tokens fill the anchor root's leaf group; a tail text is injected at most
   once per window, so a masked leaf group is never revealed by a copy;
2. roots are span-masked: spans start at word starts, lengths ~ geometric(p)
   clipped to 1..max_span, until `mask_rate` of the real roots are covered;
3. each non-empty leaf group is masked whole with probability `leaf_mask_prob`.
Masked positions become [MASK] 80%, a random token 10%, themselves 10%.

An item: input_ids (N,), labels (N,) with -100 where nothing is predicted,
attention_mask (N,) True for real tokens, leaf_relation (R,) (-1: empty group),
head_end (R,) (head tokens of group i are roots i..head_end[i]-1), leaf_tail (R,)
(row of tails.parquet, -1: empty), leaf_copyable (R,), word_start and word_stop (R,)
(`word_bounds` of the roots as the model sees them), with N = R + R*L.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from graphmer.config import SamplesConfig
from graphmer.relations import NUM_RELATIONS
from graphmer.tokenizer import MASK, PAD, SPECIAL_TOKENS

IGNORE = -100
CANDIDATE_COLUMNS = ("cand_anchor", "cand_end", "cand_relation", "cand_tail", "cand_copyable")


def word_starts(vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per token id: does it begin a word (space, newline, punctuation first), does it end one."""
    size = max(vocab.values()) + 1
    begins, ends = np.ones(size, bool), np.ones(size, bool)
    for token, i in vocab.items():
        if token in SPECIAL_TOKENS or not token:
            continue
        begins[i] = not _word_char(token[0])
        ends[i] = not _word_char(token[-1])
    return begins, ends


# Byte-level BPE writes whitespace bytes as letters: tab 'ĉ', newline 'Ċ', '\v' 'ċ', '\f' 'Č',
# '\r' 'č', space 'Ġ'; they separate words like any other non-identifier character.
_BYTE_LEVEL_SPACE = "ĉĊċČčĠ"


def _word_char(c: str) -> bool:
    return (c.isalnum() and c not in _BYTE_LEVEL_SPACE) or c in "_$"


def word_bounds(roots: np.ndarray, begins: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per root: does a word start there, does one end there (token ids -> `word_starts` flags).
    roots[p:q+1] is a whole word (`get` not inside `get_user` = `get` `_user`) iff starts[p] and
    stops[q]; the window's first and last roots count as edges."""
    starts, stops = begins[roots].copy(), ends[roots].copy()
    starts[1:] |= ends[roots[:-1]]
    stops[:-1] |= begins[roots[1:]]
    if len(roots):
        starts[0] = stops[-1] = True
    return starts, stops


def bare_window(
    roots: np.ndarray, R: int, L: int, bounds: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """An unmasked item holding `roots` (<= R code tokens, padded) with every leaf group empty;
    `bounds` (`word_bounds` of roots) tells the copy path where words start and end (without
    them, every root counts as a word of its own and a tail may be copied from any run)."""
    ids = np.full(R + R * L, PAD, np.int64)
    ids[: len(roots)] = roots
    attn = np.zeros(R + R * L, bool)
    attn[: len(roots)] = True
    item = {
        "input_ids": ids,
        "attention_mask": attn,
        "leaf_relation": np.full(R, -1, np.int64),
        "head_end": np.arange(1, R + 1, dtype=np.int64),  # group i's head: root i alone
        "leaf_tail": np.full(R, -1, np.int64),
        "leaf_copyable": np.zeros(R, bool),
        "word_start": np.ones(R, bool),
        "word_stop": np.ones(R, bool),
    }
    if bounds is not None:
        item["word_start"][: len(roots)], item["word_stop"][: len(roots)] = bounds
    return item


class LeafyChains(torch.utils.data.Dataset):
    """Windows of one split (samples/<split>.parquet) with tails (samples/tails.parquet)."""

    def __init__(
        self,
        samples: str | Path,
        tails: str | Path,
        vocab: dict[str, int],
        roots: int,
        leaves: int,
        masking: SamplesConfig | None = None,
        seed: int = 0,
    ):
        table = pq.read_table(samples, columns=["roots", *CANDIDATE_COLUMNS]).to_pydict()
        self.roots_ids = [np.asarray(r, dtype=np.int64) for r in table["roots"]]
        self.cands = [
            (
                np.asarray(a, np.int64),
                np.asarray(e, np.int64),
                np.asarray(r, np.int64),
                np.asarray(t, np.int64),
                np.asarray(c, bool),
            )
            for a, e, r, t, c in zip(*(table[k] for k in CANDIDATE_COLUMNS))
        ]
        self.tail_ids = [
            np.asarray(x, np.int64) for x in pq.read_table(tails, columns=["ids"]).column("ids").to_pylist()
        ]
        self.R, self.L, self.m, self.seed, self.epoch = roots, leaves, masking or SamplesConfig(), seed, 0
        self.vocab_size = max(vocab.values()) + 1
        self.begins, self.ends = word_starts(vocab)
        counts = np.bincount(
            np.concatenate([c[2] for c in self.cands] or [np.zeros(0, np.int64)]), minlength=NUM_RELATIONS
        ).astype(float)
        self.rel_weight = 1.0 / np.maximum(counts, 1.0) if self.m.balance else np.ones(NUM_RELATIONS)

    def __len__(self) -> int:
        return len(self.roots_ids)

    @functools.cached_property
    def _anchored(self) -> np.ndarray:
        return np.flatnonzero([len(c[0]) > 0 for c in self.cands])

    def anchored_windows(self) -> np.ndarray:
        """Indices of the windows with at least one anchored head (all of them if none has one)."""
        return self._anchored if len(self._anchored) else np.arange(len(self))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.draw(index, self.epoch)

    def draw(self, index: int, epoch: int) -> dict[str, np.ndarray]:
        """Window `index` with the injection and masks of `epoch` (a pure function of both)."""
        rng = np.random.default_rng((self.seed, epoch, index))
        item = self.inject(index, rng)
        ids, n = item["input_ids"], len(self.roots_ids[index])
        labels = np.full(len(ids), IGNORE, np.int64)
        self._mask_roots(rng, ids, labels, n)
        self._mask_leaves(rng, ids, labels, item["leaf_relation"])
        item["word_start"][:n], item["word_stop"][:n] = word_bounds(ids[:n], self.begins, self.ends)
        return {"input_ids": ids, "labels": labels, **{k: v for k, v in item.items() if k != "input_ids"}}

    def inject(
        self, index: int, rng: np.random.Generator, forced: int | None = None
    ) -> dict[str, np.ndarray]:
        """Window `index`, nothing masked, each anchor's leaf group filled with one of its candidates.

        `forced` (a candidate row of the window) fills its anchor's group, and no other group
        repeats its tail text: evaluation masks that group and asks for the tail.
        """
        R, L = self.R, self.L
        roots = self.roots_ids[index]
        item = bare_window(roots, R, L, word_bounds(roots, self.begins, self.ends))
        ids, attn, rel = item["input_ids"], item["attention_mask"], item["leaf_relation"]
        head_end, tail, copyable = item["head_end"], item["leaf_tail"], item["leaf_copyable"]
        anchor, end, relation, tails, copy = self.cands[index]
        used: set[bytes] = set()

        def put(r: int) -> None:
            a, toks = anchor[r], self.tail_ids[tails[r]]
            used.add(toks.tobytes())
            ids[R + a * L : R + a * L + len(toks)] = toks
            attn[R + a * L : R + a * L + len(toks)] = True
            rel[a], head_end[a], tail[a], copyable[a] = relation[r], end[r], tails[r], copy[r]

        if forced is not None:
            put(forced)
        for a in np.unique(anchor):
            if forced is not None and a == anchor[forced]:
                continue
            rows = np.flatnonzero(anchor == a)
            rows = np.array([r for r in rows if self.tail_ids[tails[r]].tobytes() not in used])
            if len(rows) == 0:
                continue
            w = self.rel_weight[relation[rows]]
            put(rows[rng.choice(len(rows), p=w / w.sum())])
        return item

    def _replace(self, rng, ids, labels, pos: np.ndarray) -> None:
        """80% [MASK], 10% a random ordinary token, 10% unchanged; the label is the original."""
        labels[pos] = ids[pos]
        u = rng.random(len(pos))
        ids[pos[u < 0.8]] = MASK
        rand = pos[(u >= 0.8) & (u < 0.9)]
        ids[rand] = rng.integers(len(SPECIAL_TOKENS), self.vocab_size, len(rand))

    def _mask_roots(self, rng, ids, labels, n: int) -> None:
        if n == 0:
            return
        target = max(1, round(self.m.mask_rate * n))
        candidates = np.flatnonzero(word_bounds(ids[:n], self.begins, self.ends)[0])
        masked = np.zeros(n, bool)
        count = 0
        for s in rng.permutation(candidates):
            if count >= target:
                break
            if masked[s]:
                continue
            length = min(int(rng.geometric(self.m.span_p)), self.m.max_span, target - count, n - s)
            span = np.arange(s, s + length)
            span = span[~masked[span]]
            masked[span] = True
            count += len(span)
        self._replace(rng, ids, labels, np.flatnonzero(masked))

    def _mask_leaves(self, rng, ids, labels, rel) -> None:
        groups = np.flatnonzero((rel >= 0) & (rng.random(self.R) < self.m.leaf_mask_prob))
        if len(groups) == 0:
            return
        slots = (self.R + groups[:, None] * self.L + np.arange(self.L)[None, :]).ravel()
        slots = slots[ids[slots] != PAD]
        self._replace(rng, ids, labels, slots)


def stream_batch(
    ds: LeafyChains, k: int, size: int, seed: int, anchored_only: bool = False
) -> dict[str, torch.Tensor]:
    """Micro-batch k (compact layout) of an endless stream: epoch after epoch, each a fresh
    permutation of the windows (with `anchored_only`, of the windows that carry a triple)."""
    pool = ds.anchored_windows() if anchored_only else np.arange(len(ds))
    n = len(pool)
    items = []
    for pos in range(k * size, (k + 1) * size):
        epoch, i = divmod(pos, n)
        items.append(ds.draw(int(pool[_order(seed, epoch, n)[i]]), epoch))
    return compact(collate(items), ds.R, ds.L)


class MicroBatches(torch.utils.data.Dataset):
    """Micro-batch k of `stream_batch` as item k: a DataLoader over it builds batches in worker
    processes while the model trains, and since each is a pure function of k, workers change when
    a batch is made, never what it holds."""

    def __init__(self, ds: LeafyChains, size: int, seed: int, anchored_only: bool):
        self.ds, self.size, self.seed, self.anchored_only = ds, size, seed, anchored_only

    def __len__(self) -> int:  # an endless stream: any k is an item
        return 2**62

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        return stream_batch(self.ds, k, self.size, self.seed, self.anchored_only)


def micro_batch_indices(start: int, steps: int, grad_accum: int, world: int, rank: int) -> list[int]:
    """The micro-batches process `rank` of `world` trains on in steps start..steps-1, in order:
    optimizer step s, accumulation a takes k = (s * grad_accum + a) * world + rank."""
    return [(s * grad_accum + a) * world + rank for s in range(start, steps) for a in range(grad_accum)]


def batch_loader(
    ds: LeafyChains, indices: list[int], size: int, seed: int, anchored_only: bool, workers: int, pin: bool
) -> torch.utils.data.DataLoader:
    """Micro-batches `indices` in order, built inline (`workers` 0) or by worker processes that
    keep two batches each ready. The loader's own generator is private, so starting it never
    draws from the global RNG that dropout uses: the run is the same with or without workers."""
    return torch.utils.data.DataLoader(
        MicroBatches(ds, size, seed, anchored_only),
        batch_size=None,  # items are whole micro-batches
        sampler=indices,
        num_workers=workers,
        pin_memory=pin,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
    )


@functools.lru_cache(maxsize=4)
def _order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng((seed, epoch)).permutation(n)


def collate(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


def compact(
    full: dict[str, torch.Tensor], roots: int, leaves: int, keep_all: bool = False
) -> dict[str, torch.Tensor]:
    """Drop empty leaf groups: R roots + G groups of L slots, G = most filled groups in the batch.

    Most leaf slots are [PAD]; carried in the fixed R + R*L layout they cost as much as
    code. Every position keeps its coordinates (root_index, slot), from which the model
    computes the same graph distances, so results equal those of the full layout.
    `keep_all` keeps every group: the full layout in the same format.
    """
    R, L = roots, leaves
    rel = full["leaf_relation"]  # (B, R)
    B = rel.shape[0]
    filled = rel >= 0
    if keep_all:
        order = torch.arange(R).expand(B, R)
        valid = torch.ones(B, R, dtype=torch.bool)
    else:
        G = int(filled.sum(1).max()) if B else 0
        order = torch.sort((~filled).int(), dim=1, stable=True).indices[:, :G]  # filled roots first
        valid = torch.arange(G)[None, :] < filled.sum(1, keepdim=True)
    G = order.shape[1]
    src = (R + order[:, :, None] * L + torch.arange(L)).reshape(B, G * L)  # full-layout leaf slots
    valid_slot = valid[:, :, None].expand(B, G, L).reshape(B, G * L)

    def leaf_part(name: str, fill) -> torch.Tensor:
        return torch.where(valid_slot, full[name].gather(1, src), fill)

    def per_slot(per_root: torch.Tensor) -> torch.Tensor:  # (B, R) -> one value per kept leaf slot
        return per_root.gather(1, order)[:, :, None].expand(B, G, L).reshape(B, G * L)

    group_rel = torch.where(valid, rel.gather(1, order), -1)
    return {
        "input_ids": torch.cat([full["input_ids"][:, :R], leaf_part("input_ids", 0)], 1),
        "labels": torch.cat([full["labels"][:, :R], leaf_part("labels", IGNORE)], 1),
        "attention_mask": torch.cat([full["attention_mask"][:, :R], leaf_part("attention_mask", False)], 1),
        "root_index": torch.cat([torch.arange(R).expand(B, R), per_slot(torch.arange(R).expand(B, R))], 1),
        "slot": torch.cat(
            [torch.zeros(B, R, dtype=torch.long), (1 + torch.arange(L)).repeat(G).expand(B, G * L)], 1
        ),
        "leaf_relation": torch.cat(
            [torch.full((B, R), -1), group_rel[:, :, None].expand(B, G, L).reshape(B, G * L)], 1
        ),
        "head_end": torch.cat([torch.arange(1, R + 1).expand(B, R), per_slot(full["head_end"])], 1),
        "group_root": torch.where(valid, order, -1),
        "group_relation": group_rel,
        "group_head_end": torch.where(valid, full["head_end"].gather(1, order), 0),
        "group_tail": torch.where(valid, full["leaf_tail"].gather(1, order), -1),
        "group_copyable": valid & full["leaf_copyable"].gather(1, order),
        **{k: full[k] for k in ("word_start", "word_stop") if k in full},
    }
