"""Fuzz extraction with mutated real source files: no file may stop the run.

    python benchmarks/fuzz_extract.py [--files 10000] [--raw data/raw] [--workers N] [--seed 0]

Seeds are the real .py/.java/.js files of the fetched corpus (data/raw, those
extraction would parse), or this repository's own Python files and a few inline
JavaScript and Java ones when there is no corpus. Each mutated file gets one to
three of: random byte flips (mostly syntax characters), a truncation, a deep
nesting insertion (50 to 20,000 levels of the language's brackets, blocks or
definitions), a long attribute chain (`a.b.b...()`, 100 to 20,000 links), and a
splice of a random slice of another seed.

Files go through the real path in batches: `extract_kg` over a temporary folder
(plan, the per-file wrapper `extract_one`, the language extractor, resolution,
Parquet), with `extract_one` timed. A crash is `extract_kg` raising or a file
missing from files.parquet; the run fails (exit 1) on any, after saving the
crashing files under --save. Printed: skip reasons (`extract_error: ...` are
failures one file's extraction survived), the slowest files with their
mutations, and the largest rise of a worker's peak memory (ru_maxrss) during one
file. Files whose extraction takes over --file-timeout seconds are listed as
`extract_error: TimeoutError` and counted as hangs.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from graphmer.config import ExtractConfig
from graphmer.extract import pipeline
from graphmer.languages import iter_files, language_of, skip_reason

EXT = {"python": ".py", "javascript": ".js", "java": ".java"}
MAX_SEED_BYTES = 100_000
SYNTAX = b"{}()[];:.,'\"`\n\t #/*\\=@<>+-!?|&%"
# What to nest, per language: (opener, closer) one a line, so the file does not look minified.
NESTERS = {
    "python": [(b"[\n", b"]\n"), (b"(\n", b")\n"), (b"{\n", b"}\n")],
    "javascript": [
        (b"{\n", b"}\n"),
        (b"(\n", b")\n"),
        (b"[\n", b"]\n"),
        (b"function f%d() {\n", b"}\n"),
        (b"x = { k%d: function () {\n", b"}}\n"),
    ],
    "java": [(b"{\n", b"}\n"), (b"(\n", b")\n"), (b"class C%d {\n", b"}\n"), (b"void m%d() {\n", b"}\n")],
}
INLINE_SEEDS = {
    "seed.js": (
        b"/** @param {Foo} a */\nexport function f(a) { return a.b.c(g(1)); }\n"
        b"class A extends B { m() { this.x = 1; super.m(); } }\nconst u = require('./u');\n"
        b"describe('t', () => { it('works', function () { f(new A()); }); });\n"
    ),
    "Seed.java": (
        b"package p;\nimport java.util.List;\n@Deprecated public class Seed<T> extends Base implements I {\n"
        b"  private List<T> xs;\n  public Seed(int n) { super(n); this.xs = null; }\n"
        b"  @Test void testIt() throws Exception { try { a.b.c(); } catch (IOException e) "
        b"{ throw new RuntimeException(e); } new Seed<>(1).m(); }\n}\n"
    ),
}


# ----------------------------------------------------------------------------- seeds and mutations


def load_seeds(raw: Path) -> dict[str, list[bytes]]:
    """Source files extraction would parse, by language (the corpus, else this repository)."""
    roots = [p for p in sorted(raw.iterdir()) if p.is_dir()] if raw.is_dir() else []
    if not roots:
        here = Path(__file__).resolve().parents[1]
        roots = [here / "src", here / "tests", here / "benchmarks"]
    seeds: dict[str, list[bytes]] = {lang: [] for lang in EXT}
    for root in roots:
        for rel, path in iter_files(root):
            lang = language_of(rel)
            if lang is None or path.is_symlink() or path.stat().st_size > MAX_SEED_BYTES:
                continue
            data = path.read_bytes()
            if not skip_reason(rel, data, ExtractConfig(), MAX_SEED_BYTES):
                seeds[lang].append(data)
    for name, data in INLINE_SEEDS.items():
        lang = language_of(name)
        if not seeds[lang]:
            seeds[lang].append(data)
    return seeds


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    """Small values as often as large ones: most bugs show at hundreds, the costly ones at thousands."""
    return int(low * (high / low) ** rng.random())


def flip(rng, data: bytes, lang: str) -> bytes:
    """Mostly syntax characters; any byte in one flip of twenty (a non-UTF-8 file is skipped unparsed)."""
    b = bytearray(data)
    any_byte = rng.random() < 0.05
    for _ in range(log_uniform(rng, 1, 200)):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256) if any_byte else rng.choice(SYNTAX)
    return bytes(b)


def truncate(rng, data: bytes, lang: str) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def nesting(rng, data: bytes, lang: str) -> bytes:
    opener, closer = rng.choice(NESTERS[lang])
    depth = log_uniform(rng, 50, 20_000)
    opens = b"".join(opener.replace(b"%d", str(i).encode()) for i in range(depth))
    at = _line_start(rng, data)
    middle = data[at : at + rng.randrange(2000)] if rng.random() < 0.5 else b"g()\n"
    return data[:at] + opens + middle + closer * depth + data[at:]


def chain(rng, data: bytes, lang: str) -> bytes:
    links = log_uniform(rng, 100, 20_000)
    call = b"()" if rng.random() < 0.3 else b""
    sep = b"\\\n" if lang == "python" else b"\n"
    body = sep.join(b"".join(b".b" + call for _ in range(min(50, links - i))) for i in range(0, links, 50))
    stmt = b"a" + body + b"()" + (b"\n" if lang == "python" else b";\n")
    if lang == "python":
        stmt = b"def chained(self):\n    " + stmt
    elif lang == "java":
        stmt = b"class Chained { void m() { " + stmt + b"} }\n"
    at = _line_start(rng, data)
    return data[:at] + stmt + data[at:]


def splice(rng, data: bytes, lang: str, other: bytes = b"") -> bytes:
    i, j = sorted(rng.randrange(len(other) + 1) for _ in range(2))
    at = rng.randrange(len(data) + 1)
    return data[:at] + other[i:j] + data[at:]


def _line_start(rng, data: bytes) -> int:
    at = rng.randrange(len(data) + 1)
    return data.rfind(b"\n", 0, at) + 1


MUTATIONS = {"flip": flip, "truncate": truncate, "nesting": nesting, "chain": chain, "splice": splice}


def mutate(rng: random.Random, seeds: dict[str, list[bytes]]) -> tuple[str, bytes, list[str]]:
    """(language, mutated bytes, the mutations applied in order)."""
    lang = rng.choice([lang for lang in EXT if seeds[lang]])
    data = rng.choice(seeds[lang])
    kinds = rng.sample(list(MUTATIONS), rng.randint(1, 3))
    for kind in kinds:
        if kind == "splice":
            other_lang = rng.choice([lang for lang in EXT if seeds[lang]])
            data = splice(rng, data, lang, rng.choice(seeds[other_lang]))
        else:
            data = MUTATIONS[kind](rng, data, lang)
    return lang, data, kinds


# ----------------------------------------------------------------------------- one batch


@dataclass
class FileStat:
    name: str
    language: str
    kinds: list[str]
    bytes: int
    seconds: float = 0.0
    rss_rise_mb: float = 0.0
    skipped: str | None = None


@dataclass
class BatchResult:
    files: list[FileStat] = field(default_factory=list)
    crash: str | None = None
    crashing: list[str] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    seconds: float = 0.0


REAL_EXTRACT_ONE = pipeline.extract_one


def _timed_extract_one(stats: dict[str, FileStat], file_timeout: int):
    """`extract_one` as the pipeline calls it, timed, and its rise of the process's peak memory."""
    real = REAL_EXTRACT_ONE

    def timed(task, cfg):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        signal.alarm(file_timeout)  # a hang becomes TimeoutError, which extract_one lists as such
        try:
            return real(task, cfg)
        finally:
            signal.alarm(0)
            stat = stats[Path(task.abspath).name]
            stat.seconds = time.perf_counter() - start
            stat.rss_rise_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024

    return timed


