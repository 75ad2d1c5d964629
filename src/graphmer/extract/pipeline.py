"""Extract a folder of sources into the four Parquet tables of the knowledge graph.

Each file is either extracted or listed in files.parquet with the reason it was
skipped, and no single file can stop the run: what is not a regular file is
never opened, a name that is not UTF-8 is listed in printable form, nesting too
deep to extract in linear time is `too_deep`, and an extractor's own failure on
one file is `extract_error: <exception>`.

Parsing runs in this process and a pool of the other workers (`share`; the pool's
results come back through scratch files, as `cache.encode`'s plain tuples); resolution
(`resolve.py`) runs the hierarchy in this process, then the other facts in parts, in
this process and processes forked with the resolver, and `tables.py` merges the parts.
The output depends neither on the worker count (ordered maps over a sorted file
list; parts merged as one pass would write them) nor on whether the parse results
come from a cache (`cache.py`): only resolution needs the whole corpus, so an
unchanged file need not be parsed again.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import multiprocessing
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from graphmer import GraphmerError, atomic, progress_bar
from graphmer.config import ExtractConfig
from graphmer.extract import java, javascript, python, tables
from graphmer.extract.cache import ParseCache, decode, encode
from graphmer.extract.records import FileGraph, SkipExtraction
from graphmer.extract.resolve import LanguageSpec, Resolver
from graphmer.extract.tables import SCHEMAS
from graphmer.kg import TABLES
from graphmer.languages import (
    SkipFile,
    iter_files,
    language_of,
    name_skip_reason,
    path_skip_reason,
    printable_path,
    read_regular,
    skip_reason,
)

EXTRACTORS = {"python": python.extract, "java": java.extract, "javascript": javascript.extract}
SPECS = {
    "python": LanguageSpec(
        python.PREFIX,
        python.builtin_id,
        class_scope_visible=False,
        builtin_class=python.builtin_class,
        not_class=python.not_class,
    ),
    "java": LanguageSpec(java.PREFIX, java.builtin_id, class_scope_visible=True, qualified_names=True),
    "javascript": LanguageSpec(
        javascript.PREFIX,
        javascript.builtin_id,
        class_scope_visible=False,
        module_candidates=javascript.module_candidates,
        builtin_class=javascript.builtin_class,
        stars_bind=False,
    ),
}


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


def extract_cached(task: Task, cfg: ExtractConfig, cache: ParseCache) -> tuple[FileResult, bytes | None]:
    """`extract_one` through the cache, and the entry's payload when the result came from it. A
    file is still read (its bytes are the key); only parsing is saved. An `extract_error` is not
    stored: a MemoryError need not happen again."""
    row, data = read_one(task, cfg)
    if data is None:
        return (row, None), None
    key = cache.key(row["sha256"], task.path, task.source, task.language, task.unit)
    if (hit := cache.load(key)) is not None:
        cached, payload = hit
        if cached[0].keys() == row.keys() and all(cached[0][k] == row[k] for k in READ_FIELDS):
            return cached, payload
    result = parse_one(task, row, data)
    if not (result[0]["skipped"] or "").startswith("extract_error"):
        cache.store(key, result)
    return result, None


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


def share(
    pool: Executor | None, remote: Callable, local: Callable, items: list
) -> Iterator[tuple[int, Any, bool]]:
    """(index, result, whether it came from the pool) of every item: `remote(item)` in the pool,
    which takes the items from the front, `local(item)` in this process, which takes them from the
    back (each one the pool has not started yet), until they meet. So this process works too rather
    than waiting on the pool (and its results need no pickling), the pool is never short of work,
    and the one waits on the other only for the pool's last item or two. The pool's results come
    back through files: through the pool's pipe they would be read by its manager thread, which
    waits for the GIL while this process works (tree-sitter parses without releasing it), and the
    worker would stall on the full pipe meanwhile (half its time, resolving). Where no file can
    be written (no temporary folder, a full disk), a result comes back through the pipe."""
    if pool is None:
        yield from ((i, local(item), False) for i, item in enumerate(items))
        return
    with _share_folder() as folder:
        futures = [
            pool.submit(_to_file, remote, folder and os.path.join(folder, str(i)), item)
            for i, item in enumerate(items)
        ]
        first, end = 0, len(items)  # the pool's items: [0, end); its results handed on: [0, first)
        while True:
            while first < end and futures[first].done():
                yield first, _from_file(futures[first].result()), True
                first += 1
            if first == end or not futures[end - 1].cancel():
                break
            end -= 1
            yield end, local(items[end]), False
        for i in range(first, end):
            yield i, _from_file(futures[i].result()), True


@contextlib.contextmanager
def _share_folder() -> Iterator[str | None]:
    """A temporary folder for the pool's results, removed after; None where none can be made."""
    try:
        folder = tempfile.TemporaryDirectory(prefix="graphmer-share-", ignore_cleanup_errors=True)
    except OSError:
        yield None
        return
    with folder as path:
        yield path


def _to_file(fn: Callable, path: str | None, item: Any) -> tuple[bool, Any]:
    """In a worker: fn(item), pickled to `path` (True, path); where that file cannot be written,
    the result itself (False, result), for the pool's pipe to carry."""
    result = fn(item)
    if path is not None:
        try:
            with open(path, "wb") as f:
                pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
            return True, path
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
    return False, result


