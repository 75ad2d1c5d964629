"""Extract a folder of sources into the four Parquet tables of the knowledge graph.

Each file is either extracted or listed in files.parquet with the reason it was
skipped, and no single file can stop the run: what is not a regular file is
never opened, a name that is not UTF-8 is listed in printable form, nesting too
deep to extract in linear time is `too_deep`, and an extractor's own failure on
one file is `extract_error: <exception>`. Parsing runs in a process pool and the
output does not depend on the worker count (ordered map over a sorted file list),
nor on whether the parse results come from a cache (`cache.py`): only cross-file
resolution needs the whole corpus, so an unchanged file need not be parsed again.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from graphmer import GraphmerError, atomic, progress_bar
from graphmer.config import ExtractConfig
from graphmer.extract import java, javascript, python
from graphmer.extract.cache import ParseCache, decode, encode
from graphmer.extract.records import FileGraph, SkipExtraction
from graphmer.extract.resolve import MENTION_COLUMNS, LanguageSpec, Resolver
from graphmer.kg import TABLES
from graphmer.languages import (
    LANGUAGES,
    SkipFile,
    iter_files,
    language_of,
    name_skip_reason,
    path_skip_reason,
    printable_path,
    read_regular,
    skip_reason,
)
from graphmer.relations import NUM_RELATIONS, RELATION_NAMES, RESOLUTIONS, Relation

EXTRACTORS = {"python": python.extract, "java": java.extract, "javascript": javascript.extract}
SPECS = {
    "python": LanguageSpec(python.PREFIX, python.builtin_id, class_scope_visible=False),
    "java": LanguageSpec(java.PREFIX, java.builtin_id, class_scope_visible=True, qualified_names=True),
    "javascript": LanguageSpec(
        javascript.PREFIX,
        javascript.builtin_id,
        class_scope_visible=False,
        module_candidates=javascript.module_candidates,
    ),
}
SCHEMAS = {
    "files": pa.schema(
        [
            ("path", pa.string()),
            ("source", pa.string()),
            ("language", pa.string()),
            ("bytes", pa.int64()),
            ("sha256", pa.string()),
            ("lines", pa.int64()),
            ("error_nodes", pa.int64()),
            ("skipped", pa.string()),
        ]
    ),
    "entities": pa.schema(
        [
            ("id", pa.string()),
            ("kind", pa.string()),
            ("name", pa.string()),
            ("language", pa.string()),
            ("file", pa.string()),
            ("start_line", pa.int64()),
            ("end_line", pa.int64()),
        ]
    ),
    "mentions": pa.schema(
        [
            ("entity_id", pa.string()),
            ("file", pa.string()),
            ("start_byte", pa.int64()),
            ("end_byte", pa.int64()),
            ("role", pa.string()),
        ]
    ),
    "triples": pa.schema(
        [
            ("head", pa.string()),
            ("relation", pa.int8()),
            ("tail", pa.string()),
            ("file", pa.string()),
            ("line", pa.int64()),
            ("resolution", pa.string()),
            ("language", pa.string()),
        ]
    ),
}
"""The four tables of the graph (the columns every later stage reads), in the order they are
built and written."""


@dataclass(frozen=True)
class Task:
    path: str  # relative to the extraction root: <source>/<path in source>
    abspath: str
    source: str
    language: str
    unit: str  # python: dotted module name; others: path inside the source


FileResult = tuple[dict, FileGraph | None]
"""One file's row of files.parquet and its FileGraph (None when skipped)."""
READ_FIELDS = ("path", "source", "language", "bytes", "sha256", "lines")
"""The fields of a row that reading the file decides (a cached row must agree on them)."""


def plan(roots: dict[str, Path]) -> list[Task]:
    """Every file of our languages under each source root, in a fixed order."""
    tasks = []
    for source, root in sorted(roots.items()):
        entries = [(rel, p) for rel, p in iter_files(root) if language_of(rel)]
        packages = {rel.rsplit("/", 1)[0] for rel, _ in entries if rel.endswith("/__init__.py")}
        for rel, p in entries:
            lang = language_of(rel)
            unit = python.module_name(rel, packages) if lang == "python" else rel
            tasks.append(Task(f"{source}/{rel}", str(p), source, lang, unit))
    return tasks


