"""Calibration: scores -> probabilities that mean what they say, and the checks that they do.

- `Isotonic`: isotonic regression by pool-adjacent-violators (Ayer et al., 1955; Zadrozny
  and Elkan, KDD 2002): the non-decreasing step function of the raw confidence closest to
  the 0/1 outcomes in squared error. Predictions are constant inside a fitted block and
  linear between neighbouring blocks, clamped at the ends.
- `Calibrator`: one isotonic map per key (a relation) fitted where the key has at least
  `min_points` outcomes, one map fitted on every outcome for the other keys (0 everywhere
  when there is no outcome at all: nothing was seen right).
- `ece`: expected calibration error over equal-width bins of the probability (Naeini et
  al., AAAI 2015; Guo et al., ICML 2017): sum over bins of |accuracy - mean probability|,
  weighted by the bin's share of predictions.
- `reliability`: the same bins as rows (for a reliability plot).
- `selective`: precision and coverage of the predictions kept at a probability threshold.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Isotonic:
    """A fitted non-decreasing map: blocks [lo_i, hi_i] of raw confidence with value v_i."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    value: tuple[float, ...]
    points: int

    @classmethod
    def fit(cls, x: Sequence[float], y: Sequence[float]) -> Isotonic:
        """Pool adjacent violators over the outcomes y (0/1) sorted by x; equal x values share a
        block from the start (a map must give one value per input)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if len(x) == 0:
            raise ValueError("isotonic regression needs at least one point")
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        uniq, start = np.unique(x, return_index=True)
        sums = np.add.reduceat(y, start)
        counts = np.diff(np.append(start, len(x))).astype(np.float64)
        # a stack of blocks: [lo, hi, sum, count]; merge while the last two violate the order
        lo, hi, s, n = [], [], [], []
        for i in range(len(uniq)):
            lo.append(uniq[i])
            hi.append(uniq[i])
            s.append(sums[i])
            n.append(counts[i])
            while len(s) > 1 and s[-2] / n[-2] >= s[-1] / n[-1]:
                last_s, last_n, last_hi = s.pop(), n.pop(), hi.pop()
                lo.pop()
                s[-1] += last_s
                n[-1] += last_n
                hi[-1] = last_hi
        value = [a / b for a, b in zip(s, n)]
        return cls(tuple(map(float, lo)), tuple(map(float, hi)), tuple(map(float, value)), len(x))

    def __call__(self, x: Sequence[float] | float) -> np.ndarray:
        xs = np.ravel(np.asarray(x, np.float64))
        knots = np.ravel(np.column_stack([self.lo, self.hi]))
        values = np.repeat(self.value, 2)
        # clipped: knots a subnormal apart make interp's slope overflow
        return np.clip(np.interp(xs, knots, values), 0.0, 1.0)

    def to_dict(self) -> dict:
        return {"lo": list(self.lo), "hi": list(self.hi), "value": list(self.value), "points": self.points}

    @classmethod
    def from_dict(cls, d: dict) -> Isotonic:
        return cls(tuple(d["lo"]), tuple(d["hi"]), tuple(d["value"]), int(d["points"]))


@dataclass(frozen=True)
class Calibrator:
    """Isotonic maps per key where the key has `min_points` outcomes, else the pooled map."""

    pooled: Isotonic
    by_key: dict[str, Isotonic]
    min_points: int

    @classmethod
    def fit(
        cls, keys: Sequence[Hashable], x: Sequence[float], y: Sequence[float], min_points: int
    ) -> Calibrator:
        keys, x, y = [str(k) for k in keys], np.asarray(x, np.float64), np.asarray(y, np.float64)
        by_key = {}
        for k in sorted(set(keys)):
            sel = np.asarray([kk == k for kk in keys])
            if sel.sum() >= min_points:
                by_key[k] = Isotonic.fit(x[sel], y[sel])
        # no outcome at all (a tiny dev set): nothing was seen right, so every probability is 0
        pooled = Isotonic.fit(x, y) if len(x) else Isotonic((0.0,), (1.0,), (0.0,), 0)
        return cls(pooled, by_key, min_points)

    def __call__(self, keys: Sequence[Hashable], x: Sequence[float]) -> np.ndarray:
        keys, x = [str(k) for k in keys], np.asarray(x, np.float64)
        out = np.empty(len(x), np.float64)
        for k in set(keys):
            sel = np.asarray([kk == k for kk in keys])
            out[sel] = self.by_key.get(k, self.pooled)(x[sel])
        return out

    @classmethod
    def identity(cls) -> Calibrator:
        """Probabilities as they come: one map, linear from (0, 0) to (1, 1)."""
        return cls(Isotonic((0.0, 1.0), (0.0, 1.0), (0.0, 1.0), 0), {}, 0)

    def source(self, key: Hashable) -> str:
        """Which map serves `key`: its own or the pooled one."""
        return "own" if str(key) in self.by_key else "pooled"

    def to_dict(self) -> dict:
        return {
            "min_points": self.min_points,
            "pooled": self.pooled.to_dict(),
            "by_key": {k: v.to_dict() for k, v in self.by_key.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        return cls(
            Isotonic.from_dict(d["pooled"]),
            {k: Isotonic.from_dict(v) for k, v in d["by_key"].items()},
            int(d["min_points"]),
        )


def _bins(p: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each probability; 1.0 falls in the last bin."""
    return np.minimum((p * bins).astype(np.int64), bins - 1)


def ece(p: Sequence[float], correct: Sequence[float], bins: int) -> float | None:
    """Expected calibration error over `bins` equal-width bins (None without predictions)."""
    p, y = np.asarray(p, np.float64), np.asarray(correct, np.float64)
    if len(p) == 0:
        return None
    b = _bins(p, bins)
    n = np.bincount(b, minlength=bins)
    gap = np.abs(np.bincount(b, y, bins) - np.bincount(b, p, bins))  # |sum acc - sum conf| per bin
    return float(gap.sum() / len(p)) if n.sum() else None


def reliability(p: Sequence[float], correct: Sequence[float], bins: int) -> list[dict]:
    """One row per non-empty bin: its range, mean probability, accuracy and size."""
    p, y = np.asarray(p, np.float64), np.asarray(correct, np.float64)
    b = _bins(p, bins)
    rows = []
    for i in range(bins):
        sel = b == i
        if sel.any():
            rows.append(
                {
                    "bin_low": i / bins,
                    "bin_high": (i + 1) / bins,
                    "mean_probability": float(p[sel].mean()),
                    "accuracy": float(y[sel].mean()),
                    "predictions": int(sel.sum()),
                }
            )
    return rows


def selective(
    p: Sequence[float], correct: Sequence[float], question: Sequence[int], questions: int, threshold: float
) -> dict:
    """The predictions with probability >= threshold: how many, their precision (None if none),
    the share of the `questions` that keep at least one (coverage) and the share whose right
    answer is kept (recall). `question` names the question of each prediction (0..questions-1)."""
    p, y, q = np.asarray(p, np.float64), np.asarray(correct, bool), np.asarray(question, np.int64)
    keep = p >= threshold
    return {
        "predictions": int(keep.sum()),
        "precision": float(y[keep].mean()) if keep.any() else None,
        "coverage": float(len(np.unique(q[keep])) / questions) if questions else None,
        "recall": float(len(np.unique(q[keep & y])) / questions) if questions else None,
    }
