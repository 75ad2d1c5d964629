"""Training step time of the real `train()` with the loader inline, in worker processes, and with
the transformer blocks compiled, in one run (ratios: these machines are noisy).

    python benchmarks/train_options.py [--steps 30] [--workers 2] [--skip 5]

Needs `dvc repro samples` (params.yaml's paths: samples, the tokenizer). Each variant trains the
params.yaml preset from scratch for --steps optimizer steps in a scratch folder; the first
--skip steps (start-up, compilation) are left out of the mean. A variant's tokens/s counts
the real (non-padding) tokens of its micro-batches.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from graphmer.config import load_section
from graphmer.model import ModelConfig
from graphmer.tokenizer import load
from graphmer.train import train


def mean_after(path: Path, skip: int) -> float:
    with path.open() as f:
        values = [float(row[path.stem]) for row in csv.DictReader(f, delimiter="\t")]
    return sum(values[skip:]) / max(len(values[skip:]), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per variant (default 30)")
    ap.add_argument("--workers", type=int, default=2, help="loader processes of the workers variant")
    ap.add_argument("--skip", type=int, default=5, help="first steps left out of the mean (default 5)")
    args = ap.parse_args()
    samples, model, base = load_section("samples"), load_section("model"), load_section("train")
    paths = load_section("paths")
    vocab = load(paths.tokenizer).get_vocab_size()
    cfg = ModelConfig.from_preset(
        model.preset, vocab_size=vocab, roots=samples.roots, leaves=samples.leaves, **model.overrides()
    )
    short = replace(base, steps=args.steps, eval_every=10**6, checkpoint_every=10**6, monitor_system=False)
    variants = {
        "inline loader": short,
        f"{args.workers} loader workers": replace(short, loader_workers=args.workers),
        "compiled blocks, inline loader": replace(short, compile=True),
    }
    print(f"{model.preset} preset, micro-batch {base.micro_batch} x {base.grad_accum}, {args.steps} steps")
    reference = None
    for name, tcfg in variants.items():
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            shutil.copy(paths.tokenizer, out / paths.tokenizer.name)  # the model's folder holds its tokenizer
            scratch = replace(paths, models=out, metrics=out, dvclive=out / "live", checkpoints=out / "ckpt")
            train(cfg, tcfg, samples, scratch, resume=False, progress=False)
            tokens = mean_after(out / "live/plots/metrics/train/tokens_per_s.tsv", args.skip)
        reference = reference or tokens
        print(f"{name:>32}: {tokens:9,.0f} tokens/s  ({tokens / reference:.2f}x the inline loader)")


if __name__ == "__main__":
    main()
