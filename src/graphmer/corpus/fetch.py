"""Fetch every pinned source into data/raw/<source>/ and report what the corpus holds.

Only files of our three languages that pass the source's include/exclude globs
are kept. Vendored, minified, generated and i18n files are kept on disk (so
`extract` can list them with their reason) but do not count in the corpus
numbers; `metrics/corpus.json` gives both, per language and per source.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from graphmer import GraphmerError, atomic, progress_bar
from graphmer.config import CorpusConfig, ExtractConfig, SourceConfig
from graphmer.corpus.archive import Limits
from graphmer.corpus.sources import FetchError, PathFilter, fetch_source
from graphmer.languages import (
    LANGUAGES,
    SkipFile,
    iter_files,
    language_of,
    name_skip_reason,
    read_regular,
    skip_reason,
)


def select_files(root: Path, src: SourceConfig, dest: Path, limits: Limits, extract: ExtractConfig) -> dict:
    """Copy the source's language files from `root` to `dest`; return its corpus counts (a file
    that extraction with `extract` will skip is copied but not counted).

    Only regular files are read (a FIFO would hang the read, a device never end), none over the
    archive member cap (a local folder has no archive to cap it), and a name that is not UTF-8
    is skipped here, since every later stage stores paths as text."""
    keep = PathFilter(src.include, src.exclude)
    files, nbytes, skipped = Counter(), Counter(), Counter()
    total = 0
    for rel, path in iter_files(root):
        lang = language_of(rel)
        if lang is None or not keep(rel):
            continue
        if reason := name_skip_reason(rel):
            skipped[reason] += 1
            continue
        try:
            data = read_regular(path, limits.max_member_bytes)
        except SkipFile as skip:
            skipped[skip.reason] += 1
            continue
        total += len(data)
        if total > limits.max_total_bytes:
            raise FetchError(src.name, f"its files total over the {limits.max_total_bytes}-byte cap")
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        reason = skip_reason(rel, data, extract)
        if reason:
            skipped[reason] += 1
        else:
            files[lang] += 1
            nbytes[lang] += len(data)
    if not files and not skipped:
        raise FetchError(src.name, "no Python, Java or JavaScript file matches its include/exclude globs")
    return {
        "files": sum(files.values()),
        "bytes": sum(nbytes.values()),
        "by_language": {lang: {"files": files[lang], "bytes": nbytes[lang]} for lang in LANGUAGES},
        "skipped": dict(sorted(skipped.items())),
    }


def summarize(per_source: dict[str, dict]) -> dict:
    """Totals over sources, in the layout of metrics/corpus.json."""
    by_lang = {
        lang: {
            "files": sum(s["by_language"][lang]["files"] for s in per_source.values()),
            "bytes": sum(s["by_language"][lang]["bytes"] for s in per_source.values()),
        }
        for lang in LANGUAGES
    }
    skipped: Counter = Counter()
    for s in per_source.values():
        skipped.update(s["skipped"])
    return {
        "files": sum(v["files"] for v in by_lang.values()),
        "bytes": sum(v["bytes"] for v in by_lang.values()),
        "by_language": by_lang,
        "skipped": dict(sorted(skipped.items())),
        "skipped_files": sum(skipped.values()),
        "sources": per_source,
    }


MARKER = ".graphmer-fetch"
"""A file fetch writes into its output folder: the one sign that fetch may replace that folder."""


def check_out_dir(out_dir: Path) -> None:
    """Refuse, before any download, to replace a folder fetch did not write: its files would be lost."""
    if out_dir.exists() and not out_dir.is_dir():
        raise GraphmerError(f"{out_dir} is a file, not a folder: choose another --out")
    if out_dir.is_dir() and not (out_dir / MARKER).is_file() and any(out_dir.iterdir()):
        raise GraphmerError(
            f"{out_dir} is not empty and was not written by fetch (no {MARKER}); fetch replaces its "
            "output folder whole, so choose a new or empty folder (nothing was changed)"
        )


def fetch_corpus(
    cfg: CorpusConfig,
    out_dir: str | Path,
    metrics_path: str | Path | None = None,
    extract: ExtractConfig | None = None,
) -> dict:
    """Fetch all sources into `out_dir` (replaced atomically, only when every source succeeds);
    `extract` (default: its defaults) decides which files count as the corpus, as extraction will."""
    out_dir = Path(out_dir)
    extract = extract or ExtractConfig()
    check_out_dir(out_dir)
    limits = Limits.of(cfg)
    per_source: dict[str, dict] = {}
    with atomic.atomic_dir(out_dir) as staging:
        (staging / MARKER).write_text("written by `graphmer fetch`, which replaces this folder whole\n")
        for src in progress_bar(cfg.sources, desc="fetch", unit="source"):
            with atomic.scratch_dir(out_dir) as work:
                root = fetch_source(src, work, limits)
                per_source[src.name] = select_files(root, src, staging / src.name, limits, extract)
        metrics = summarize(per_source)
        if metrics_path is not None:
            atomic.write_json(metrics_path, metrics)
    return metrics
