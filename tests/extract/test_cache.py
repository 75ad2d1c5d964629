"""The parse cache: the same tables with or without it, and only changed files parsed again."""

import hashlib
import pickle
from collections import Counter, OrderedDict
from pathlib import Path

import pytest

from graphmer import GraphmerError
from graphmer.config import ExtractConfig
from graphmer.extract import cache, pipeline, python
from graphmer.extract.pipeline import extract_kg
from tests.extract.helpers import write_tree

FILES = {
    "pkg/__init__.py": "",
    "pkg/a.py": "class A:\n    def m(self):\n        pass\n\ndef free():\n    pass\n",
    "pkg/b.py": "from pkg.a import A, free\n\nclass B(A):\n    def n(self):\n        self.m()\n        A()\n",
    "pkg/deep.py": "x = " + "[\n" * 5000 + "]\n" * 5000,  # too_deep: the extractor's verdict is kept too
    "pkg/empty.py": "",  # skipped before parsing: never in the cache
    "web/a.js": "function a() { b(); }\n",
    "web/b.js": "function b() {}\n",
    "j/A.java": "package j; class A { void f() { new A(); } }\n",
}
PARSED = 6  # every file but the empty ones


@pytest.fixture
def parses(monkeypatch):
    """Which files the extractors are asked to parse, by path."""
    seen: Counter = Counter()
    for lang, fn in list(pipeline.EXTRACTORS.items()):

        def counted(path, data, unit, fn=fn):
            seen[path.split("/", 1)[1]] += 1
            return fn(path, data, unit)

        monkeypatch.setitem(pipeline.EXTRACTORS, lang, counted)
    return seen


def run(tmp_path: Path, src: Path, name: str, cache_dir: Path | None, workers: int = 1) -> dict:
    cfg = ExtractConfig(workers=workers, chunk_files=2 if workers > 1 else 16)
    m = extract_kg({"proj": src}, tmp_path / name, cfg, progress=False, cache_dir=cache_dir)
    m["md5"] = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted((tmp_path / name).iterdir())}
    return m


def entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*") if p.is_file())


def test_same_tables_with_and_without_the_cache(tmp_path):
    src = write_tree(tmp_path / "src", FILES)
    plain = run(tmp_path, src, "plain", None)
    filled = run(tmp_path, src, "filled", tmp_path / "cache")
    reused = run(tmp_path, src, "reused", tmp_path / "cache")
    pooled = run(tmp_path, src, "pooled", tmp_path / "cache", workers=2)
    assert plain["md5"] == filled["md5"] == reused["md5"] == pooled["md5"]
    assert (plain["files_from_cache"], filled["files_from_cache"], reused["files_from_cache"]) == (
        0,
        0,
        PARSED,
    )
    assert pooled["files_from_cache"] == PARSED
    assert len(entries(tmp_path / "cache")) == PARSED


def test_a_second_run_parses_nothing_and_a_changed_file_alone_is_parsed(tmp_path, parses):
    src = write_tree(tmp_path / "src", FILES)
    run(tmp_path, src, "first", tmp_path / "cache")
    assert sum(parses.values()) == PARSED
    parses.clear()
    run(tmp_path, src, "second", tmp_path / "cache")
    assert parses == {}
    (src / "pkg/a.py").write_text(FILES["pkg/a.py"] + "\ndef more():\n    free()\n")
    changed = run(tmp_path, src, "changed", tmp_path / "cache")
    assert parses == {"pkg/a.py": 1}
    assert changed["md5"] == run(tmp_path, src, "fresh", None)["md5"]


def test_a_new_source_is_the_only_one_parsed(tmp_path, parses):
    one = write_tree(tmp_path / "one", {"a.py": "def f():\n    pass\n"})
    two = write_tree(tmp_path / "two", {"b.py": "from a import f\n\ndef g():\n    f()\n"})
    cfg = ExtractConfig(workers=1)
    extract_kg({"one": one}, tmp_path / "kg1", cfg, progress=False, cache_dir=tmp_path / "cache")
    parses.clear()
    m = extract_kg(
        {"one": one, "two": two}, tmp_path / "kg2", cfg, progress=False, cache_dir=tmp_path / "cache"
    )
    assert parses == {"b.py": 1}
    assert m["files_from_cache"] == 1
    assert m["calls_in_corpus"]["python"] == 1  # resolution still sees the whole corpus


