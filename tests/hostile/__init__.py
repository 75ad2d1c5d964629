"""Hostile and careless input: each test feeds one and asserts it is refused or skipped with a
line naming it, within a bounded time."""

from __future__ import annotations

import contextlib
import signal


@contextlib.contextmanager
def within(seconds: int):
    """Fail (instead of hanging the suite) when the body runs past `seconds`."""

    def boom(*_):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
