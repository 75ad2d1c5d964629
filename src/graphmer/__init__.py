"""GraphMER-SE: graph-aware code encoders trained on a code knowledge graph."""

import sys
from collections.abc import Callable

__version__ = "0.1.0"
__all__ = ["GraphMERT", "GraphmerError"]


def __getattr__(name: str):
    """`from graphmer import GraphMERT` without importing torch for every stage that never uses it."""
    if name == "GraphMERT":
        from graphmer.model import GraphMERT

        return GraphMERT
    raise AttributeError(f"module 'graphmer' has no attribute {name!r}")


class GraphmerError(Exception):
    """An error a user can act on; stages print it as one line and exit non-zero."""


def guarded(name: str, fn: Callable[[], object], doc: str | None = None) -> None:
    """Run a stage or command; a GraphmerError becomes one line on stderr and exit status 1.

    With `doc` (a stage's docstring) the command line is checked too: `-h`/`--help` prints it,
    anything else is refused, since stages read params.yaml, not arguments."""
    if doc is not None and sys.argv[1:]:
        if sys.argv[1] in ("-h", "--help"):
            print(doc.strip())
            sys.exit(0)
        print(
            f"{name}: error: unexpected argument {sys.argv[1]!r}; stages read params.yaml (try --help)",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        fn()
    except GraphmerError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no output was replaced", file=sys.stderr)
        sys.exit(130)


def one_line(err: BaseException) -> str:
    """An exception's message on one line (tarfile and safetensors write several)."""
    return " ".join(str(err).split()) or type(err).__name__


def progress_bar(iterable=None, **kwargs):
    """A tqdm bar; in a log (no terminal) it prints every 10 s instead of every 0.1 s."""
    from tqdm import tqdm

    kwargs.setdefault("mininterval", 0.1 if sys.stderr.isatty() else 10.0)
    return tqdm(iterable, **kwargs)
