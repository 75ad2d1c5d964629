"""`graphmer embed`: one vector per entity definition of a codebase, for nearest-neighbour search.

    graphmer embed src/ tools/release.py --out vectors.parquet
    embed_paths({"src": Path("src")}, Path("vectors.parquet"))   # the same from Python

Design choices:
- A row is a definition: an entity whose name static extraction finds defined in a file (a 'def'
  mention: class, function, method, parameter, field, Java package), at the bytes of its name.
  The same entity defined in two files (two copies of a project) has a row for each file.
- Modules and external entities have no definition span and get no row; the summary counts
  them by kind. A module's vector, where one is wanted, is the mean of its file's rows.
- The model reads the code alone, as `graphmer predict` does: R roots around the name, a quarter
  of them before it (`ranking.code_window`), every leaf group empty. No graph is needed at
  inference, so a file embeds the same in whatever folder it sits.
- The vector is the mean of the final hidden states over the roots that cover the name's bytes:
  the name's own tokens, read in context. Definitions whose windows start at the same token (all
  of those in a file shorter than R tokens) share one forward pass.
- The table: id, kind, name, language, file (`<source>/<path>` as in the KG tables; a file given
  alone is its own source), line (of the name), vector (fixed_size_list<float32>[hidden]);
  sorted by (file, line, id), written atomically. No definition found is an empty table.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from graphmer import GraphmerError, atomic, progress_bar
from graphmer.checkpoint import load_model
from graphmer.config import ExtractConfig, PathsConfig
from graphmer.extract.pipeline import check_output, extract_kg, plan
from graphmer.kg import ENTITIES_TABLE, FILES_TABLE, MENTIONS_TABLE
from graphmer.languages import SkipFile, language_of, read_regular
from graphmer.loader import IGNORE, collate, compact, word_starts
from graphmer.model import MODEL_INPUTS, GraphMERT
from graphmer.ranking import code_window
from graphmer.samples import char_offsets, mention_tokens

COLUMNS = ("id", "kind", "name", "language", "file", "line")
BATCH_SIZE = 16  # code windows per forward pass


def schema(hidden: int) -> pa.Schema:
    """The table's columns; `vector` has `hidden` floats in every row."""
    text = [pa.field(c, pa.string()) for c in COLUMNS[:-1]]
    return pa.schema(
        [*text, pa.field("line", pa.int64()), pa.field("vector", pa.list_(pa.float32(), hidden))]
    )


@dataclass(frozen=True)
class Definition:
    """An entity defined in a file (a path of the KG tables): the bytes of its name there."""

    entity: str
    file: str
    start: int
    end: int


def definitions(kg_dir: Path) -> dict[str, list[Definition]]:
    """Per file, the first definition of each entity defined there, in the order of the code."""
    men = pq.read_table(kg_dir / MENTIONS_TABLE, filters=[("role", "=", "def")]).to_pydict()
    first: dict[tuple[str, str], tuple[int, int]] = {}
    for e, f, s, t in zip(men["entity_id"], men["file"], men["start_byte"], men["end_byte"]):
        if (e, f) not in first or s < first[(e, f)][0]:
            first[(e, f)] = (s, t)
    by_file: dict[str, list[Definition]] = defaultdict(list)
    for (e, f), (s, t) in first.items():
        by_file[f].append(Definition(e, f, s, t))
    return {f: sorted(d, key=lambda x: (x.start, x.entity)) for f, d in sorted(by_file.items())}


def file_windows(
    data: bytes, defs: list[Definition], tok, roots: int, leaves: int
) -> tuple[list[dict[str, np.ndarray]], list[tuple[int, int, int]]]:
    """The code windows of one file's definitions and, per definition, (window, first root, last
    root) of the roots covering its name. Definitions whose windows start together share one."""
    text = data.decode("utf-8")
    enc = tok.encode(text)  # once per file; each window is a slice of it
    ends = np.asarray([e for _, e in enc.offsets], dtype=np.int64)
    chars = char_offsets(data, text, np.asarray([(d.start, d.end) for d in defs], dtype=np.int64))
    first, last = mention_tokens(ends, chars[:, 0], chars[:, 1])
    windows: dict[int, tuple[int, dict[str, np.ndarray]]] = {}  # start token -> (index, window)
    spans = []
    starts = word_starts(tok.get_vocab())  # once per file, not per definition
    for a, b in zip(np.minimum(first, len(ends) - 1).tolist(), last.tolist()):
        item, start = code_window(enc.ids, a, roots, leaves, starts)
        if start not in windows:
            item["labels"] = np.full(len(item["input_ids"]), IGNORE, np.int64)  # compact carries them
            windows[start] = (len(windows), item)
        spans.append((windows[start][0], a - start, min(b - start, roots - 1)))
    return [item for _, item in windows.values()], spans


