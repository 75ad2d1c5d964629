"""Cheap rules for tail completion that need no training: the bar the model must clear.

Each rule scores every candidate tail of a question (a window of code, the head's
mention in it, a relation, the head's short name) with one float64 per candidate,
higher is better; a lexicographic order (first key, then the next) is encoded
exactly in one number, so equal keys stay exact ties for `rank_metrics`.

- `frequency`: how often the tail has this relation in the training graph.
- `copy`: most tails of code relations are written next to their head (a base
  class in the parentheses, an annotation after the colon, a decorator above, a
  callee in the body): candidates written as a whole word in the window, outside the
  head's own mention, ranked by token distance to the head; then frequency.
- `name_lookup`: heads with the same name have the same tails (`save` overrides
  `save`, a parameter `request` has type `HttpRequest`): how often training-graph
  heads of this name have the tail with this relation; then frequency.
- `copy_name`: copy, then name lookup, then frequency.
All counts come from the training graph (triples extracted from training files),
the graph the model was trained on.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from graphmer.kg import TRIPLES_TABLE, names_of
from graphmer.loader import word_bounds
from graphmer.ranking import Candidates
from graphmer.tokenizer import tail_leaf_ids

RULES = ("frequency", "copy", "name_lookup", "copy_name")


def identifier_runs(
    roots: np.ndarray, begins: np.ndarray, ends: np.ndarray, max_len: int
) -> dict[tuple[int, ...], list[int]]:
    """Every run roots[p:p+l], 1 <= l <= max_len, that is a whole word (`get` is not found inside
    `get_user` tokenized as `get` `_user`) -> its start positions."""
    n = len(roots)
    starts, stops = word_bounds(roots, begins, ends)
    runs: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for p in np.flatnonzero(starts).tolist():
        for q in range(p, min(p + max_len, n)):
            if stops[q]:
                runs[tuple(roots[p : q + 1].tolist())].append(p)
    return runs


def _tiers(*keys: np.ndarray) -> torch.Tensor:
    """One float64 per candidate ordering candidates by keys[0], then keys[1], ... (each >= 0,
    higher better): dense ranks of each key packed in base (C + 1)."""
    score = np.zeros(len(keys[0]), np.float64)
    base = len(keys[0]) + 1
    for k in keys:
        dense = np.unique(k, return_inverse=True)[1].reshape(-1)
        score = score * base + dense
    return torch.from_numpy(score)


def frequency(cands: Candidates) -> torch.Tensor:
    return torch.from_numpy(cands.train_count.astype(np.float64))


def copy_closeness(
    roots: np.ndarray, anchor: int, head_end: int, cands: Candidates, begins, ends, index
) -> np.ndarray:
    """(C,) how close each candidate is written to the head: R + 1 - token distance for a whole-word
    occurrence outside the head's own mention (the nearest one), 0 when not in the window."""
    R = len(roots)
    close = np.zeros(len(cands), np.float64)
    for run, starts in identifier_runs(roots, begins, ends, cands.ids.shape[1]).items():
        c = index.get(run)
        if c is None:
            continue
        best = 0
        for p in starts:
            end = p + len(run)
            if p < head_end and end > anchor:
                continue  # the head's own mention
            gap = anchor - end + 1 if end <= anchor else p - head_end + 1
            best = max(best, R + 1 - gap)
        close[c] = max(close[c], best)
    return close


class NameLookup:
    """Per (relation, head name): how often each tail (as leaf ids) occurs in the training graph."""

    def __init__(self, rows: Iterable[tuple[str, int, tuple[int, ...]]]):
        self.counts: dict[tuple[int, str], Counter] = defaultdict(Counter)
        for name, r, tail in rows:
            self.counts[(r, name)][tail] += 1

    @classmethod
    def from_kg(cls, kg_dir: Path, train_files: set[str], tok, leaves: int) -> NameLookup:
        tri = pq.read_table(kg_dir / TRIPLES_TABLE, columns=["head", "relation", "tail", "file"])
        tri = tri.to_pydict()
        rows = [
            (h, r, t)
            for h, r, t, f in zip(tri["head"], tri["relation"], tri["tail"], tri["file"])
            if f in train_files
        ]
        name = names_of(kg_dir, (e for h, _, t in rows for e in (h, t)))
        ids = tail_leaf_ids(tok, {t: name[t] for _, _, t in rows}, leaves)
        return cls((name[h], r, ids[t]) for h, r, t in rows)

    def counts_for(self, head_name: str, relation: int, cands: Candidates, index) -> np.ndarray:
        out = np.zeros(len(cands), np.float64)
        for tail, n in self.counts.get((relation, head_name), {}).items():
            c = index.get(tail)
            if c is not None:
                out[c] = n
        return out


def baseline_scores(
    roots: np.ndarray,
    anchor: int,
    head_end: int,
    relation: int,
    head_name: str,
    cands: Candidates,
    index: dict[tuple[int, ...], int],
    lookup: NameLookup,
    begins: np.ndarray,
    ends: np.ndarray,
) -> dict[str, torch.Tensor]:
    """Every rule's scores (C,) for one question; `index` is `cands.index()`, built once per
    relation by the caller (it is O(C) in Python and C reaches 20K)."""
    freq = cands.train_count.astype(np.float64)
    close = copy_closeness(np.asarray(roots), anchor, head_end, cands, begins, ends, index)
    named = lookup.counts_for(head_name, relation, cands, index)
    return {
        "frequency": frequency(cands),
        "copy": _tiers(close, freq),
        "name_lookup": _tiers(named, freq),
        "copy_name": _tiers(close, named, freq),
    }
