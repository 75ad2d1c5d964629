"""Safe archive extraction: an archive is hostile until every member is proven harmless.

Refused (the whole archive, before anything lands in the target): absolute
paths, `..` components, links that point outside the target, device files,
FIFOs, more than `max_members` members, a member over `max_member_bytes` or a
total over `max_total_bytes` (decompression bombs; zip sizes are also counted
while copying, since a zip header can lie). Links that stay inside the
target are not materialized: source code needs none, and a link is a way out.
"""

from __future__ import annotations

import lzma
import shutil
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from graphmer import GraphmerError, one_line
from graphmer.config import CorpusConfig, default_of


class UnsafeArchiveError(GraphmerError):
    """An archive member that would escape the target or exhaust the disk."""


@dataclass(frozen=True)
class Limits:
    """The caps of `corpus` (CorpusConfig.max_archive_*) that one archive or local source is held to."""

    max_member_bytes: int
    max_total_bytes: int
    max_members: int

    @classmethod
    def of(cls, cfg: CorpusConfig | None = None) -> Limits:
        """`cfg`'s caps; without one, CorpusConfig's defaults."""
        fields = ("max_archive_member_bytes", "max_archive_total_bytes", "max_archive_members")
        return cls(*(default_of(CorpusConfig, f) if cfg is None else getattr(cfg, f) for f in fields))


ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")


