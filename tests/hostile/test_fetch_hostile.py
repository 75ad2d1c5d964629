"""Hostile and careless input to `fetch` and to the atomic writers every stage uses: refused or
skipped with one line naming the input, nothing written outside the target, nothing lost."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile

import pytest
import torch

from graphmer import GraphmerError, atomic
from graphmer.cli import main as cli_main
from graphmer.config import CorpusConfig, SourceConfig
from graphmer.corpus.archive import Limits, UnsafeArchiveError, extract_archive
from graphmer.corpus.fetch import MARKER, fetch_corpus
from graphmer.corpus.sources import FetchError, fetch_source
from tests.corpus.fixtures import make_pypi_index
from tests.hostile import within


def local(path, **kw) -> CorpusConfig:
    return CorpusConfig([SourceConfig("p", "local", path=str(path))], **kw)


def a_project(root):
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/a.py").write_text("def a():\n    return 1\n")
    return root


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- 1: data loss


def test_fetch_refuses_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(GraphmerError, match=r"mine is not empty and was not written by fetch"):
        fetch_corpus(local(a_project(tmp_path / "proj")), out)
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_fetch_replaces_its_own_output_and_fills_an_empty_folder(tmp_path):
    proj, out = a_project(tmp_path / "proj"), tmp_path / "raw"
    out.mkdir()
    assert fetch_corpus(local(proj), out)["files"] == 1
    assert (out / MARKER).is_file()
    (proj / "pkg/b.py").write_text("def b():\n    return 2\n")
    assert fetch_corpus(local(proj), out)["files"] == 2  # its own folder: replaced


@pytest.mark.parametrize("where", [".", "/"])
def test_cli_fetch_into_cwd_or_root_is_one_line(tmp_path, monkeypatch, capsys, where):
    params = tmp_path / "params.yaml"
    proj = a_project(tmp_path / "proj")
    params.write_text(f"corpus:\n  sources:\n    - {{name: p, kind: local, path: {proj}}}\n")
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(where))
    with pytest.raises(SystemExit) as err:
        cli_main(["fetch", "--params", str(params), "--out", where])
    assert err.value.code == 1
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "was not written by fetch" in message
    assert sorted(os.listdir(where)) == before


# --------------------------------------------------------------------------- 2: no code runs


def evil_index(root, canary):
    """A PEP 503 index whose sdist's build backend writes `canary` the moment it is imported."""
    backend = f"open({str(canary)!r}, 'w').write('ran')\n"
    backend += "def prepare_metadata_for_build_wheel(d, c=None):\n    1/0\n"
    return make_pypi_index(root, {"backend.py": backend.encode()})


@pytest.mark.parametrize("right_pin", [True, False])
def test_pypi_sdist_code_never_runs(tmp_path, right_pin):
    canary = tmp_path / "canary"
    index, sha = evil_index(tmp_path / "index", canary)
    pin = sha if right_pin else "0" * 64
    src = SourceConfig("evil", "pypi", package="demo-pkg", version="1.0", sha256=pin, index_url=index)
    (tmp_path / "work").mkdir()
    if right_pin:
        root = fetch_source(src, tmp_path / "work", Limits.of())
        assert (root / "demo/core.py").is_file()
    else:
        with pytest.raises(FetchError, match=r"source 'evil': sha256 mismatch"):
            fetch_source(src, tmp_path / "work", Limits.of())
    assert not canary.exists()


# --------------------------------------------------------------------------- 3, 4: names and options


@pytest.mark.parametrize("name", ["..", ".", "...", ".hidden", "a/b", ""])
def test_source_name_is_one_plain_path_component(name):
    with pytest.raises(GraphmerError, match=r"name must be"):
        SourceConfig(name, "local", path="/x")


def test_git_url_is_never_an_option(tmp_path):
    canary = tmp_path / "canary"
    src = SourceConfig("g", "git", url=f"--upload-pack=touch {canary}", commit="a" * 40)
    (tmp_path / "work").mkdir()
    with pytest.raises(GraphmerError) as err:
        fetch_source(src, tmp_path / "work", Limits.of())
    assert "\n" not in str(err.value)
    assert not canary.exists()


