"""Hostile input to `extract`: one bad file (a FIFO, a device, a name that is not UTF-8, deep
nesting, a long attribute chain, an extractor bug) is listed in files.parquet with its reason while
the others are extracted; a bad output location is refused before any parsing."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pandas as pd
import pytest

from graphmer import GraphmerError
from graphmer.cli import main as cli_main
from graphmer.config import ExtractConfig
from graphmer.extract import pipeline, records
from graphmer.extract.pipeline import Task, extract_kg, extract_one, plan
from graphmer.languages import SkipFile, read_regular, special_file_reason
from graphmer.relations import Relation
from tests.extract.helpers import triples, write_tree
from tests.hostile import within

OK = {"ok.py": "def f():\n    g()\n\ndef g():\n    pass\n"}


def run(tmp_path: Path, src: Path, seconds: int = 20, **settings) -> dict[str, pd.DataFrame]:
    """extract_kg over `src` (one source, `proj`) in this process, within `seconds`."""
    with within(seconds):
        extract_kg({"proj": src}, tmp_path / "kg", ExtractConfig(workers=1, **settings), progress=False)
    return {n: pd.read_parquet(tmp_path / "kg" / f"{n}.parquet") for n in ("files", "triples")}


def reasons(tables) -> dict[str, str | None]:
    files = tables["files"]
    return {
        p.split("/", 1)[1]: (s if isinstance(s, str) else None)
        for p, s in zip(files["path"], files["skipped"])
    }


def ok_was_extracted(tables) -> bool:
    return reasons(tables)["ok.py"] is None and ("py:ok.f", "py:ok.g") in triples(tables, Relation.CALLS)


# ----------------------------------------------------------------------------- not regular files


def test_fifo_and_socket_are_listed_not_read(tmp_path):
    src = write_tree(tmp_path / "src", OK)
    os.mkfifo(src / "x.py")  # a read would wait for a writer forever
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(src / "s.js"))
        t = run(tmp_path, src, seconds=15)
    assert reasons(t) == {"ok.py": None, "x.py": "not_regular_file", "s.js": "not_regular_file"}
    assert ok_was_extracted(t)


def test_a_character_device_is_never_read():
    """A device may never end (/dev/zero would fill the memory); /dev/null keeps a regression safe:
    read, it would be listed as `empty`."""
    task = Task("proj/null.py", "/dev/null", "proj", "python", "null")
    with within(10):
        row, graph = extract_one(task, ExtractConfig())
    assert (row["skipped"], row["bytes"], graph) == ("not_regular_file", 0, None)
    with pytest.raises(SkipFile) as err:
        read_regular(Path("/dev/zero"), max_bytes=1000)  # capped, so a regression fails, not swaps
    assert err.value.reason == "not_regular_file"


def test_special_file_reason_never_opens(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "link.py").symlink_to(tmp_path / "a.py")
    os.mkfifo(tmp_path / "fifo.py")
    with within(10):
        got = {n: special_file_reason(tmp_path / n) for n in ("a.py", "link.py", "fifo.py", "gone.py")}
    assert got == {"a.py": None, "link.py": "symlink", "fifo.py": "not_regular_file", "gone.py": "unreadable"}
    assert special_file_reason(Path("/dev/null")) == "not_regular_file"


def test_a_fifo_swapped_in_after_the_check_is_refused_without_blocking(tmp_path, monkeypatch):
    """The opened file is checked again, so a FIFO that replaced a checked file cannot hang the read."""
    os.mkfifo(tmp_path / "x.py")
    monkeypatch.setattr("graphmer.languages.special_file_reason", lambda path: None)
    with within(10), pytest.raises(SkipFile) as err:
        read_regular(tmp_path / "x.py", 1000)
    assert err.value.reason == "not_regular_file"


def test_a_large_file_is_listed_unread(tmp_path):
    src = write_tree(tmp_path / "src", OK)
    with open(src / "big.py", "wb") as f:
        f.truncate(200_000_000)  # sparse: nothing on disk, 200 MB to read
    t = run(tmp_path, src, seconds=10)
    big = t["files"].set_index("path").loc["proj/big.py"]
    assert (big["skipped"], big["bytes"]) == ("too_large", 200_000_000)
    assert pd.isna(big["sha256"])  # never read, so never hashed
    assert ok_was_extracted(t)


def test_a_vanished_file_is_listed_unreadable(tmp_path):
    src = write_tree(tmp_path / "src", {**OK, "gone.py": "x = 1\n"})
    tasks = plan({"proj": src})
    (src / "gone.py").unlink()  # between the listing and the read
    rows = {Path(t.path).name: extract_one(t, ExtractConfig())[0]["skipped"] for t in tasks}
    assert rows == {"ok.py": None, "gone.py": "unreadable"}


def test_a_file_that_cannot_be_opened_is_listed_unreadable(tmp_path, monkeypatch):
    """chmod 000 does not stop root (the tests may run as root): refuse the open itself."""
    src = write_tree(tmp_path / "src", {**OK, "secret.py": "x = 1\n"})
    real_open = os.open

    def denied(path, flags, *args, **kw):
        if os.fspath(path).endswith("secret.py"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr("graphmer.languages.os.open", denied)
    t = run(tmp_path, src)
    assert reasons(t) == {"ok.py": None, "secret.py": "unreadable"}
    assert ok_was_extracted(t)


# ----------------------------------------------------------------------------- names


def test_a_name_that_is_not_utf8_is_listed_with_a_printable_path(tmp_path):
    src = write_tree(tmp_path / "src", OK)
    raw = os.fsencode(src)
    with open(raw + b"/caf\xe9.py", "wb") as f:
        f.write(b"def cafe():\n    pass\n")
    os.mkdir(raw + b"/d\xe9p")
    with open(raw + b"/d\xe9p/m.js", "wb") as f:
        f.write(b"function m() {}\n")
    t = run(tmp_path, src)
    assert reasons(t) == {
        "ok.py": None,
        "caf\\xe9.py": "undecodable_name",
        "d\\xe9p/m.js": "undecodable_name",
    }
    assert ok_was_extracted(t)


# ----------------------------------------------------------------------------- output location


def no_parsing(monkeypatch):
    def parse_all(*args, **kw):
        raise AssertionError("parsing started before the output was checked")

    monkeypatch.setattr(pipeline, "parse_all", parse_all)


@pytest.mark.parametrize("case", ["out_is_a_file", "out_below_a_file", "metrics_is_a_folder"])
def test_a_bad_output_is_refused_before_parsing(tmp_path, monkeypatch, case):
    src = write_tree(tmp_path / "src", OK)
    (tmp_path / "file").write_text("not a folder")
    out, metrics = {
        "out_is_a_file": (tmp_path / "file", None),
        "out_below_a_file": (tmp_path / "file" / "kg", None),
        "metrics_is_a_folder": (tmp_path / "kg", tmp_path),
    }[case]
    no_parsing(monkeypatch)
    with pytest.raises(GraphmerError) as err:
        extract_kg({"proj": src}, out, ExtractConfig(workers=1), metrics_path=metrics, progress=False)
    assert "\n" not in str(err.value)
    assert str(metrics if case == "metrics_is_a_folder" else out) in str(err.value)


def test_cli_out_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    src = write_tree(tmp_path / "src", OK)
    (tmp_path / "out").write_text("not a folder")
    no_parsing(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        cli_main(["extract", str(src), "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert err.count("\n") == 1 and str(tmp_path / "out") in err and "Traceback" not in err


# ----------------------------------------------------------------------------- depth


def nested_definitions(lang: str, depth: int) -> tuple[str, str]:
    if lang == "python":  # one space of indentation a level: lines stay short
        return "deep.py", "".join(" " * i + f"def f{i}():\n" for i in range(depth)) + " " * depth + "g()\n"
    if lang == "javascript":
        return "deep.js", "".join(f"function f{i}(a) {{\n" for i in range(depth)) + "}\n" * depth
    return "Deep.java", "".join(f"class C{i} {{\n" for i in range(depth)) + "void m() {}\n" + "}\n" * depth


@pytest.mark.parametrize(("lang", "depth"), [("python", 150), ("javascript", 20_000), ("java", 20_000)])
def test_deeply_nested_definitions_are_skipped_quickly(tmp_path, lang, depth):
    """20,000 nested JavaScript functions took 139 s and 3.2 GB; Java classes 3.2 GB."""
    name, source = nested_definitions(lang, depth)
    src = write_tree(tmp_path / "src", {**OK, name: source})
    t = run(tmp_path, src, seconds=20)
    assert reasons(t) == {"ok.py": None, name: "too_deep"}
    assert ok_was_extracted(t)


def test_nesting_up_to_the_cap_is_extracted(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MAX_NESTING", 3)
    src = write_tree(
        tmp_path / "src",
        {"three.py": nested_definitions("python", 3)[1], "four.py": nested_definitions("python", 4)[1]},
    )
    t = run(tmp_path, src)
    assert reasons(t) == {"three.py": None, "four.py": "too_deep"}
    assert ("py:three.f0.f1", "py:three.f0.f1.f2") in triples(t, Relation.CONTAINS)


def test_deeper_than_counts_levels_exactly():
    from tree_sitter import Parser

    from graphmer.extract import python

    def depth(node) -> int:
        return 1 + max((depth(c) for c in node.children), default=-1)

    for source in (b"x = 1\n", b"x = [[[1]]]\n", b"def f():\n    return (a.b.c(1) + [2])\n" * 50):
        root = Parser(python.LANGUAGE).parse(source).root_node
        d = depth(root)
        assert records.deeper_than(root, d - 1) and not records.deeper_than(root, d)


def test_deep_syntax_is_skipped_quickly(tmp_path):
    """18,000 nested object literals holding functions: the query alone took 15 s."""
    deep = "x = { k: function () {\n" * 18_000 + "}}\n" * 18_000
    src = write_tree(tmp_path / "src", {**OK, "deep.js": deep})
    t = run(tmp_path, src, seconds=20)
    assert reasons(t) == {"ok.py": None, "deep.js": "too_deep"}


def test_deep_syntax_under_the_cap_is_extracted(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MAX_SYNTAX_DEPTH", 40)
    src = write_tree(
        tmp_path / "src",
        {
            "shallow.py": "def f():\n    x = " + "[" * 20 + "g()" + "]" * 20 + "\n",
            "deep.py": "x = " + "[" * 50 + "]" * 50,
        },
    )
    t = run(tmp_path, src)
    assert reasons(t) == {"shallow.py": None, "deep.py": "too_deep"}
    assert ("py:shallow.f", "py:?.g") in triples(t, Relation.CALLS)


def test_definitions_deep_in_syntax_cost_linear_time(tmp_path):
    """Each definition and `this.x` asked tree-sitter for its parent, found by a walk down from the
    root: 3,900 blocks deep and 30,000 of them took over 30 s, now about 5."""
    body = "".join(f"/** @param {{T}} a */ function g{i}(a) {{}}\nthis.x{i} = a;\n" for i in range(30_000))
    source = "class A { m(a) {\n" + "{\n" * 3900 + body + "}\n" * 3900 + "} }\n"
    src = write_tree(tmp_path / "src", {"blocks.js": source})
    t = run(tmp_path, src, seconds=15, max_file_bytes=3_000_000)
    assert reasons(t) == {"blocks.js": None}
    assert ("js:blocks.js:A.m", "js:blocks.js:A.x29999") in triples(t, Relation.ACCESSES)
    assert ("js:blocks.js:A.m.g29999.a", "js:?.T") in triples(t, Relation.HAS_TYPE)


# ----------------------------------------------------------------------------- one bad file


CHAINS = {
    "python": (
        "chain.py",
        "def f():\n    a" + "\\\n".join([".b" * 50] * 20) + "()\n",
        ("py:chain.f", "py:?.b"),
    ),
    "javascript": (
        "chain.js",
        "function f() {\n  a" + "\n".join([".b" * 50] * 20) + "();\n}\n",
        ("js:chain.js:f", "js:?.b"),
    ),
    "java": (
        "Chain.java",
        "class Chain { void f() {\n  a" + "\n".join([".b" * 50] * 20) + ".m();\n} }\n",
        ("java:(default).Chain.f", "java:?.m"),
    ),
}


@pytest.mark.parametrize("lang", CHAINS)
def test_a_1000_link_attribute_chain_is_extracted(tmp_path, lang):
    """`a.b.b...b()` with 1,000 links raised RecursionError, which stopped the whole run."""
    name, source, call = CHAINS[lang]
    src = write_tree(tmp_path / "src", {**OK, name: source})
    t = run(tmp_path, src)
    assert reasons(t) == {"ok.py": None, name: None}
    assert call in triples(t, Relation.CALLS)
    assert ok_was_extracted(t)


@pytest.mark.parametrize("lang", CHAINS)
@pytest.mark.parametrize("error", [RecursionError, MemoryError, AttributeError])
def test_an_extractor_failure_skips_only_that_file(tmp_path, monkeypatch, lang, error):
    name, source, _ = CHAINS[lang]
    real = pipeline.EXTRACTORS[lang]

    def fails_on_chain(path, data, unit):
        if path.endswith(name):
            raise error("boom")
        return real(path, data, unit)

    monkeypatch.setitem(pipeline.EXTRACTORS, lang, fails_on_chain)
    src = write_tree(tmp_path / "src", {**OK, name: source})
    t = run(tmp_path, src)
    assert reasons(t) == {"ok.py": None, name: f"extract_error: {error.__name__}"}
    assert ok_was_extracted(t)
