"""Hostile archives are refused whole; nothing of them lands in the target."""

import io
import tarfile
import zipfile
from dataclasses import replace

import pytest

from graphmer.config import CorpusConfig, SourceConfig
from graphmer.corpus.archive import Limits, UnsafeArchiveError, extract_archive

LIMITS = Limits.of()  # corpus's default caps


def capped(**caps) -> Limits:
    return replace(LIMITS, **caps)


def test_limits_are_the_corpus_caps():
    sources = [SourceConfig("p", "local", path="p")]
    caps = {"max_archive_member_bytes": 5, "max_archive_total_bytes": 6, "max_archive_members": 7}
    assert Limits.of(CorpusConfig(sources, **caps)) == Limits(5, 6, 7)
    assert Limits.of(CorpusConfig(sources)) == LIMITS


def make_tar(path, members):
    """members: (TarInfo, bytes | None)."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name, data=b"x = 1\n"):
    return tarfile.TarInfo(name), data


def link_member(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_safe_tar_extracts_files_and_drops_inside_links(tmp_path):
    arc = make_tar(
        tmp_path / "ok.tar.gz",
        [
            file_member("pkg-1.0/a.py"),
            file_member("pkg-1.0/sub/b.js", b"var b;\n"),
            link_member("pkg-1.0/c.py", "a.py"),
        ],
    )
    out = tmp_path / "out"
    out.mkdir()
    assert extract_archive(arc, out, LIMITS) == 2
    assert (out / "pkg-1.0/sub/b.js").read_bytes() == b"var b;\n"
    assert not (out / "pkg-1.0/c.py").exists()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([file_member("../evil.py")], "'..' component"),
        ([file_member("pkg/../../evil.py")], "'..' component"),
        ([file_member("/etc/evil.py")], "absolute path"),
        ([link_member("pkg/l", "/etc/passwd")], "points outside"),
        ([link_member("pkg/l", "../../outside")], "points outside"),
        ([link_member("pkg/l", "../outside", tarfile.LNKTYPE)], "points outside"),
        ([(tarfile.TarInfo("pkg/dev"), None)], "device"),
    ],
)
def test_hostile_tar_is_refused(tmp_path, members, message):
    if members[0][0].name == "pkg/dev":
        members[0][0].type = tarfile.CHRTYPE
    arc = make_tar(tmp_path / "bad.tar.gz", [file_member("pkg/good.py"), *members])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(arc, out, LIMITS)
    assert list(out.iterdir()) == []  # checked before anything was written


def test_member_and_total_size_caps(tmp_path):
    arc = make_tar(tmp_path / "big.tar.gz", [file_member(f"p/{i}.py", b"#" * 600) for i in range(4)])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchiveError, match="over the 500 cap"):
        extract_archive(arc, out, capped(max_member_bytes=500))
    with pytest.raises(UnsafeArchiveError, match="unpacks to over 2000 bytes"):
        extract_archive(arc, out, capped(max_total_bytes=2000))
    with pytest.raises(UnsafeArchiveError, match="more than 3 members"):
        extract_archive(arc, out, capped(max_members=3))
    assert list(out.iterdir()) == []


def test_gzip_bomb_is_refused_by_declared_size(tmp_path):
    # 50 MB of zeros compresses to ~50 KB: the cap, not the download size, must stop it.
    arc = make_tar(tmp_path / "bomb.tar.gz", [file_member("p/zeros.py", bytes(50_000_000))])
    assert arc.stat().st_size < 200_000
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchiveError, match="cap"):
        extract_archive(arc, out, capped(max_member_bytes=10_000_000))


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (("../evil.py", b"x", 0), "'..' component"),
        (("/abs.py", b"x", 0), "absolute path"),
        (("C:/win.py", b"x", 0), "absolute path"),
        (("p/link", b"/etc/passwd", 0o120777), "points outside"),
        (("p/fifo", b"", 0o010644), "device or FIFO"),
    ],
)
def test_hostile_zip_is_refused(tmp_path, entry, message):
    arc = make_zip(tmp_path / "bad.zip", [("p/ok.py", b"x = 1\n", 0), entry])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(arc, out, LIMITS)
    assert list(out.iterdir()) == []


def test_zip_whose_header_lies_about_size_is_stopped_while_copying(tmp_path):
    arc = make_zip(tmp_path / "liar.zip", [("p/a.py", b"#" * 5000, 0)])
    raw = bytearray(arc.read_bytes())
    # Patch the uncompressed size (5000) in the central directory to 10 bytes.
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    arc.write_bytes(bytes(raw))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchiveError, match="corrupt|cap"):
        extract_archive(arc, out, capped(max_member_bytes=1000))


def test_unreadable_archive_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.tar.gz"
    bad.write_bytes(b"not an archive")
    with pytest.raises(UnsafeArchiveError, match="not a readable archive"):
        extract_archive(bad, tmp_path, LIMITS)
