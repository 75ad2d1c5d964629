"""The train/dev/test split, by file (or by whole source), written once by the `split` stage.

1. Identical files (same sha256, e.g. a module vendored by two projects) are
   de-duplicated: the first by path is kept, the others are `duplicate` and used by
   no split.
2. Near-duplicates are grouped: a file most of whose distinctive lines (stripped,
   at least `min_line_chars` characters, found in at most `max_line_files` files,
   so license headers and `return None` do not count) occur in one other file goes
   with that file, so an edited copy never sits on the other side of the split from
   its twin.
3. `by: file`: each group goes to test, dev or train by a salted hash of its
   smallest member's content hash, so a file's split does not depend on unrelated
   files. `by: source`: the sources named in `test_sources` / `dev_sources` are
   held out whole (generalization to a project never seen in training); a held-out
   file whose twin is in training is marked `duplicate` instead.

Every stage after this one reads `data/split.parquet` (path, source, split, group).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from graphmer import GraphmerError, atomic, progress_bar
from graphmer.config import SplitConfig

SPLITS = ("train", "dev", "test")


def hash_split(sha256: str, cfg: SplitConfig) -> str:
    digest = hashlib.sha256(f"{cfg.seed}:{sha256}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < cfg.test_fraction:
        return "test"
    return "dev" if u < cfg.test_fraction + cfg.dev_fraction else "train"


def distinctive_lines(texts: dict[str, str], cfg: SplitConfig) -> dict[str, set[str]]:
    """path -> its lines that are long and rare enough to fingerprint it."""
    lines = {
        p: {s for s in (x.strip() for x in t.splitlines()) if len(s) >= cfg.min_line_chars}
        for p, t in texts.items()
    }
    df = Counter(line for ls in lines.values() for line in ls)
    return {p: {x for x in ls if df[x] <= cfg.max_line_files} for p, ls in lines.items()}


def twin_groups(texts: dict[str, str], cfg: SplitConfig) -> dict[str, str]:
    """path -> its group's representative (smallest path): files linked by the near-duplicate
    relation (sharing `cfg.near_duplicate_share` of their distinctive lines), closed transitively
    (union-find)."""
    lines = distinctive_lines(texts, cfg)
    where: dict[str, list[str]] = defaultdict(list)
    for p, ls in lines.items():
        for x in ls:
            where[x].append(p)
    parent = {p: p for p in texts}

    def find(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for p, ls in lines.items():
        if len(ls) < cfg.min_distinctive_lines:
            continue
        shared = Counter(q for x in ls for q in where[x] if q != p)
        if shared:
            q, n = max(shared.items(), key=lambda kv: (kv[1], kv[0]))
            if n >= cfg.near_duplicate_share * len(ls):
                a, b = sorted((find(p), find(q)))
                parent[b] = a
    return {p: find(p) for p in texts}


def assign_splits(
    files: pa.Table, raw_dir: str | Path, cfg: SplitConfig, progress: bool = False
) -> tuple[dict[str, str], dict[str, str]]:
    """(path -> train | dev | test | duplicate, path -> group representative) for every extracted
    (not skipped) file of files.parquet."""
    cols = files.select(["path", "source", "sha256", "skipped"]).to_pydict()
    rows = sorted(
        (p, src, h)
        for p, src, h, skipped in zip(cols["path"], cols["source"], cols["sha256"], cols["skipped"])
        if not skipped
    )
    out: dict[str, str] = {}
    seen: set[str] = set()
    kept = []
    for path, src, sha in rows:
        if sha in seen:
            out[path] = "duplicate"
        else:
            kept.append((path, src, sha))
        seen.add(sha)
    texts = {
        p: (Path(raw_dir) / p).read_bytes().decode("utf-8", "replace")
        for p, _, _ in progress_bar(kept, desc="split", unit="file", disable=not progress)
    }
    group = twin_groups(texts, cfg)
    sha_of = {p: h for p, _, h in kept}
    source_of = {p: s for p, s, _ in kept}
    if cfg.by == "file":
        members: dict[str, list[str]] = defaultdict(list)
        for p in texts:
            members[group[p]].append(p)
        for ps in members.values():
            s = hash_split(min(sha_of[p] for p in ps), cfg)
            out.update(dict.fromkeys(ps, s))
    else:
        for p in texts:
            src = source_of[p]
            out[p] = "test" if src in cfg.test_sources else "dev" if src in cfg.dev_sources else "train"
        trained_groups = {group[p] for p in texts if out[p] == "train"}
        for p in texts:
            if out[p] != "train" and group[p] in trained_groups:
                out[p] = "duplicate"  # a held-out project's copy of a training file
    return out, {p: group.get(p, p) for p in out}


SPLIT_SCHEMA = pa.schema(
    [("path", pa.string()), ("source", pa.string()), ("split", pa.string()), ("group", pa.string())]
)


def build_split(
    files_parquet: str | Path,
    raw_dir: str | Path,
    out_path: str | Path,
    cfg: SplitConfig,
    metrics_path: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Assign every extracted file to a split; write split.parquet (and metrics) atomically."""
    files = pq.read_table(files_parquet)
    splits, groups = assign_splits(files, raw_dir, cfg, progress)
    source = dict(zip(files["path"].to_pylist(), files["source"].to_pylist()))
    paths = sorted(splits)
    table = pa.table(
        {
            "path": paths,
            "source": [source[p] for p in paths],
            "split": [splits[p] for p in paths],
            "group": [groups[p] for p in paths],
        },
        schema=SPLIT_SCHEMA,
    )
    atomic.write_parquet(out_path, table, compression="snappy")
    by_source: dict[str, Counter] = defaultdict(Counter)
    for p in paths:
        by_source[source[p]][splits[p]] += 1
    sizes = Counter(groups[p] for p in paths if splits[p] != "duplicate")
    metrics = {
        "by": cfg.by,
        "files": {s: sum(1 for p in paths if splits[p] == s) for s in (*SPLITS, "duplicate")},
        "by_source": {src: dict(sorted(c.items())) for src, c in sorted(by_source.items())},
        "near_duplicate_groups": sum(1 for n in sizes.values() if n > 1),
        "files_in_near_duplicate_groups": sum(n for n in sizes.values() if n > 1),
    }
    if metrics_path is not None:
        atomic.write_json(metrics_path, metrics)
    return metrics


def read_split(path: str | Path) -> dict[str, str]:
    """path -> train | dev | test | duplicate, as the `split` stage wrote it."""
    if not Path(path).is_file():
        raise GraphmerError(f"{path} not found: split the corpus first (`dvc repro split`)")
    t = pq.read_table(path, columns=["path", "split"]).to_pydict()
    return dict(zip(t["path"], t["split"]))
