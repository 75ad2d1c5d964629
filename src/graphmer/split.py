"""The train/validation split: by file, deterministic from content hashes.

Identical files (same sha256, e.g. a module vendored by two projects) are
de-duplicated first: the first by path is kept, the others are marked
`duplicate` and used by no split. Then each kept file goes to `val` when a hash
of its content (salted by the seed) falls under `val_fraction`. A file's split
never depends on which other files exist, so adding a source moves nothing.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

SPLITS = ("train", "val")


def split_of(sha256: str, val_fraction: float, seed: int = 0) -> str:
    digest = hashlib.sha256(f"{seed}:{sha256}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "val" if u < val_fraction else "train"


def assign_splits(files: pa.Table, val_fraction: float, seed: int = 0) -> dict[str, str]:
    """path -> train | val | duplicate, for every extracted (not skipped) file of files.parquet."""
    cols = files.select(["path", "sha256", "skipped"]).to_pydict()
    rows = sorted((p, h) for p, h, s in zip(cols["path"], cols["sha256"], cols["skipped"]) if not s)
    out: dict[str, str] = {}
    seen: set[str] = set()
    for path, sha in rows:
        out[path] = "duplicate" if sha in seen else split_of(sha, val_fraction, seed)
        seen.add(sha)
    return out
