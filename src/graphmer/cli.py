"""`graphmer`: the pipeline's library functions as commands, for use outside DVC.

graphmer fetch [--params FILE] [--out DIR]
graphmer extract PATH... --out DIR [--workers N]
graphmer predict FILE --entity NAME --relation REL [--top-k K] [--max-file-bytes N]
graphmer distill PATH... --out DIR [--max-questions N] [--top-k K] [--languages LANG ...]
graphmer embed PATH... --out FILE.parquet [--batch-size N] [--workers N]

`graphmer COMMAND --help` gives every option with its default.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from graphmer import guarded
from graphmer.config import PathsConfig


def _fetch(args: argparse.Namespace) -> None:
    from graphmer.config import load_section
    from graphmer.corpus.fetch import fetch_corpus

    corpus, extract = load_section("corpus", args.params), load_section("extract", args.params)
    metrics = fetch_corpus(corpus, args.out, args.metrics, extract)
    print(f"fetched {metrics['files']} files ({metrics['bytes'] / 1e6:.1f} MB) into {args.out}")


def _max_file_bytes(p: argparse.ArgumentParser, what: str) -> None:
    """--max-file-bytes, extraction's file-size limit by default."""
    from graphmer.config import ExtractConfig

    default = ExtractConfig.max_file_bytes
    p.add_argument("--max-file-bytes", type=int, default=default, help=f"{what} (default {default})")


def _roots(paths: list[Path]) -> dict[str, Path]:
    """Source names for folders given on the command line: their own names, made unique."""
    roots: dict[str, Path] = {}
    for path in paths:
        name = path.resolve().name or "root"
        roots[name if name not in roots else f"{name}-{len(roots)}"] = path
    return roots


def _extract(args: argparse.Namespace) -> None:
    from graphmer.config import ExtractConfig
    from graphmer.extract.pipeline import extract_kg

    cfg = ExtractConfig(workers=args.workers, max_file_bytes=args.max_file_bytes)
    m = extract_kg(_roots(args.paths), args.out, cfg, metrics_path=args.out / "kg.json")
    print(
        f"extracted {m['files_extracted']} files ({m['files'] - m['files_extracted']} skipped): "
        f"{m['entities']} entities, {m['triples']} triples -> {args.out}"
    )


def _predict(args: argparse.Namespace) -> None:
    from graphmer.predict import predict

    head, preds = predict(
        args.file,
        args.entity,
        args.relation,
        args.top_k,
        PathsConfig(models=args.model_dir),
        args.max_file_bytes,
        tokenizer=args.tokenizer,
        candidates=args.candidates,
    )
    if args.json:
        import json

        print(
            json.dumps(
                {"head": head, "relation": args.relation, "tails": [p.__dict__ for p in preds]}, indent=2
            )
        )
        return
    print(f"{head} --{args.relation}--> ?")
    for rank, p in enumerate(preds, 1):
        print(f"{rank:>3}  {p.score:9.3f}  {p.name}  ({p.source})")


def _distill(args: argparse.Namespace) -> None:
    from graphmer.config import DistillConfig, ExtractConfig
    from graphmer.distill import distill_folders

    cfg = DistillConfig(
        languages=args.languages, top_k=args.top_k, max_questions=args.max_questions, seed=args.seed
    )
    paths = PathsConfig(samples=args.samples, kg=args.kg, split=args.split, models=args.model_dir)
    s = distill_folders(
        _roots(args.paths),
        args.out,
        cfg,
        paths,
        workers=ExtractConfig(workers=args.workers).resolved_workers,
        tokenizer=args.tokenizer,
        calibration=args.calibration,
    )
    top = f"{max(cfg.thresholds):g}"
    at_top = sum(v.get(top, 0) for v in s["added"].values())
    print(
        f"distilled {s['files']} files: {sum(s['gaps'].values())} gaps, "
        f"{sum(s['questions_asked'].values())} asked, {sum(v['all'] for v in s['added'].values())} "
        f"triples added ({at_top} at p>={top}), {sum(s['rejected'].values())} rejected "
        f"-> {args.out / 'distilled.parquet'}"
    )


