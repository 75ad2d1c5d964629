"""Atomic outputs: write beside the target, then rename, so a killed stage never
leaves a half-written file (or folder) that looks valid.

Temporaries are named `.<target>.<pid>.<random>.tmp`: a run that was killed (kill -9,
power loss) cannot clean up after itself, so the next write beside the same target
removes the temporaries whose process is gone, and never those of a live one. What lands
in place gets the permissions of a plain `open()` under the user's umask, not the
owner-only mode of a temporary file. A full disk is one line naming what could not be
written, with the target left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graphmer import GraphmerError

_STALE = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp\Z")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale(parent: Path, name: str | None = None) -> list[Path]:
    """Delete the temporaries in `parent` (of target `name`, or of any target) whose writing
    process no longer runs; return what was removed."""
    removed = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        m = _STALE.match(entry.name)
        if m is None or (name is not None and m["name"] != name) or _alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def _disk_full(err: BaseException) -> bool:
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        err = err.__cause__ or err.__context__
    return False


@contextlib.contextmanager
def _explain_disk_full(target: Path) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        if _disk_full(err):
            raise GraphmerError(
                f"the disk is full: could not write {target} (left as it was); free some space and run again"
            ) from err
        raise


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent, target.name)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _explain_disk_full(target):
            yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: str | Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_parquet(target: str | Path, table: Any, compression: str = "zstd") -> None:
    """A pyarrow Table as a Parquet file, whole or not at all."""
    import pyarrow.parquet as pq

    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression=compression)


@contextlib.contextmanager
def scratch_dir(beside: str | Path) -> Iterator[Path]:
    """A scratch folder next to `beside` (same disk, swept by the next run if this one is killed),
    removed on exit."""
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(beside.parent, beside.name + "-scratch")
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{beside.name}-scratch.{os.getpid()}.", suffix=".tmp", dir=beside.parent)
    )
    try:
        with _explain_disk_full(beside):
            yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on success it replaces `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent))
    old = target.with_name(f".{target.name}.{os.getpid()}.old.tmp")
    try:
        with _explain_disk_full(target):
            yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700; what is inside was made under the umask
        moved = False
        if target.exists():
            os.replace(target, old)
            moved = True
        os.replace(tmp, target)
        if moved:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