@torch.inference_mode()
def pooled_states(
    model: GraphMERT, items: list[dict[str, np.ndarray]], spans: list[tuple[int, int, int]]
) -> np.ndarray:
    """(S, hidden) float32: per span (window, first root, last root), the mean of the encoder's
    final hidden states over those roots, in one forward pass over the windows."""
    batch = compact(collate(items), model.cfg.roots, model.cfg.leaves)  # no leaf group: R positions
    device = next(model.parameters()).device
    hidden = model(*(batch[k].to(device) for k in MODEL_INPUTS))  # (B, R, hidden)
    pooled = torch.stack([hidden[i, a : b + 1].mean(0) for i, a, b in spans])
    return pooled.float().cpu().numpy()


@dataclass
class Files:
    """What extraction saw (each extracted file's sha256, how many it skipped) and where each
    source's files are on disk; `read` counts the files that changed or vanished since."""

    sha256: dict[str, str]
    skipped: int
    folders: dict[str, Path]
    max_bytes: int
    changed: int = 0

    @classmethod
    def load(cls, kg_dir: Path, folders: dict[str, Path], max_bytes: int) -> Files:
        t = pq.read_table(kg_dir / FILES_TABLE, columns=["path", "sha256", "skipped"]).to_pydict()
        kept = {p: h for p, h, s in zip(t["path"], t["sha256"], t["skipped"]) if not s}
        return cls(kept, len(t["path"]) - len(kept), folders, max_bytes)

    def read(self, path: str) -> bytes | None:
        """The bytes extraction read, or None when the file is no longer those bytes."""
        source, rest = path.split("/", 1)
        try:
            data = read_regular(self.folders[source] / rest, self.max_bytes)
        except SkipFile:
            data = None
        if data is None or hashlib.sha256(data).hexdigest() != self.sha256.get(path):
            self.changed += 1
            return None
        return data


# A window and the definitions pooled from it: (definition, line of its name, first root, last root).
Job = tuple[dict[str, np.ndarray], list[tuple[Definition, int, int, int]]]


def jobs(
    by_file: dict[str, list[Definition]], files: Files, tok, roots: int, leaves: int, progress: bool = False
) -> Iterator[Job]:
    """Every window of every file, with the definitions it embeds (a changed file's: none)."""
    for path, defs in progress_bar(
        by_file.items(), total=len(by_file), desc="embed", unit="file", disable=not progress
    ):
        data = files.read(path)
        if data is None:
            continue
        items, spans = file_windows(data, defs, tok, roots, leaves)
        newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
        lines = 1 + np.searchsorted(newlines, [d.start for d in defs])
        members: list[list] = [[] for _ in items]
        for d, line, (w, a, b) in zip(defs, lines.tolist(), spans):
            members[w].append((d, line, a, b))
        yield from zip(items, members)


def embed_jobs(
    model: GraphMERT, work: Iterator[Job], batch_size: int
) -> tuple[list[tuple[Definition, int]], np.ndarray, int]:
    """The definitions of `work` with their lines, their vectors (N, hidden) in the same order,
    and how many windows ran; `batch_size` windows per forward pass."""
    done: list[tuple[Definition, int]] = []
    vectors = [np.zeros((0, model.cfg.hidden), np.float32)]
    ran = 0
    for chunk in chunks(work, batch_size):
        spans = [(i, a, b) for i, (_, members) in enumerate(chunk) for _, _, a, b in members]
        vectors.append(pooled_states(model, [item for item, _ in chunk], spans))
        done += [(d, line) for _, members in chunk for d, line, _, _ in members]
        ran += len(chunk)
    return done, np.concatenate(vectors), ran


def chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for x in items:
        chunk.append(x)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --------------------------------------------------------------------------- `graphmer embed`


def embed_paths(
    roots: dict[str, Path],
    out: Path,
    paths: PathsConfig = PathsConfig(),
    workers: int = 1,
    batch_size: int = BATCH_SIZE,
    progress: bool = True,
    max_file_bytes: int = ExtractConfig.max_file_bytes,
    *,
    tokenizer: Path | None = None,
) -> dict:
    """Embed every definition in the files of `roots` ({source name: folder or single file}) with
    the trained model and write the table to `out` (Parquet). The summary counts the rows
    (`entities`), the files extracted, embedded, skipped by extraction (`graphmer extract` lists
    why) and changed since, the forward windows, and the entities without a definition by kind.
    The model is `paths.models`'s, its tokenizer `paths.tokenizer` unless `tokenizer` names another."""
    start = time.perf_counter()
    out = Path(out)
    check_inputs(roots, out, workers, batch_size, max_file_bytes)
    model, tok = load_model(paths.models, tokenizer or paths.tokenizer)
    R, L = model.cfg.roots, model.cfg.leaves
    alone = {name for name, path in roots.items() if not Path(path).is_dir()}
    # Single files are copied out of the way of the folders' walk (`out` may be inside one).
    with atomic.scratch_dir(out) as scratch, tempfile.TemporaryDirectory(prefix="graphmer-embed-") as files:
        kg = Extracted.of(stage(roots, Path(files)), scratch / "kg", workers, max_file_bytes, progress)
        work = jobs(kg.by_file, kg.files, tok, R, L, progress)
        done, vectors, windows = embed_jobs(model, work, batch_size)
    table = definition_table(done, vectors, kg.info, alone, model.cfg.hidden)
    atomic.write_parquet(out, table)
    defined = {d.entity for defs in kg.by_file.values() for d in defs}
    return {
        "entities": len(table),
        "files": len(kg.files.sha256),
        "files_embedded": len({d.file for d, _ in done}),
        "files_skipped": kg.files.skipped,
        "files_changed": kg.files.changed,
        "windows": windows,
        "without_definition": dict(
            sorted(Counter(k for e, (k, _, _) in kg.info.items() if e not in defined).items())
        ),
        "seconds": round(time.perf_counter() - start, 1),
    }