def is_archive(path: str | Path) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def safe_member_path(name: str) -> PurePosixPath:
    """The relative path a member may be written to, or UnsafeArchiveError."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"member {name!r} has an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"member {name!r} has a '..' component")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _link_stays_inside(member: PurePosixPath, target: str, hard: bool) -> bool:
    if target.startswith("/"):
        return False
    base = [] if hard else list(member.parent.parts)  # hard links are relative to the root
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not base:
                return False
            base.pop()
        else:
            base.append(part)
    return True


# What a damaged compressed stream raises while it is read (a wrong CRC, a cut-off end).
_DAMAGE = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)


def extract_archive(archive: str | Path, dest: str | Path, limits: Limits) -> int:
    """Extract `archive` into the empty folder `dest`; return the number of files written."""
    archive = Path(archive)
    if archive.name.lower().endswith(".zip"):
        return _extract_zip(archive, Path(dest), limits)
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed by the `with tar` below)
    except _DAMAGE as err:
        raise UnsafeArchiveError(f"{archive.name}: not a readable archive ({one_line(err)})") from err
    try:
        with tar:
            return _extract_tar(tar, Path(dest), limits)
    except UnsafeArchiveError:
        raise
    except _DAMAGE as err:
        raise UnsafeArchiveError(f"{archive.name}: corrupt or truncated archive ({one_line(err)})") from err


def _check_counts(n_members: int, size: int, total: int, name: str, limits: Limits) -> None:
    if n_members > limits.max_members:
        raise UnsafeArchiveError(f"more than {limits.max_members} members")
    if size > limits.max_member_bytes:
        raise UnsafeArchiveError(f"member {name!r} is {size} bytes, over the {limits.max_member_bytes} cap")
    if total > limits.max_total_bytes:
        raise UnsafeArchiveError(f"archive unpacks to over {limits.max_total_bytes} bytes")


class _Layout:
    """The file paths an archive will write: none may also be a folder of another (`a` and `a/b.py`)."""

    def __init__(self):
        self.files: set[PurePosixPath] = set()
        self.dirs: set[PurePosixPath] = set()

    def add(self, rel: PurePosixPath, name: str) -> None:
        parents = set(rel.parents) - {PurePosixPath(".")}
        if rel in self.dirs or parents & self.files:
            raise UnsafeArchiveError(f"member {name!r}: a path is both a file and a folder in the archive")
        self.files.add(rel)
        self.dirs |= parents


def _extract_tar(tar: tarfile.TarFile, dest: Path, limits: Limits) -> int:
    total, files, layout = 0, [], _Layout()
    # First pass: prove every member harmless before writing a byte; headers are read one at a
    # time, so the member cap stops a flood of empty members at the cap, not after all of them.
    for n, m in enumerate(tar, 1):
        rel = safe_member_path(m.name)
        if m.issym() or m.islnk():
            if not _link_stays_inside(rel, m.linkname, hard=m.islnk()):
                raise UnsafeArchiveError(f"link {m.name!r} points outside the target ({m.linkname!r})")
            _check_counts(n, 0, total, m.name, limits)
            continue
        if m.isdev() or m.isfifo():
            raise UnsafeArchiveError(f"member {m.name!r} is a device or FIFO")
        total += m.size
        _check_counts(n, m.size, total, m.name, limits)
        if m.isfile():
            layout.add(rel, m.name)
            files.append((m, rel))
    _check_tar_end(tar)
    for m, rel in files:
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(m)
        assert src is not None
        with src, open(out, "wb") as fh:
            shutil.copyfileobj(src, fh)
    return len(files)


def _check_tar_end(tar: tarfile.TarFile) -> None:
    """tarfile stops at the first bad header (or at the end of a cut-off file) as if the archive
    ended there: a flipped byte would silently drop every member after it. After the last member
    only zero blocks may follow, and reading them to the end makes gzip, bzip2 and xz check their
    CRCs and lengths."""
    fh = tar.fileobj
    fh.seek(tar.offset)
    zeros = 0
    while chunk := fh.read(1 << 16):
        if chunk.count(0) != len(chunk):
            raise UnsafeArchiveError(f"damaged member header at byte {tar.offset}: corrupt archive")
        zeros += len(chunk)
    if zeros < tarfile.BLOCKSIZE:  # every tar writer ends with zero blocks; a cut-off file has none
        raise UnsafeArchiveError("the archive ends before its end-of-archive marker: truncated")


_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def _extract_zip(archive: Path, dest: Path, limits: Limits) -> int:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise UnsafeArchiveError(f"{archive.name}: not a readable archive ({one_line(err)})") from err
    with zf:
        infos = zf.infolist()
        total, files, layout = 0, [], _Layout()
        for n, info in enumerate(infos, 1):
            rel = safe_member_path(info.filename)
            mode = info.external_attr >> 16
            if info.flag_bits & 0x1:
                raise UnsafeArchiveError(f"member {info.filename!r} is encrypted")
            if info.compress_type not in _ZIP_METHODS:
                raise UnsafeArchiveError(
                    f"member {info.filename!r} uses compression method {info.compress_type}, not supported"
                )
            if mode and (mode & 0o170000) == 0o120000:  # a symlink stored by Unix zip
                target = _read_zip_member(zf, info)[: 1 << 12].decode("utf-8", "replace")
                if not _link_stays_inside(rel, target, hard=False):
                    raise UnsafeArchiveError(f"link {info.filename!r} points outside the target")
                continue
            if mode and (mode & 0o170000) in (0o020000, 0o060000, 0o010000):
                raise UnsafeArchiveError(f"member {info.filename!r} is a device or FIFO")
            total += info.file_size
            _check_counts(n, info.file_size, total, info.filename, limits)
            if not info.is_dir():
                layout.add(rel, info.filename)
                files.append((info, rel))
        written = 0
        for info, rel in files:
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(out, "wb") as fh:
                    got = _copy_capped(src, fh, limits.max_member_bytes, info.filename)
            except (zipfile.BadZipFile, *_DAMAGE) as err:  # a CRC that no longer matches, bad deflate
                raise UnsafeArchiveError(f"member {info.filename!r} is corrupt ({one_line(err)})") from err
            written += got
            if written > limits.max_total_bytes:
                raise UnsafeArchiveError(f"archive unpacks to over {limits.max_total_bytes} bytes")
    return len(files)


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with zf.open(info) as fh:
            return fh.read(1 << 12)
    except (zipfile.BadZipFile, *_DAMAGE) as err:
        raise UnsafeArchiveError(f"member {info.filename!r} is corrupt ({one_line(err)})") from err


def _copy_capped(src, dst, cap: int, name: str) -> int:
    n = 0
    while chunk := src.read(1 << 20):
        n += len(chunk)
        if n > cap:
            raise UnsafeArchiveError(f"member {name!r} unpacks past the {cap}-byte cap")
        dst.write(chunk)
    return n
