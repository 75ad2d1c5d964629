"""`graphmer`: the pipeline's library functions as commands, for use outside DVC.

    graphmer fetch [--params params.yaml] [--out data/raw]
    graphmer extract PATH... --out DIR [--workers N]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from graphmer import GraphmerError


def guarded(name: str, fn: Callable[[], object]) -> None:
    """Run a stage or command; a GraphmerError becomes one line on stderr and exit status 1."""
    try:
        fn()
    except GraphmerError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no output was replaced", file=sys.stderr)
        sys.exit(130)


def _fetch(args: argparse.Namespace) -> None:
    from graphmer.config import load_section
    from graphmer.corpus.fetch import fetch_corpus

    metrics = fetch_corpus(load_section("corpus", args.params), args.out, args.metrics)
    print(f"fetched {metrics['files']} files ({metrics['bytes'] / 1e6:.1f} MB) into {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphmer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="fetch the pinned corpus of a params file")
    p.add_argument("--params", type=Path, default=Path("params.yaml"),
                   help="params file (default: params.yaml)")
    p.add_argument("--out", type=Path, default=Path("data/raw"), help="output folder (default: data/raw)")
    p.add_argument("--metrics", type=Path, default=None, help="also write corpus metrics JSON here")
    p.set_defaults(run=_fetch)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    guarded(f"graphmer {args.command}", lambda: args.run(args))


if __name__ == "__main__":
    main()