@dataclass
class Extracted:
    """The static graph of the sources, as far as embedding reads it."""

    by_file: dict[str, list[Definition]]
    files: Files
    info: dict[str, tuple[str, str, str]]  # entity id -> (kind, name, language)

    @classmethod
    def of(
        cls, folders: dict[str, Path], kg: Path, workers: int, max_bytes: int, progress: bool
    ) -> Extracted:
        """Extract `folders` into `kg` and read back what embedding needs."""
        if not plan(folders):  # no file of our languages: nothing to embed, as in files that define nothing
            return cls({}, Files({}, 0, folders, max_bytes), {})
        extract_kg(folders, kg, ExtractConfig(workers=workers, max_file_bytes=max_bytes), progress=progress)
        ent = pq.read_table(kg / ENTITIES_TABLE, columns=["id", "kind", "name", "language"]).to_pydict()
        info = {
            e: (k, n, lang) for e, k, n, lang in zip(ent["id"], ent["kind"], ent["name"], ent["language"])
        }
        return cls(definitions(kg), Files.load(kg, folders, max_bytes), info)


def check_inputs(
    roots: dict[str, Path], out: Path, workers: int, batch_size: int, max_file_bytes: int
) -> None:
    """Refuse, before the model is loaded or a file parsed, what could only fail later."""
    for name, value in (
        ("--workers", workers),
        ("--batch-size", batch_size),
        ("--max-file-bytes", max_file_bytes),
    ):
        if value <= 0:
            raise GraphmerError(f"{name} must be > 0, got {value}")
    if not roots:
        raise GraphmerError("no folder or file to embed")
    for path in map(Path, roots.values()):
        if path.is_dir():
            continue
        if not path.exists():
            raise GraphmerError(f"{path}: no such file or folder")
        if not path.is_file():
            raise GraphmerError(f"{path}: not a regular file or a folder")
        if language_of(path.name) is None:
            raise GraphmerError(f"{path}: not a Python, Java or JavaScript file")
        if path.stat().st_size > max_file_bytes:
            raise GraphmerError(f"{path} is larger than --max-file-bytes ({max_file_bytes} bytes)")
    if language_of(out.name) is not None:  # `--out shop.py` would replace a source file with Parquet
        raise GraphmerError(f"{out} is a source file name: choose a .parquet output")
    check_output(out, folder=False)


def stage(roots: dict[str, Path], staging: Path) -> dict[str, Path]:
    """The folder of each source for extraction, which walks folders: a folder as it is, a single
    file copied alone into a folder of `staging` (the copy keeps the file's name)."""
    folders = {}
    for i, (name, path) in enumerate(roots.items()):
        path = Path(path)
        if path.is_dir():
            folders[name] = path
            continue
        folders[name] = staging / str(i)
        folders[name].mkdir(parents=True)
        shutil.copyfile(path, folders[name] / path.name)
    return folders


def definition_table(
    done: list[tuple[Definition, int]],
    vectors: np.ndarray,
    info: dict[str, tuple[str, str, str]],
    alone: set[str],
    hidden: int,
) -> pa.Table:
    """The output rows sorted by (file, line, id); a single file's rows name it by its source."""

    def shown(path: str) -> str:
        source = path.split("/", 1)[0]
        return source if source in alone else path

    keys = [(shown(d.file), line, d.entity) for d, line in done]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    cols = {c: [] for c in COLUMNS}
    for i in order:
        (file, line, entity), (kind, name, language) = keys[i], info[keys[i][2]]
        for c, v in zip(COLUMNS, (entity, kind, name, language, file, line)):
            cols[c].append(v)
    flat = pa.array(vectors[order].reshape(-1), pa.float32())
    cols["vector"] = pa.FixedSizeListArray.from_arrays(flat, hidden)
    return pa.table(cols, schema=schema(hidden))