def _from_file(sent: tuple[bool, Any]) -> Any:
    """What `_to_file` sent: read from its file (then removed), or the result itself."""
    in_file, value = sent
    if not in_file:
        return value
    with open(value, "rb") as f:
        data = f.read()
    os.unlink(value)
    return pickle.loads(data)


def pool_of(processes: int) -> contextlib.AbstractContextManager[ProcessPoolExecutor | None]:
    """A pool of `processes` processes, or None for none."""
    return ProcessPoolExecutor(processes) if processes > 0 else contextlib.nullcontext()


def _extract_chunk(
    args: tuple[list[Task], ExtractConfig, ParseCache | None], encoded: bool = False
) -> list[tuple]:
    """(FileResult, whether it came from the cache) for each task; from a worker (`encoded`), each
    FileResult as `cache.encode`'s bytes (a cache entry's own): a pickle of plain tuples costs a
    fifth of the objects'."""
    tasks, cfg, cache = args
    with no_gc():
        if cache is None:
            out = [(extract_one(t, cfg), None) for t in tasks]
        else:
            out = [extract_cached(t, cfg, cache) for t in tasks]
        if encoded:
            return [(payload or encode(r), payload is not None) for r, payload in out]
        return [(r, payload is not None) for r, payload in out]


def parse_all(
    tasks: list[Task], cfg: ExtractConfig, progress: bool = True, cache: ParseCache | None = None
) -> tuple[list[FileResult], int]:
    """Every task's row and graph, in task order, from `cfg.resolved_workers` processes (this one
    and a pool of the others, sharing out chunks of `cfg.chunk_files` files), and how many came
    from `cache`."""
    step = cfg.chunk_files
    chunks = [(tasks[i : i + step], cfg, cache) for i in range(0, len(tasks), step)]
    workers = min(cfg.resolved_workers, len(chunks))
    remote = functools.partial(_extract_chunk, encoded=True)
    bar = progress_bar(total=len(tasks), desc="extract", unit="file", disable=not progress)
    parts: list[list[FileResult]] = [[] for _ in chunks]
    reused = 0
    with pool_of(workers - 1) as pool:
        for i, part, encoded in share(pool, remote, _extract_chunk, chunks):
            parts[i] = [decode(r) for r, _ in part] if encoded else [r for r, _ in part]
            reused += sum(hit for _, hit in part)
            bar.update(len(part))
    bar.close()
    return [r for part in parts for r in part], reused


_SHARED: tuple[Resolver, list[FileGraph]] | None = None
"""In a resolving worker: the resolver and graphs it was forked with (never pickled)."""


def _share(resolver: Resolver, graphs: list[FileGraph]) -> None:
    global _SHARED
    _SHARED = (resolver, graphs)


def _resolve_part(
    bounds: tuple[int, int], shared: tuple[Resolver, list[FileGraph]] | None = None
) -> dict[str, pa.Table]:
    resolver, graphs = shared or _SHARED
    with no_gc():
        return tables.part_tables(resolver, graphs[bounds[0] : bounds[1]])


def resolve_parts(
    resolver: Resolver, graphs: list[FileGraph], cfg: ExtractConfig
) -> list[dict[str, pa.Table]]:
    """Every fact but the hierarchy's resolved, as `tables.part_tables` of runs of
    `cfg.chunk_files` files, in file order, by this process and `cfg.resolved_workers` - 1
    processes forked with the resolver (it is large: copying it to a process costs what resolving
    does); as one part where there is one worker, or no fork (its parts are no different)."""
    step = cfg.chunk_files
    bounds = [(i, i + step) for i in range(0, len(graphs), step)]
    workers = min(cfg.resolved_workers, len(bounds))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [tables.part_tables(resolver, graphs)]
    fork = multiprocessing.get_context("fork")
    parts: list[dict[str, pa.Table]] = [{} for _ in bounds]
    with ProcessPoolExecutor(workers - 1, fork, initializer=_share, initargs=(resolver, graphs)) as pool:
        here = functools.partial(_resolve_part, shared=(resolver, graphs))
        for i, part, _ in share(pool, _resolve_part, here, bounds):
            parts[i] = part
    return parts


def build_tables(results: list[FileResult], cfg: ExtractConfig) -> dict[str, pa.Table]:
    """The four tables: the files' rows as they are, the graphs resolved across files."""
    files = tables.files_table([r for r, _ in results])
    graphs = [g for _, g in results if g is not None]
    resolver = Resolver(graphs, SPECS, cfg.resolve_depth)
    hierarchy = tables.hierarchy_tables(resolver, graphs)
    return tables.assemble(files, hierarchy, resolve_parts(resolver, graphs, cfg), resolver.redefined)


def write_tables(graph: dict[str, pa.Table], out_dir: Path, workers: int = 1) -> None:
    """Each table to its Parquet file; with `workers` > 1, several at once (Arrow compresses and
    writes without holding the GIL)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(min(workers, len(SCHEMAS))) as pool:
        for done in [pool.submit(atomic.write_parquet, out_dir / TABLES[n], graph[n]) for n in SCHEMAS]:
            done.result()


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
        graph = build_tables(results, cfg)
        del results
    metrics = tables.kg_metrics(graph, time.perf_counter() - start, reused)
    write_tables(graph, Path(out_dir), cfg.resolved_workers)
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