def read_one(task: Task, cfg: ExtractConfig) -> tuple[dict, bytes | None]:
    """One file's row of files.parquet and, when it is to be parsed, its bytes (None: the row
    says why it is skipped). Never raises for what is in the file, its name or its kind."""
    row = {
        "path": printable_path(task.path),
        "source": printable_path(task.source),
        "language": task.language,
        "bytes": 0,
        "sha256": None,
        "lines": 0,
        "error_nodes": 0,
        "skipped": name_skip_reason(task.path),
    }
    if row["skipped"]:
        return row, None
    rel = task.path.split("/", 1)[1]
    try:
        data = read_regular(Path(task.abspath), cfg.max_file_bytes)
    except SkipFile as skip:
        row["bytes"] = skip.size
        # As when large files were read whole: a path reason (vendored, ...) comes before too_large.
        row["skipped"] = (skip.reason == "too_large" and path_skip_reason(rel)) or skip.reason
        return row, None
    row.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), lines=data.count(b"\n"))
    row["skipped"] = skip_reason(rel, data, cfg, cfg.max_file_bytes)
    return row, None if row["skipped"] else data


def parse_one(task: Task, row: dict, data: bytes) -> FileResult:
    """The row completed and the FileGraph of a file `read_one` passed (None when the extractor
    gives up on it or fails: the row says why)."""
    try:
        graph = EXTRACTORS[task.language](task.path, data, task.unit)
    except SkipExtraction as skip:  # too_deep, ids_too_long
        row["skipped"] = skip.reason
        return row, None
    except Exception as err:  # RecursionError, MemoryError, a grammar case no extractor expects
        row["skipped"] = f"extract_error: {type(err).__name__}"
        return row, None
    row["error_nodes"] = graph.error_nodes
    return row, graph


def extract_one(task: Task, cfg: ExtractConfig) -> FileResult:
    """One file's row of files.parquet and its FileGraph (None when skipped).

    Never raises for what is in the file, its name or its kind: one bad file must not stop the
    run, so whatever goes wrong is listed as the file's skip reason and the other files go on."""
    row, data = read_one(task, cfg)
    return (row, None) if data is None else parse_one(task, row, data)


def extract_cached(task: Task, cfg: ExtractConfig, cache: ParseCache) -> tuple[FileResult, bool]:
    """`extract_one` through the cache, and whether the result came from it. A file is still read
    (its bytes are the key); only parsing is saved. An `extract_error` is not stored: a
    MemoryError need not happen again."""
    row, data = read_one(task, cfg)
    if data is None:
        return (row, None), False
    key = cache.key(row["sha256"], task.path, task.source, task.language, task.unit)
    hit = cache.load(key)
    if hit is not None and hit[0].keys() == row.keys() and all(hit[0][k] == row[k] for k in READ_FIELDS):
        return hit, True
    result = parse_one(task, row, data)
    if not (result[0]["skipped"] or "").startswith("extract_error"):
        cache.store(key, result)
    return result, False


