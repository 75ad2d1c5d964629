"""`graphmer`: the pipeline's library functions as commands, for use outside DVC.

graphmer fetch [--params params.yaml] [--out data/raw]
graphmer extract PATH... --out DIR [--workers N]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from graphmer import guarded


def _fetch(args: argparse.Namespace) -> None:
    from graphmer.config import load_section
    from graphmer.corpus.fetch import fetch_corpus

    metrics = fetch_corpus(load_section("corpus", args.params), args.out, args.metrics)
    print(f"fetched {metrics['files']} files ({metrics['bytes'] / 1e6:.1f} MB) into {args.out}")


def _extract(args: argparse.Namespace) -> None:
    from graphmer.extract.pipeline import extract_kg

    roots: dict[str, Path] = {}
    for path in args.paths:
        name = path.resolve().name or "root"
        roots[name if name not in roots else f"{name}-{len(roots)}"] = path
    m = extract_kg(
        roots,
        args.out,
        workers=args.workers or os.cpu_count() or 1,
        max_file_bytes=args.max_file_bytes,
        metrics_path=args.out / "kg.json",
    )
    print(
        f"extracted {m['files_extracted']} files ({m['files'] - m['files_extracted']} skipped): "
        f"{m['entities']} entities, {m['triples']} triples -> {args.out}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphmer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="fetch the pinned corpus of a params file")
    p.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)"
    )
    p.add_argument("--out", type=Path, default=Path("data/raw"), help="output folder (default: data/raw)")
    p.add_argument("--metrics", type=Path, default=None, help="also write corpus metrics JSON here")
    p.set_defaults(run=_fetch)

    p = sub.add_parser(
        "extract",
        help="extract the code knowledge graph of local folders",
        description="Parse every Python, Java and JavaScript file under PATH... into "
        "files/entities/mentions/triples.parquet (+ kg.json) in --out.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a folder (a checkout, a project)")
    p.add_argument("--out", type=Path, required=True, help="output folder for the Parquet files")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    p.add_argument("--max-file-bytes", type=int, default=1_000_000, help="skip larger files (default 1 MB)")
    p.set_defaults(run=_extract)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    guarded(f"graphmer {args.command}", lambda: args.run(args))


if __name__ == "__main__":
    main()