def _on_alarm(*_):
    raise TimeoutError("file took too long")


SEEDS: dict[str, list[bytes]] = {}


def load_worker(raw: Path) -> None:
    """Each worker reads the seeds once (cheaper than sending them with every batch)."""
    SEEDS.update(load_seeds(raw))


def run_batch(args: tuple[int, int, int, int, str | None, float]) -> BatchResult:
    """Mutate `count` files from `seed`, extract them with extract_kg, report per-file figures."""
    seed, start, count, file_timeout, save, slow = args
    rng, seeds = random.Random(seed), SEEDS
    signal.signal(signal.SIGALRM, _on_alarm)
    result = BatchResult()
    stats: dict[str, FileStat] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "src")
        src.mkdir()
        blobs = {}
        for i in range(start, start + count):
            lang, data, kinds = mutate(rng, seeds)
            name = f"f{i:06d}{EXT[lang]}"
            (src / name).write_bytes(data)
            blobs[name] = data
            stats[name] = FileStat(name, lang, kinds, len(data))
        pipeline.extract_one = _timed_extract_one(stats, file_timeout)
        began = time.perf_counter()
        try:
            pipeline.extract_kg({"fuzz": src}, Path(tmp, "kg"), ExtractConfig(workers=1), progress=False)
            rows = pq.read_table(Path(tmp, "kg", "files.parquet"), columns=["path", "skipped"]).to_pylist()
            for r in rows:
                stats[r["path"].rsplit("/", 1)[-1]].skipped = r["skipped"]
            missing = set(stats) - {r["path"].rsplit("/", 1)[-1] for r in rows}
            if missing:
                result.crash = f"{len(missing)} files missing from files.parquet"
                result.crashing = sorted(missing)
        except Exception as err:  # the crash this benchmark hunts: find which files cause it
            result.crash = f"{type(err).__name__}: {str(err)[:200]}"
            for stat in stats.values():
                stat.skipped = "(in a crashed batch)"
            result.crashing = [n for n in blobs if _crashes(src / n, Path(tmp))]
        result.seconds = time.perf_counter() - began
        keep = set(result.crashing) | {n for n, f in stats.items() if f.seconds > slow}
        if save and keep:
            Path(save).mkdir(parents=True, exist_ok=True)
            for n in keep:
                Path(save, n).write_bytes(blobs[n])
    result.files = list(stats.values())
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _crashes(path: Path, tmp: Path) -> bool:
    one = tmp / "one" / path.stem
    one.mkdir(parents=True)
    (one / path.name).write_bytes(path.read_bytes())
    try:
        out = tmp / "one-kg" / path.stem
        pipeline.extract_kg({"one": one}, out, ExtractConfig(workers=1), progress=False)
    except Exception:
        return True
    return False


