"""Extract a folder of sources into the four Parquet tables of the knowledge graph.

Each file is either extracted or listed in files.parquet with the reason it was
skipped; parsing runs in a process pool and the output does not depend on the
worker count (ordered map over a sorted file list).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from graphmer import GraphmerError, atomic
from graphmer.extract import java, javascript, python
from graphmer.extract.model import FileGraph
from graphmer.extract.resolve import LanguageSpec, Resolver
from graphmer.languages import LANGUAGES, iter_files, language_of, skip_reason
from graphmer.relations import RELATION_NAMES, RESOLUTIONS

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
TABLES = ("files", "entities", "mentions", "triples")


@dataclass(frozen=True)
class Task:
    path: str  # relative to the extraction root: <source>/<path in source>
    abspath: str
    source: str
    language: str
    unit: str  # python: dotted module name; others: path inside the source


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


def extract_one(task: Task, max_bytes: int) -> tuple[dict, FileGraph | None]:
    p = Path(task.abspath)
    row = {
        "path": task.path,
        "source": task.source,
        "language": task.language,
        "bytes": 0,
        "sha256": None,
        "lines": 0,
        "error_nodes": 0,
        "skipped": None,
    }
    if p.is_symlink():
        row["skipped"] = "symlink"
        return row, None
    data = p.read_bytes()
    row.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), lines=data.count(b"\n"))
    row["skipped"] = skip_reason(task.path.split("/", 1)[1], data, max_bytes)
    if row["skipped"]:
        return row, None
    graph = EXTRACTORS[task.language](task.path, data, task.unit)
    row["error_nodes"] = graph.error_nodes
    return row, graph


def _extract_chunk(args: tuple[list[Task], int]) -> list[tuple[dict, FileGraph | None]]:
    tasks, max_bytes = args
    return [extract_one(t, max_bytes) for t in tasks]


def parse_all(tasks: list[Task], workers: int, max_bytes: int, chunk: int, progress: bool = True):
    chunks = [(tasks[i : i + chunk], max_bytes) for i in range(0, len(tasks), chunk)]
    bar = tqdm(total=len(tasks), desc="extract", unit="file", disable=not progress)
    results: list[tuple[dict, FileGraph | None]] = []
    if workers <= 1:
        mapped = map(_extract_chunk, chunks)
        for part in mapped:
            results += part
            bar.update(len(part))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for part in pool.map(_extract_chunk, chunks):
                results += part
                bar.update(len(part))
    bar.close()
    return results


def build_tables(results) -> dict[str, pd.DataFrame]:
    graphs = [g for _, g in results if g is not None]
    resolver = Resolver(graphs, SPECS)
    triples, ref_mentions = resolver.triples(graphs)
    entities = [
        {
            "id": e.id,
            "kind": e.kind,
            "name": e.name,
            "language": e.language,
            "file": e.file,
            "start_line": e.start_line,
            "end_line": e.end_line,
        }
        for e in resolver.entities.values()
    ] + resolver.external_entities(triples)
    def_mentions = [
        {"entity_id": e.id, "file": e.file, "start_byte": e.span[0], "end_byte": e.span[1], "role": "def"}
        for g in graphs
        for e in g.entities
        if e.span is not None
    ]
    return {
        "files": pd.DataFrame([r for r, _ in results], columns=list(FILE_SCHEMA.names)),
        "entities": pd.DataFrame(entities, columns=list(ENTITY_SCHEMA.names)),
        "mentions": pd.DataFrame(def_mentions + ref_mentions, columns=list(MENTION_SCHEMA.names)),
        "triples": pd.DataFrame(triples, columns=list(TRIPLE_SCHEMA.names)),
    }


FILE_SCHEMA = pa.schema(
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
)
ENTITY_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("language", pa.string()),
        ("file", pa.string()),
        ("start_line", pa.int64()),
        ("end_line", pa.int64()),
    ]
)
MENTION_SCHEMA = pa.schema(
    [
        ("entity_id", pa.string()),
        ("file", pa.string()),
        ("start_byte", pa.int64()),
        ("end_byte", pa.int64()),
        ("role", pa.string()),
    ]
)
TRIPLE_SCHEMA = pa.schema(
    [
        ("head", pa.string()),
        ("relation", pa.int8()),
        ("tail", pa.string()),
        ("file", pa.string()),
        ("line", pa.int64()),
        ("resolution", pa.string()),
        ("language", pa.string()),
    ]
)
SCHEMAS = {
    "files": FILE_SCHEMA,
    "entities": ENTITY_SCHEMA,
    "mentions": MENTION_SCHEMA,
    "triples": TRIPLE_SCHEMA,
}


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        table = pa.Table.from_pandas(tables[name], schema=SCHEMAS[name], preserve_index=False)
        with atomic.atomic_path(out_dir / f"{name}.parquet") as tmp:
            pq.write_table(table, tmp, compression="zstd")


def kg_metrics(tables: dict[str, pd.DataFrame], seconds: float) -> dict:
    files, triples, entities = tables["files"], tables["triples"], tables["entities"]
    parsed = files[files["skipped"].isna()]
    per_rel = {
        name: {
            lang: int(((triples["relation"] == i) & (triples["language"] == lang)).sum())
            for lang in LANGUAGES
        }
        for i, name in enumerate(RELATION_NAMES)
    }
    res = Counter(triples["resolution"])
    n = max(len(triples), 1)
    mb = parsed["bytes"].sum() / 1e6
    return {
        "files": int(len(files)),
        "files_extracted": int(len(parsed)),
        "files_skipped": {k: int(v) for k, v in sorted(Counter(files["skipped"].dropna()).items())},
        "files_with_errors": int((parsed["error_nodes"] > 0).sum()),
        "error_nodes": int(parsed["error_nodes"].sum()),
        "entities": int((entities["kind"] != "external").sum()),
        "external_entities": int((entities["kind"] == "external").sum()),
        "triples": int(len(triples)),
        "mentions": int(len(tables["mentions"])),
        "triples_by_language": {lang: int((triples["language"] == lang).sum()) for lang in LANGUAGES},
        "triples_by_relation": per_rel,
        "resolution_share": {r: round(res[r] / n, 4) for r in RESOLUTIONS},
        "megabytes": round(float(mb), 3),
        "seconds": round(seconds, 2),
        "mb_per_s": round(float(mb) / max(seconds, 1e-9), 3),
    }


def extract_kg(
    roots: dict[str, Path],
    out_dir: str | Path,
    workers: int = 1,
    max_file_bytes: int = 1_000_000,
    chunk_files: int = 16,
    metrics_path: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Extract every source root ({name: folder}) into out_dir/{files,entities,mentions,triples}.parquet."""
    for name, root in roots.items():
        if not Path(root).is_dir():
            raise GraphmerError(f"{name}: {root} is not a folder")
    start = time.perf_counter()
    tasks = plan(roots)
    if not tasks:
        raise GraphmerError(
            f"no Python, Java or JavaScript files under {', '.join(map(str, roots.values()))}"
        )
    results = parse_all(tasks, workers, max_file_bytes, chunk_files, progress)
    tables = build_tables(results)
    metrics = kg_metrics(tables, time.perf_counter() - start)
    write_tables(tables, Path(out_dir))
    if metrics_path is not None:
        atomic.write_json(metrics_path, metrics)
    return metrics


def source_roots(raw_dir: str | Path) -> dict[str, Path]:
    """The sources of a fetched corpus: one folder per source under data/raw/."""
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise GraphmerError(f"{raw} does not exist: run the fetch stage first (dvc repro fetch)")
    return {p.name: p for p in sorted(raw.iterdir()) if p.is_dir() and not p.name.startswith(".")}