def _model_args(p: argparse.ArgumentParser) -> None:
    """--model-dir and --tokenizer: a trained model's folder (the pipeline's `models/`)."""
    models = PathsConfig().models
    p.add_argument(
        "--model-dir",
        type=Path,
        default=models,
        help=f"folder with the trained model's config.json and model.safetensors (default: {models})",
    )
    p.add_argument("--tokenizer", type=Path, help="the model's tokenizer (default: MODEL_DIR/tokenizer.json)")


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(prog="graphmer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="fetch the pinned corpus of a params file")
    p.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)"
    )
    raw = PathsConfig().raw
    p.add_argument("--out", type=Path, default=raw, help=f"output folder (default: {raw})")
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
    _max_file_bytes(p, "skip larger files")
    p.set_defaults(run=_extract)

    from graphmer.predict import TOP_K
    from graphmer.relations import RELATION_NAMES
    from graphmer.samples import CANDIDATES_TABLE

    p = sub.add_parser(
        "predict",
        help="rank the tails of a relation for an entity of a source file",
        description="Complete (ENTITY, RELATION, ?) for a Python, Java or JavaScript file, seen in the "
        "corpus or not: the trained model reads the code around ENTITY's definition and ranks every tail "
        "of RELATION in the training graph plus every identifier of the file by the summed log-probability "
        "of its tokens in ENTITY's masked leaf group. Scores are log-probabilities (higher is better).",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="a .py, .java or .js file")
    p.add_argument("--entity", required=True, help="a name the file defines (function, class, method, ...)")
    p.add_argument("--relation", required=True, metavar="REL", help=f"one of: {', '.join(RELATION_NAMES)}")
    p.add_argument("--top-k", type=int, default=TOP_K, help=f"how many tails to print (default {TOP_K})")
    _model_args(p)
    candidates = PathsConfig().samples / CANDIDATES_TABLE
    p.add_argument(
        "--candidates",
        type=Path,
        default=candidates,
        help=f"tails per relation (default: {candidates})",
    )
    _max_file_bytes(p, "refuse a larger FILE, as extraction skips one")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_predict)
    _distill_parser(sub)
    _embed_parser(sub)
    return parser


def _distill_parser(sub) -> None:
    from graphmer.config import DistillConfig

    defaults, paths = DistillConfig(), PathsConfig()
    p = sub.add_parser(
        "distill",
        help="fill the gaps of the static graph of local folders with the model",
        description="Extract the static graph of PATH... (as `graphmer extract`), then ask the trained model "
        "for every gap (a parameter, field or function without a type; see README) and keep its top tails "
        "with probabilities calibrated on the corpus's dev files by `dvc repro distill`. Writes "
        "DIR/kg/ (the static graph), DIR/distilled.parquet (static triples, source=static, and the "
        "model's, source=model, with probability) and DIR/distill.json.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a folder (a checkout, a project)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--max-questions",
        type=int,
        default=defaults.max_questions,
        help=f"gaps asked, a seeded sample (0: all; default {defaults.max_questions})",
    )
    p.add_argument(
        "--top-k", type=int, default=defaults.top_k, help=f"tails kept per gap (default {defaults.top_k})"
    )
    p.add_argument(
        "--languages",
        nargs="+",
        default=defaults.languages,
        help=f"languages whose gaps are asked (default: {' '.join(defaults.languages)})",
    )
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the sample of gaps")
    p.add_argument("--workers", type=int, default=0, help="extraction processes (default: all cores)")
    _model_args(p)
    p.add_argument(
        "--calibration",
        type=Path,
        help=f"scorer and calibrators (default: MODEL_DIR/{paths.calibration.name})",
    )
    p.add_argument(
        "--samples", type=Path, default=paths.samples, help=f"candidates (default: {paths.samples})"
    )
    p.add_argument("--kg", type=Path, default=paths.kg, help=f"the corpus graph (default: {paths.kg})")
    p.add_argument("--split", type=Path, default=paths.split, help=f"default: {paths.split}")
    p.set_defaults(run=_distill)


def _embed(args: argparse.Namespace) -> None:
    from graphmer.config import ExtractConfig
    from graphmer.embed import embed_paths

    s = embed_paths(
        _roots(args.paths),
        args.out,
        PathsConfig(models=args.model_dir),
        workers=ExtractConfig(workers=args.workers).resolved_workers,
        batch_size=args.batch_size,
        max_file_bytes=args.max_file_bytes,
        tokenizer=args.tokenizer,
    )
    skipped = f" ({s['files_skipped']} skipped)" if s["files_skipped"] else ""
    print(f"embedded {s['entities']} entities of {s['files']} files{skipped} -> {args.out}")


def _embed_parser(sub) -> None:
    from graphmer.embed import BATCH_SIZE

    p = sub.add_parser(
        "embed",
        help="one vector per entity definition of local folders or files, for nearest-neighbour search",
        description="Extract the definitions in PATH... (as `graphmer extract`: classes, functions, methods, "
        "parameters, fields) and embed each with the trained model: the mean of the encoder's final hidden "
        "states over the tokens of the definition's name, the model reading the code around it alone (as "
        "`graphmer predict` does; no graph needed). Modules and external entities have no definition and "
        "get no row. Writes a Parquet table with columns id, kind, name, language, file, line, vector "
        "(float32, the model's hidden size), sorted by file, line and id; see README for a "
        "nearest-neighbour query.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a folder, or a .py/.java/.js file")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="the Parquet file to write (replaced atomically)",
    )
    _model_args(p)
    p.add_argument("--workers", type=int, default=0, help="extraction processes (default: all cores)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        help=f"code windows per forward pass (default {BATCH_SIZE})",
    )
    _max_file_bytes(p, "skip larger files in a folder, as extraction does; refuse a larger file given alone")
    p.set_defaults(run=_embed)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    guarded(f"graphmer {args.command}", lambda: args.run(args))


if __name__ == "__main__":
    main()
