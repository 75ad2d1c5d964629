"""Loader throughput beside the training step it feeds, in one run.

    python benchmarks/loader.py [--batch 8] [--batches 50]

Needs `dvc repro samples`. The loader (fill leaf groups, span-mask roots,
mask leaf groups, collate) must be >= 10x faster than a training step, or it
would need worker processes. Until the GraphMERT model lands, the training step
is a tiny-preset stand-in: a 4-layer, 256-wide `nn.TransformerEncoder` (4 heads,
FFN 1024) over the same batch, forward + backward + AdamW, fp32 on the CPU.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from graphmer.config import load_section
from graphmer.data import LeafyChains, Masking, collate
from graphmer.tokenizer import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8, help="windows per batch (default 8)")
    ap.add_argument("--batches", type=int, default=50, help="loader batches to time (default 50)")
    ap.add_argument("--steps", type=int, default=3, help="training steps to time (default 3)")
    args = ap.parse_args()
    cfg = load_section("samples")
    vocab = load("models/tokenizer.json").get_vocab()
    ds = LeafyChains(
        "data/samples/train.parquet",
        "data/samples/tails.parquet",
        vocab,
        cfg.roots,
        cfg.leaves,
        Masking(cfg.mask_rate, cfg.span_p, cfg.max_span, cfg.leaf_mask_prob, cfg.balance),
    )
    start = time.perf_counter()
    for b in range(args.batches):
        batch = collate([ds[(b * args.batch + i) % len(ds)] for i in range(args.batch)])
    loader_bps = args.batches / (time.perf_counter() - start)

    torch.manual_seed(0)
    emb = nn.Embedding(len(vocab), 256)
    layer = nn.TransformerEncoderLayer(256, 4, 1024, batch_first=True, dropout=0.0)
    enc = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
    head = nn.Linear(256, len(vocab))
    params = [*emb.parameters(), *enc.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step() -> None:
        h = enc(emb(batch["input_ids"]), src_key_padding_mask=~batch["attention_mask"])
        loss = nn.functional.cross_entropy(
            head(h).flatten(0, 1), batch["labels"].flatten(), ignore_index=-100
        )
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    train_sps = args.steps / (time.perf_counter() - start)
    n = batch["input_ids"].shape[1]
    print(f"batch {args.batch} x {n} tokens, {torch.get_num_threads()} threads")
    print(f"loader:   {loader_bps:8.2f} batches/s")
    print(f"training: {train_sps:8.3f} steps/s (tiny stand-in encoder, fwd+bwd+AdamW)")
    print(f"loader / training = {loader_bps / train_sps:.0f}x (target >= 10x)")


if __name__ == "__main__":
    main()
