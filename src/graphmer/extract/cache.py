"""Per-file cache of parse results: re-extracting a corpus re-parses only the files that changed.

An entry is one file's FileResult (its files.parquet row and FileGraph, before cross-file
resolution), found by a key that hashes everything the result depends on: the file's bytes
(sha256), its path, source, language and unit (a Python module name depends on the `__init__.py`
files around it), the settings that decide skipping, and the extractor version: a hash of the
code that turns bytes into a FileResult and of the tree-sitter packages' versions. Editing an
extractor changes the version, so no stale entry is ever found; each version has its own folder,
and the folders of other versions are removed (`prune`).

Entries are written atomically. One that is truncated, corrupt or written for another key is
ignored (and rewritten), never trusted: its header holds its key and a digest of its payload, and
the payload is a pickle of plain tuples that an unpickler able to load no class or function reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import pickle
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

from graphmer import GraphmerError, atomic
from graphmer.config import ExtractConfig
from graphmer.extract.records import Entity, Fact, FileGraph, Ref

MAGIC = b"graphmer-parse-cache 2\n"
NOT_PER_FILE = frozenset({"workers", "chunk_files", "resolve_depth"})
"""ExtractConfig fields that change no file's parse result (the rest are in every key, so a new
setting is assumed to matter until it is listed here)."""
GRAMMARS = ("tree-sitter", "tree-sitter-python", "tree-sitter-java", "tree-sitter-javascript")
AFTER_PARSING = frozenset({"resolve.py", "tables.py"})
VERSION_DIR = re.compile(r"[0-9a-f]{16}\Z")


def extractor_files() -> list[Path]:
    """The code that makes a FileResult: every module of graphmer.extract but those of what reruns
    on every extraction (`resolve`, `tables`: editing them keeps the cache), the file classifier
    and the relation ids."""
    pkg = Path(__file__).parent
    files = sorted(p for p in pkg.glob("*.py") if p.name not in AFTER_PARSING)
    return files + [pkg.parent / "languages.py", pkg.parent / "relations.py"]


def code_version(files: list[Path]) -> str:
    """A hash of `files`' names and bytes, the grammar packages' versions and Python's version."""
    h = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for p in files:
        h.update(f"\0{p.name}\0".encode() + p.read_bytes())
    for name in GRAMMARS:
        h.update(f"\0{name}=={metadata.version(name)}".encode())
    return h.hexdigest()[:16]


@functools.cache
def extractor_version() -> str:
    """The version an entry is written for: `code_version` of `extractor_files`."""
    return code_version(extractor_files())


class _NoGlobals(pickle.Unpickler):
    """Reads plain data only: a pickle that names any class or function is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def encode(result: tuple[dict, FileGraph | None]) -> bytes:
    """A FileResult as a pickle of tuples, lists, dicts, strings and ints."""
    row, g = result
    if g is None:
        return pickle.dumps((row, None), protocol=5)
    entities = [
        (e.id, e.kind, e.name, e.language, e.file, e.start_line, e.end_line, e.parent, e.span)
        for e in g.entities
    ]
    facts = [(f.head, f.relation, tuple(f.ref), f.line, f.span) for f in g.facts]
    graph = (
        g.path,
        g.language,
        entities,
        facts,
        g.imports,
        g.star_imports,
        g.types,
        g.unions,
        g.dynamic,
        g.error_nodes,
    )
    return pickle.dumps((row, graph), protocol=5)


def decode(payload: bytes) -> tuple[dict, FileGraph | None]:
    """`encode`'s FileResult back; raises on anything that is not one."""
    row, graph = _NoGlobals(io.BytesIO(payload)).load()
    if not isinstance(row, dict):
        raise TypeError("not a FileResult")
    if graph is None:
        return row, None
    path, language, entities, facts, imports, stars, types, unions, dynamic, errors = graph
    g = FileGraph(
        path,
        language,
        [Entity(*e) for e in entities],
        [],
        dict(imports),
        list(stars),
        dict(types),
        list(unions),
        list(dynamic),
        errors,
    )
    g.facts = [Fact(h, rel, Ref(*ref), line, span) for h, rel, ref, line, span in facts]
    return row, g


@dataclasses.dataclass(frozen=True)
class ParseCache:
    """The entries of one extractor version under `root`, for one ExtractConfig's settings."""

    root: Path
    settings: str
    version: str

    @classmethod
    def open(cls, root: str | Path, cfg: ExtractConfig) -> ParseCache:
        values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in NOT_PER_FILE}
        return cls(Path(root), repr(sorted(values.items())), extractor_version())

    def key(self, sha256: str, *fields: str) -> str:
        """The key of a file's result: its bytes' sha256 and what else names it (path, unit...)."""
        parts = (self.version, self.settings, sha256, *fields)
        return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / self.version / key[:2] / key[2:]

    def load(self, key: str) -> tuple[tuple[dict, FileGraph | None], bytes] | None:
        """The FileResult of `key` and its payload (`encode`'s bytes, for a worker to send on as
        they are), or None when there is no entry or it cannot be trusted."""
        try:
            blob = self._path(key).read_bytes()
        except OSError:
            return None
        head = len(MAGIC)
        if blob[:head] != MAGIC or blob[head : head + 32] != bytes.fromhex(key):
            return None
        digest, payload = blob[head + 32 : head + 64], blob[head + 64 :]
        if hashlib.sha256(payload).digest() != digest:
            return None
        try:
            return decode(payload), payload
        except Exception:  # a payload that passes the digest but is no FileResult: not ours
            return None

    def store(self, key: str, result: tuple[dict, FileGraph | None]) -> None:
        """Write the entry of `key` (best effort: a cache that cannot be written costs speed only)."""
        payload = encode(result)
        blob = MAGIC + bytes.fromhex(key) + hashlib.sha256(payload).digest() + payload
        with contextlib.suppress(OSError, GraphmerError):  # GraphmerError: the disk is full
            atomic.write_bytes(self._path(key), blob)

    def prune(self) -> None:
        """Remove the folders of other extractor versions: no key of this code can reach them."""
        try:
            stale = [p for p in self.root.iterdir() if VERSION_DIR.match(p.name) and p.name != self.version]
        except OSError:
            return
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
