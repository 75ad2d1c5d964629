"""Extraction throughput beside raw tree-sitter parsing of the same bytes, in one run.

    python benchmarks/extract.py [--raw data/raw] [--repeat 3]

Prints MB/s of (a) raw parsing (a fresh parser per file, as extraction does)
and (b) the full extraction (read, classify, parse, query, resolve, write
Parquet), with 1 worker and with all cores, and their ratios. Timings are
noisy on shared machines: the ratios, measured in the same run, are the
numbers to compare. Needs the fetched corpus (`dvc repro fetch`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tree_sitter import Parser

from graphmer.config import ExtractConfig
from graphmer.extract import java, javascript, python
from graphmer.extract.pipeline import extract_kg, plan, source_roots
from graphmer.languages import skip_reason

LANGUAGES = {"python": python.LANGUAGE, "java": java.LANGUAGE, "javascript": javascript.LANGUAGE}


def parse_files(items: list[tuple[str, str]]) -> int:
    n = 0
    for lang, path in items:
        data = Path(path).read_bytes()
        Parser(LANGUAGES[lang]).parse(data)
        n += len(data)
    return n


def raw_parse(items: list[tuple[str, str]], workers: int) -> float:
    start = time.perf_counter()
    if workers == 1:
        parse_files(items)
    else:
        chunks = [items[i :: workers * 8] for i in range(workers * 8)]
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(parse_files, chunks))
    return time.perf_counter() - start


def extraction(roots: dict[str, Path], workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        extract_kg(roots, out, ExtractConfig(workers=workers), progress=False)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", type=Path, default=Path("data/raw"), help="fetched corpus (default data/raw)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    args = ap.parse_args()
    roots = source_roots(args.raw)
    items, nbytes, cfg = [], 0, ExtractConfig()
    for task in plan(roots):
        path = Path(task.abspath)
        data = path.read_bytes()
        rel = task.path.split("/", 1)[1]
        if not path.is_symlink() and not skip_reason(rel, data, cfg, cfg.max_file_bytes):
            items.append((task.language, task.abspath))
            nbytes += len(data)
    mb = nbytes / 1e6
    cores = os.cpu_count() or 1
    print(f"corpus: {len(items)} files, {mb:.1f} MB (files extraction parses; skipped files excluded)")
    results = {}
    for workers in sorted({1, cores}):
        # Interleaved, so that a slow spell of a shared machine weighs on both sides of the ratio.
        runs = [(raw_parse(items, workers), extraction(roots, workers)) for _ in range(args.repeat)]
        raw, ext = min(r for r, _ in runs), min(e for _, e in runs)
        results[workers] = (raw, ext)
        print(
            f"workers={workers}: raw parse {mb / raw:6.2f} MB/s | extraction {mb / ext:6.2f} MB/s | "
            f"extraction/raw = {raw / ext:.2f}"
        )
    if cores > 1:
        print(
            f"extraction speed-up on {cores} cores: {results[1][1] / results[cores][1]:.2f}x "
            f"(raw parse: {results[1][0] / results[cores][0]:.2f}x)"
        )


if __name__ == "__main__":
    main()