def test_a_new_extractor_version_parses_everything_again(tmp_path, parses, monkeypatch):
    src = write_tree(tmp_path / "src", FILES)
    run(tmp_path, src, "first", tmp_path / "cache")
    (old,) = [p.name for p in (tmp_path / "cache").iterdir()]
    assert old == cache.extractor_version()
    parses.clear()
    monkeypatch.setattr(cache, "extractor_version", lambda: "0123456789abcdef")
    run(tmp_path, src, "second", tmp_path / "cache")
    assert sum(parses.values()) == PARSED
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["0123456789abcdef"]  # the old one pruned


def test_editing_an_extractor_changes_the_version(tmp_path):
    files = cache.extractor_files()
    names = {p.name for p in files}
    assert {"python.py", "java.py", "javascript.py", "records.py", "pipeline.py", "languages.py"} <= names
    assert not names & {"resolve.py", "tables.py"}
    copies = [tmp_path / p.name for p in files]
    for p, c in zip(files, copies):
        c.write_bytes(p.read_bytes())
    assert cache.code_version(copies) == cache.extractor_version()
    python = tmp_path / "python.py"
    python.write_bytes(python.read_bytes() + b"\n# edited\n")
    assert cache.code_version(copies) != cache.extractor_version()


def flipped(blob: bytes, other: bytes) -> bytes:
    return blob[:-10] + bytes(b ^ 0xFF for b in blob[-10:])


def foreign(blob: bytes, other: bytes) -> bytes:
    return other  # another file's entry, valid in itself


def truncated(blob: bytes, other: bytes) -> bytes:
    return blob[:40]


def restamped(blob: bytes, other: bytes) -> bytes:
    """A pickle that names a class, under this entry's own key and with a matching digest."""
    head = len(cache.MAGIC) + 32
    payload = pickle.dumps(OrderedDict(a=1), protocol=5)
    return blob[:head] + hashlib.sha256(payload).digest() + payload


@pytest.mark.parametrize("damage", [flipped, foreign, truncated, restamped])
def test_an_entry_that_cannot_be_trusted_is_parsed_again_and_rewritten(tmp_path, parses, damage):
    src = write_tree(tmp_path / "src", FILES)
    clean = run(tmp_path, src, "first", tmp_path / "cache")
    key = cache.ParseCache.open(tmp_path / "cache", ExtractConfig(workers=1)).key
    paths = {}
    for rel in ("pkg/a.py", "pkg/b.py"):
        sha = hashlib.sha256((src / rel).read_bytes()).hexdigest()
        unit = rel[:-3].replace("/", ".")
        k = key(sha, f"proj/{rel}", "proj", "python", unit)
        paths[rel] = tmp_path / "cache" / cache.extractor_version() / k[:2] / k[2:]
    good = paths["pkg/a.py"].read_bytes()
    paths["pkg/a.py"].write_bytes(damage(good, paths["pkg/b.py"].read_bytes()))
    parses.clear()
    again = run(tmp_path, src, "again", tmp_path / "cache")
    assert parses == {"pkg/a.py": 1}
    assert again["md5"] == clean["md5"]
    assert paths["pkg/a.py"].read_bytes() == good


def test_a_cache_that_cannot_be_written_costs_nothing_but_speed(tmp_path, parses):
    src = write_tree(tmp_path / "src", FILES)
    (tmp_path / "cache").write_text("a file where the folder should be")
    m = run(tmp_path, src, "kg", tmp_path / "cache")
    assert m["md5"] == run(tmp_path, src, "plain", None)["md5"]
    assert sum(parses.values()) == 2 * PARSED


def test_decode_undoes_encode(tmp_path):
    src = write_tree(tmp_path / "src", FILES)
    for task in pipeline.plan({"proj": src}):
        result = pipeline.extract_one(task, ExtractConfig())
        assert cache.decode(cache.encode(result)) == result


def test_decode_keeps_unions_and_dynamic_classes():
    g = python.extract("m.py", b"class C(metaclass=M):\n    x: A | B\n", "m")
    assert (g.unions, g.dynamic) == (["py:m.C.x"], ["py:m.C"])
    assert cache.decode(cache.encode(({"path": "m.py"}, g))) == ({"path": "m.py"}, g)


def test_the_cache_must_lie_outside_the_output(tmp_path):
    src = write_tree(tmp_path / "src", FILES)
    with pytest.raises(GraphmerError, match="outside the output"):
        extract_kg({"proj": src}, tmp_path / "kg", cache_dir=tmp_path / "kg" / "cache", progress=False)