# --------------------------------------------------------------------------- 5, 8: hangs and memory


def test_fifo_and_oversized_files_in_a_local_folder_are_skipped(tmp_path):
    proj = a_project(tmp_path / "proj")
    os.mkfifo(proj / "pkg/x.py")
    (proj / "pkg/big.py").write_text("x = 1\n" * 400)
    with within(30):
        m = fetch_corpus(local(proj, max_archive_member_bytes=1000), tmp_path / "raw")
    assert m["files"] == 1
    assert m["skipped"] == {"not_regular_file": 1, "too_large": 1}
    assert not (tmp_path / "raw/p/pkg/big.py").exists()


def test_a_fifo_as_a_local_archive_is_refused(tmp_path):
    os.mkfifo(tmp_path / "x.tar.gz")
    src = SourceConfig("p", "local", path=str(tmp_path / "x.tar.gz"))
    (tmp_path / "work").mkdir()
    with within(30), pytest.raises(FetchError, match=r"is not a regular file or folder"):
        fetch_source(src, tmp_path / "work", Limits.of())


def test_member_cap_stops_before_reading_every_header(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(12):
            tar.addfile(tarfile.TarInfo(f"e{i}.py"), io.BytesIO(b""))
    raw = buf.getvalue()
    cut = 12 * tarfile.BLOCKSIZE  # after 12 headers: garbage that a full header read would trip on
    (tmp_path / "x.tar").write_bytes(raw[:cut] + b"\xff" * 4096)
    limits = Limits.of(local(tmp_path, max_archive_members=10))
    with pytest.raises(UnsafeArchiveError, match=r"more than 10 members"):
        extract_archive(tmp_path / "x.tar", tmp_path / "out", limits)


# --------------------------------------------------------------------------- 10, 13: damaged archives


def twenty_files() -> dict[str, bytes]:
    return {f"src/m{i:02d}.py": f"def f{i}():\n    return {i}\n".encode() * 20 for i in range(20)}


def tar_with(files: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("suffix", "mode"), [(".tar.gz", "w:gz"), (".tar.xz", "w:xz"), (".tar.bz2", "w:bz2"), (".tar", "w")]
)
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_tar_fails_the_source_with_one_line(tmp_path, suffix, mode, damage):
    good = tar_with(twenty_files(), mode)
    if damage == "truncated":
        bad = good[: len(good) // 2]
    elif mode == "w":  # a plain tar checksums only its headers: damage the 11th header
        bad = flip(good, 10 * (tarfile.BLOCKSIZE * 2) + 10)
    else:
        bad = flip(good, len(good) // 2)
    path = tmp_path / f"x{suffix}"
    path.write_bytes(bad)
    (tmp_path / "work").mkdir()
    with pytest.raises(FetchError) as err:
        fetch_source(SourceConfig("p", "local", path=str(path)), tmp_path / "work", Limits.of())
    assert "source 'p'" in str(err.value) and "\n" not in str(err.value)


def test_every_compressed_tar_roundtrips_when_intact(tmp_path):
    for suffix, mode in ((".tar.gz", "w:gz"), (".tar.xz", "w:xz"), (".tar.bz2", "w:bz2"), (".tar", "w")):
        path = tmp_path / f"x{suffix}"
        path.write_bytes(tar_with(twenty_files(), mode))
        assert extract_archive(path, tmp_path / suffix, Limits.of()) == 20


def zip_with(files: dict[str, bytes], method: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_corrupt_compressed_zip_member_is_one_line(tmp_path, method):
    data = bytes(range(256)) * 64
    raw = zip_with({"a.py": data}, method)
    at = raw.index(b"a.py") + 4 + 40  # inside the compressed data of the only member
    (tmp_path / "x.zip").write_bytes(flip(raw, at))
    with pytest.raises(UnsafeArchiveError) as err:
        extract_archive(tmp_path / "x.zip", tmp_path / "out", Limits.of())
    assert "\n" not in str(err.value) and "a.py" in str(err.value)


def test_encrypted_or_unsupported_zip_member_is_refused(tmp_path):
    raw = bytearray(zip_with({"a.py": b"x = 1\n"}, zipfile.ZIP_STORED))
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # mark the member encrypted in both headers
        at = raw.index(header) + (6 if header == b"PK\x03\x04" else 8)
        raw[at] |= 0x1
    (tmp_path / "enc.zip").write_bytes(bytes(raw))
    with pytest.raises(UnsafeArchiveError, match=r"'a.py' is encrypted"):
        extract_archive(tmp_path / "enc.zip", tmp_path / "out1", Limits.of())
    raw = bytearray(zip_with({"a.py": b"x = 1\n"}, zipfile.ZIP_STORED))
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # compression method 99 (AES) in both headers
        at = raw.index(header) + (8 if header == b"PK\x03\x04" else 10)
        raw[at] = 99
    (tmp_path / "aes.zip").write_bytes(bytes(raw))
    with pytest.raises(UnsafeArchiveError, match=r"compression method 99, not supported"):
        extract_archive(tmp_path / "aes.zip", tmp_path / "out2", Limits.of())


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_path_that_is_both_file_and_folder_is_refused(tmp_path, kind):
    files = {"a": b"x", "a/b.py": b"y = 1\n"}
    path = tmp_path / f"x.{kind}"
    path.write_bytes(tar_with(files, "w") if kind == "tar" else zip_with(files, zipfile.ZIP_STORED))
    with pytest.raises(UnsafeArchiveError, match=r"both a file and a folder"):
        extract_archive(path, tmp_path / "out", Limits.of())
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# --------------------------------------------------------------------------- 11: names that are not UTF-8


def test_tar_member_with_a_non_utf8_name_is_skipped_by_fetch(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, errors="surrogateescape") as tar:
        for name in ("ok.py", os.fsdecode(b"caf\xe9.py")):
            data = b"def f():\n    return 1\n"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "x.tar").write_bytes(buf.getvalue())
    m = fetch_corpus(local(tmp_path / "x.tar"), tmp_path / "raw")
    assert m["files"] == 1 and m["skipped"] == {"undecodable_name": 1}
    assert sorted(os.listdir(tmp_path / "raw/p")) == ["ok.py"]


# --------------------------------------------------------------------------- 13, 14, 15: atomic writes


def test_a_full_disk_is_one_line_and_keeps_the_old_output(tmp_path):
    target = tmp_path / "step.pt"
    target.write_bytes(b"the old checkpoint")
    full = pytest.raises(GraphmerError, match=r"the disk is full: could not write .*step\.pt")
    with full, atomic.atomic_path(target) as tmp, open("/dev/full", "wb") as fh:
        torch.save({"w": torch.zeros(10_000)}, fh)  # the same call save_checkpoint makes
        tmp.write_bytes(b"never reached")
    assert target.read_bytes() == b"the old checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["step.pt"]


def test_what_a_killed_run_left_is_removed_and_a_live_ones_kept(tmp_path):
    dead, live = dead_pid(), os.getpid()
    (tmp_path / f".raw.{dead}.x1.tmp").mkdir()
    (tmp_path / f".raw.{dead}.x1.tmp/half.py").write_text("")
    (tmp_path / f".step-00000250.pt.{dead}.y2.tmp").write_bytes(b"\0" * 100)
    (tmp_path / f".raw.{live}.z3.tmp").mkdir()
    (tmp_path / "keep.tmp").write_text("not ours")
    with atomic.atomic_dir(tmp_path / "raw") as staging:
        (staging / "a.py").write_text("")
    atomic.remove_stale(tmp_path)  # what train does for its checkpoint folder
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".raw.{live}.z3.tmp", "keep.tmp", "raw"])


def test_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "m.json", "{}")
        with atomic.atomic_dir(tmp_path / "d") as staging:
            (staging / "f").write_text("")
        os.umask(0o077)
        atomic.write_text(tmp_path / "private.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600


def test_fetch_scratch_is_beside_the_output_and_gone_after(tmp_path):
    fetch_corpus(local(a_project(tmp_path / "proj")), tmp_path / "raw")
    assert sorted(os.listdir(tmp_path)) == ["proj", "raw"]  # no scratch, no staging left
