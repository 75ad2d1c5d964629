"""Shared fixtures: hermetic tools (no network, no user config), and the tiny corpus (built once
per session, with and without a trained model) that the model, training, ranking, evaluation,
predict and embed tests read."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def _shared(root: Path, build):
    """A corpus built once and shared by many test modules: one that writes into it would make
    the others depend on the order they run in, so the session ends with an error if any did."""
    built = build(root)
    before = _snapshot(root)
    yield built
    assert _snapshot(root) == before, f"a test wrote into the shared corpus {root}"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """tests.tiny.build_tiny: the tiny corpus extracted, tokenized and cut into samples."""
    from tests.tiny import build_tiny

    yield from _shared(tmp_path_factory.mktemp("tiny"), build_tiny)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """tests.trained.build_trained: the tiny corpus with a model trained on it for 4 steps."""
    from tests.trained import build_trained

    yield from _shared(tmp_path_factory.mktemp("trained"), build_trained)
