"""Fetch every pinned source into data/raw/<source>/ and report what the corpus holds.

Only files of our three languages that pass the source's include/exclude globs
are kept. Vendored, minified, generated and i18n files are kept on disk (so
`extract` can list them with their reason) but do not count in the corpus
numbers; `metrics/corpus.json` gives both, per language and per source.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from graphmer import atomic, progress_bar
from graphmer.config import CorpusConfig, SourceConfig
from graphmer.corpus.archive import Limits
from graphmer.corpus.sources import FetchError, PathFilter, fetch_source
from graphmer.languages import LANGUAGES, iter_files, language_of, skip_reason


def select_files(root: Path, src: SourceConfig, dest: Path) -> dict:
    """Copy the source's language files from `root` to `dest`; return its corpus counts."""
    keep = PathFilter(src.include, src.exclude)
    files, nbytes, skipped = Counter(), Counter(), Counter()
    for rel, path in iter_files(root):
        lang = language_of(rel)
        if lang is None or not keep(rel):
            continue
        if path.is_symlink():
            skipped["symlink"] += 1
            continue
        data = path.read_bytes()
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        reason = skip_reason(rel, data)
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


def fetch_corpus(cfg: CorpusConfig, out_dir: str | Path, metrics_path: str | Path | None = None) -> dict:
    """Fetch all sources into `out_dir` (replaced atomically, only when every source succeeds)."""
    limits = Limits(cfg.max_archive_member_bytes, cfg.max_archive_total_bytes, cfg.max_archive_members)
    per_source: dict[str, dict] = {}
    with atomic.atomic_dir(out_dir) as staging:
        for src in progress_bar(cfg.sources, desc="fetch", unit="source"):
            with tempfile.TemporaryDirectory(prefix=f"graphmer-{src.name}-") as work:
                root = fetch_source(src, Path(work), limits)
                per_source[src.name] = select_files(root, src, staging / src.name)
        metrics = summarize(per_source)
        if metrics_path is not None:
            atomic.write_json(metrics_path, metrics)
    return metrics