# ----------------------------------------------------------------------------- report


def report(results: list[BatchResult], seconds: float, top: int) -> int:
    files = [f for r in results for f in r.files]
    crashes = [r for r in results if r.crash]
    reasons = Counter(f.skipped or "extracted" for f in files)
    print(f"{len(files)} mutated files in {seconds:.0f} s, {len(crashes)} crashed batches")
    for reason, n in reasons.most_common():
        print(f"  {reason:40} {n:6}")
    hangs = reasons["extract_error: TimeoutError"]
    print(f"hangs (over the per-file timeout): {hangs}")
    print(f"slowest files (extract_one, of {len(files)}):")
    for f in sorted(files, key=lambda f: -f.seconds)[:top]:
        kinds = "+".join(f.kinds)
        print(
            f"  {f.seconds:7.2f} s  {f.name}  {f.bytes / 1e3:5.0f} KB  {f.language:10} {kinds:24} "
            f"-> {f.skipped or 'extracted'}"
        )
    worst = max(files, key=lambda f: f.rss_rise_mb)
    what = f"{worst.language}, {'+'.join(worst.kinds)}, {worst.bytes / 1e3:.0f} KB"
    print(
        f"largest rise of a worker's peak memory during one file: {worst.rss_rise_mb:.0f} MB "
        f"({worst.name}: {what} -> {worst.skipped or 'extracted'})"
    )
    print(f"peak memory of any worker: {max(r.peak_rss_mb for r in results):.0f} MB")
    print(f"slowest batch (extract_kg incl. resolution and Parquet): {max(r.seconds for r in results):.1f} s")
    for r in crashes:
        print(f"CRASH: {r.crash}; files: {', '.join(r.crashing) or '?'}")
    return 1 if crashes or hangs else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=10_000, help="mutated files to extract (default 10000)")
    ap.add_argument("--raw", type=Path, default=Path("data/raw"), help="seed corpus (default data/raw)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    ap.add_argument("--batch", type=int, default=250, help="files per extract_kg call (default 250)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--file-timeout", type=int, default=60, help="seconds before a file counts as a hang")
    ap.add_argument("--save", default=None, help="folder to save crashing and slow files in (default: none)")
    ap.add_argument("--slow", type=float, default=2.0, help="--save files slower than this (default 2 s)")
    ap.add_argument("--top", type=int, default=5, help="slowest files to list (default 5)")
    args = ap.parse_args()
    seeds = load_seeds(args.raw)
    print("seeds: " + ", ".join(f"{len(v)} {k}" for k, v in seeds.items()), flush=True)
    jobs = [
        (
            args.seed * 1_000_003 + i,
            i,
            min(args.batch, args.files - i),
            args.file_timeout,
            args.save,
            args.slow,
        )
        for i in range(0, args.files, args.batch)
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, initializer=load_worker, initargs=(args.raw,)) as pool:
        results = list(pool.map(run_batch, jobs))
    sys.exit(report(results, time.perf_counter() - start, args.top))


if __name__ == "__main__":
    main()
