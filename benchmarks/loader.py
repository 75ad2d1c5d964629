"""Loader throughput beside the training step it feeds, in one run.

    python benchmarks/loader.py [--batch 8] [--batches 50] [--steps 5]

Needs `dvc repro samples`. The loader (draw the window order, fill leaf groups,
span-mask roots, mask leaf groups, collate, compact) must be >= 10x faster than
a training step of the model it feeds, or it would need worker processes. The
training step is the real objective (MLM + MNM + InfoNCE) of the preset in
params.yaml, forward + backward + AdamW, fp32 on the CPU, on those batches.
"""

from __future__ import annotations

import argparse
import time

import torch

from graphmer.config import load_section
from graphmer.loader import LeafyChains, stream_batch
from graphmer.model import ModelConfig, total_loss
from graphmer.tokenizer import load
from graphmer.train import Pretrainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8, help="windows per micro-batch (default 8)")
    ap.add_argument("--batches", type=int, default=50, help="loader micro-batches to time (default 50)")
    ap.add_argument("--steps", type=int, default=5, help="training micro-batches to time (default 5)")
    args = ap.parse_args()
    cfg, model, train, paths = (load_section(s) for s in ("samples", "model", "train", "paths"))
    tok = load(paths.tokenizer)
    masking = cfg
    ds = LeafyChains(
        paths.samples / "train.parquet",
        paths.samples / "tails.parquet",
        tok.get_vocab(),
        cfg.roots,
        cfg.leaves,
        masking,
    )
    start = time.perf_counter()
    batches = [stream_batch(ds, k, args.batch, 0) for k in range(args.batches)]
    loader_bps = args.batches / (time.perf_counter() - start)

    torch.manual_seed(0)
    net = Pretrainer(
        ModelConfig.from_preset(
            model.preset,
            vocab_size=tok.get_vocab_size(),
            roots=cfg.roots,
            leaves=cfg.leaves,
            **model.overrides(),
        ),
        train.constraint_temperature,
    )
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def step(batch: dict) -> None:
        out = net(batch)
        total_loss(out, train.mnm_weight, train.constraint_weight).backward()
        opt.step()
        opt.zero_grad()

    step(batches[0])  # warm-up
    start = time.perf_counter()
    for k in range(args.steps):
        step(batches[1 + k % (len(batches) - 1)])
    train_sps = args.steps / (time.perf_counter() - start)
    n = sum(b["input_ids"].shape[1] for b in batches) / len(batches)
    print(
        f"{model.preset} preset, micro-batch {args.batch} windows x {n:.0f} positions (compact), "
        f"{torch.get_num_threads()} threads"
    )
    print(f"loader:   {loader_bps:8.2f} micro-batches/s")
    print(f"training: {train_sps:8.2f} micro-batches/s (forward + backward + AdamW)")
    print(f"loader / training = {loader_bps / train_sps:.0f}x (target >= 10x)")


if __name__ == "__main__":
    main()