@contextlib.contextmanager
def no_gc():
    """Pause the cyclic GC: extraction builds millions of small acyclic objects, and the
    collector's repeated walks over them cost about a quarter of the run time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _extract_chunk(args: tuple[list[Task], ExtractConfig, ParseCache | None, bool]) -> list[tuple]:
    """(FileResult, whether it came from the cache) for each task; from a worker (`encoded`), each
    FileResult as `cache.encode`'s bytes: a pickle of plain tuples costs a fifth of the objects'."""
    tasks, cfg, cache, encoded = args
    with no_gc():
        if cache is None:
            out = [(extract_one(t, cfg), False) for t in tasks]
        else:
            out = [extract_cached(t, cfg, cache) for t in tasks]
        return [(encode(r), hit) for r, hit in out] if encoded else out


def parse_all(
    tasks: list[Task], cfg: ExtractConfig, progress: bool = True, cache: ParseCache | None = None
) -> tuple[list[FileResult], int]:
    """Every task's row and graph, in task order, from `cfg.resolved_workers` processes (this one
    when there is a single chunk of `cfg.chunk_files` files: a pool would only add its start-up),
    and how many came from `cache`."""
    step = cfg.chunk_files
    workers = min(cfg.resolved_workers, -(-len(tasks) // step))
    chunks = [(tasks[i : i + step], cfg, cache, workers > 1) for i in range(0, len(tasks), step)]
    bar = progress_bar(total=len(tasks), desc="extract", unit="file", disable=not progress)
    results: list[FileResult] = []
    reused = 0
    with contextlib.ExitStack() as stack:
        mapper = map if workers <= 1 else stack.enter_context(ProcessPoolExecutor(workers)).map
        for part in mapper(_extract_chunk, chunks):
            results += [decode(r) for r, _ in part] if workers > 1 else [r for r, _ in part]
            reused += sum(hit for _, hit in part)
            bar.update(len(part))
    bar.close()
    return results, reused


def build_tables(results: list[FileResult], cfg: ExtractConfig) -> dict[str, pa.Table]:
    graphs = [g for _, g in results if g is not None]
    resolver = Resolver(graphs, SPECS, cfg.resolve_depth)
    triples, mentions = resolver.triples(graphs)
    defs = {k: [] for k in MENTION_COLUMNS}
    for g in graphs:
        for e in g.entities:
            if e.span is not None:
                for k, v in zip(MENTION_COLUMNS, (e.id, e.file, e.span[0], e.span[1], "def")):
                    defs[k].append(v)
    columns = {
        "files": {name: [r[name] for r, _ in results] for name in SCHEMAS["files"].names},
        "entities": resolver.entity_columns(triples),
        "mentions": {k: defs[k] + mentions[k] for k in MENTION_COLUMNS},
        "triples": triples,
    }
    return {name: pa.table(columns[name], schema=schema) for name, schema in SCHEMAS.items()}


def write_tables(tables: dict[str, pa.Table], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SCHEMAS:
        atomic.write_parquet(out_dir / TABLES[name], tables[name])


def kg_metrics(tables: dict[str, pa.Table], seconds: float, reused: int = 0) -> dict:
    files = tables["files"].to_pydict()
    skipped = Counter(r for r in files["skipped"] if r)
    parsed = [i for i, r in enumerate(files["skipped"]) if not r]
    triples = tables["triples"].select(["relation", "language", "resolution"]).to_pydict()
    per_rel = Counter(zip(triples["relation"], triples["language"]))
    kinds = Counter(tables["entities"].column("kind").to_pylist())
    res = Counter(triples["resolution"])
    n = max(len(triples["relation"]), 1)
    mb = sum(files["bytes"][i] for i in parsed) / 1e6
    return {
        "files": len(files["path"]),
        "files_extracted": len(parsed),
        "files_skipped": dict(sorted(skipped.items())),
        "files_from_cache": reused,
        "files_with_errors": sum(1 for i in parsed if files["error_nodes"][i] > 0),
        "error_nodes": sum(files["error_nodes"][i] for i in parsed),
        "entities": sum(kinds.values()) - kinds["external"],
        "external_entities": kinds["external"],
        "entities_by_kind": dict(sorted(kinds.items())),
        "triples": len(triples["relation"]),
        "mentions": tables["mentions"].num_rows,
        "triples_by_language": {
            lang: sum(per_rel[(i, lang)] for i in range(NUM_RELATIONS)) for lang in LANGUAGES
        },
        "triples_by_relation": {
            name: {lang: per_rel[(i, lang)] for lang in LANGUAGES} for i, name in enumerate(RELATION_NAMES)
        },
        "resolution_share": {r: round(res[r] / n, 4) for r in RESOLUTIONS},
        **call_resolution(tables),
        "megabytes": round(mb, 3),
        "seconds": round(seconds, 2),
        "mb_per_s": round(mb / max(seconds, 1e-9), 3),
    }


def call_resolution(tables: dict[str, pa.Table]) -> dict:
    """Per language, how many `calls` triples end at an entity the corpus defines (not an
    `external` tail: a builtin, a library, an unresolved name), and their share of the language's
    `calls` (`triples_by_relation.calls`): the number that goes up as resolution improves. Calls of
    a class are `instantiates`, so they are not counted."""
    ents = tables["entities"]
    defined = pc.filter(ents.column("id"), pc.not_equal(ents.column("kind"), "external"))
    calls = tables["triples"].filter(pc.equal(tables["triples"].column("relation"), int(Relation.CALLS)))
    langs = calls.column("language").to_pylist()
    hits = pc.is_in(calls.column("tail"), value_set=defined).to_pylist()
    inside, total = Counter(lang for lang, hit in zip(langs, hits) if hit), Counter(langs)
    return {
        "calls_in_corpus": {lang: inside[lang] for lang in LANGUAGES},
        "calls_in_corpus_share": {lang: round(inside[lang] / max(total[lang], 1), 4) for lang in LANGUAGES},
    }


def check_output(path: Path, folder: bool) -> None:
    """Refuse, before any parsing, an output that could only fail once all the work is done: a
    file where the folder goes (or the reverse), or a file or unwritable folder above it."""
    want, other = ("a folder", "a file") if folder else ("a file", "a folder")
    if path.exists():
        if path.is_dir() != folder:
            raise GraphmerError(f"{path} is {other}, not {want}: choose another output")
        home = path if folder else path.parent  # where the atomic writes put their temporaries
    else:
        home = next(p for p in path.parents if p.exists())  # the cwd or / at the latest
        if not home.is_dir():
            raise GraphmerError(f"cannot write {path}: {home} is a file, not a folder")
    if not os.access(home, os.W_OK | os.X_OK):
        raise GraphmerError(f"cannot write {path}: {home} is not writable")


def extract_kg(
    roots: dict[str, Path],
    out_dir: str | Path,
    cfg: ExtractConfig | None = None,
    metrics_path: str | Path | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> dict:
    """Extract every source root ({name: folder}) into out_dir/{files,entities,mentions,triples}.parquet,
    with `cfg`'s settings (default: ExtractConfig's defaults). With `cache_dir`, each file's parse
    result is kept there and reused while the file and the extractor are unchanged (outside
    out_dir: the tables are the same with or without it)."""
    cfg = cfg or ExtractConfig()
    for name, root in roots.items():
        if not Path(root).is_dir():
            raise GraphmerError(f"{name}: {root} is not a folder")
    check_output(Path(out_dir), folder=True)
    if metrics_path is not None:
        check_output(Path(metrics_path), folder=False)
    if cache_dir is not None and Path(cache_dir).resolve().is_relative_to(Path(out_dir).resolve()):
        raise GraphmerError(f"the parse cache {cache_dir} must lie outside the output {out_dir}")
    start = time.perf_counter()
    tasks = plan(roots)
    if not tasks:
        raise GraphmerError(
            f"no Python, Java or JavaScript files under {', '.join(map(str, roots.values()))}"
        )
    cache = ParseCache.open(cache_dir, cfg) if cache_dir is not None else None
    with no_gc():
        results, reused = parse_all(tasks, cfg, progress, cache)
        tables = build_tables(results, cfg)
        del results
    metrics = kg_metrics(tables, time.perf_counter() - start, reused)
    write_tables(tables, Path(out_dir))
    if cache is not None:
        cache.prune()
    if metrics_path is not None:
        atomic.write_json(metrics_path, metrics)
    return metrics


def source_roots(raw_dir: str | Path) -> dict[str, Path]:
    """The sources of a fetched corpus: one folder per source under data/raw/."""
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise GraphmerError(f"{raw} does not exist: run the fetch stage first (dvc repro fetch)")
    return {p.name: p for p in sorted(raw.iterdir()) if p.is_dir() and not p.name.startswith(".")}
