"""Encoder throughput beside torch.nn.TransformerEncoder of the same size, same batch, one run.

    python benchmarks/train.py [--preset tiny] [--batch 8] [--steps 5] [--device cpu|cuda]

Times forward + backward of the GraphMERT encoder (H-GAT, graph decay and
relation bias all on) and of a plain `nn.TransformerEncoder` (same layers,
width, heads, FFN; key-padding mask) over the same compact leafy-chain batch
drawn from data/samples (or a synthetic one when it is missing). Prints
tokens/s (positions per second) of both and their ratio; on CUDA also the model
FLOP utilization against the card's dense bf16 peak (--peak-tflops).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from graphmer.config import PathsConfig
from graphmer.loader import LeafyChains, stream_batch
from graphmer.model import GraphMERT, ModelConfig, train_flops

INPUTS = ("input_ids", "attention_mask", "root_index", "slot", "leaf_relation", "head_end")


def real_or_synthetic_batch(
    batch: int, cfg: ModelConfig, samples: Path, tokenizer: Path, groups: int | None = None
) -> dict:
    """A compact batch of real windows, or a synthetic one with `groups` filled leaf groups per
    window (groups = roots: the full R + R*L layout)."""
    if groups is None and (samples / "train.parquet").exists() and tokenizer.exists():
        from graphmer.tokenizer import load

        ds = LeafyChains(
            samples / "train.parquet",
            samples / "tails.parquet",
            load(tokenizer).get_vocab(),
            cfg.roots,
            cfg.leaves,
        )
        return stream_batch(ds, 0, batch, 0)
    R, L = cfg.roots, cfg.leaves
    g = groups or 8
    n = R + g * L
    root_index = torch.cat([torch.arange(R), torch.arange(0, R, R // g)[:g].repeat_interleave(L)])
    return {
        "input_ids": torch.randint(5, cfg.vocab_size, (batch, n)),
        "attention_mask": torch.ones(batch, n, dtype=torch.bool),
        "root_index": root_index.expand(batch, n),
        "slot": torch.cat([torch.zeros(R, dtype=torch.long), (1 + torch.arange(L)).repeat(g)]).expand(
            batch, n
        ),
        "leaf_relation": torch.cat(
            [torch.full((R,), -1), torch.randint(0, 16, (g,)).repeat_interleave(L)]
        ).expand(batch, n),
        "head_end": (root_index + 1).expand(batch, n),
    }


def mfu(model: GraphMERT, windows: int, positions: int, seconds: float, peak_tflops: float) -> float:
    """Model FLOP utilization of a forward + backward pass over `windows` x `positions` that took
    `seconds`, against a card's dense peak (`graphmer.model.train_flops`)."""
    return train_flops(model, windows, positions) / seconds / (peak_tflops * 1e12)


def timed(fn, steps: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM: 989)")
    ap.add_argument(
        "--groups",
        type=int,
        default=None,
        help="synthetic batch with this many leaf groups per window (128: the full 1024 layout)",
    )
    ap.add_argument("--samples", type=Path, default=PathsConfig().samples)
    ap.add_argument("--tokenizer", type=Path, default=PathsConfig().tokenizer)
    args = ap.parse_args()
    device = torch.device(args.device)
    cfg = ModelConfig.from_preset(args.preset, vocab_size=8000, dropout=0.0)
    batch = {
        k: v.to(device)
        for k, v in real_or_synthetic_batch(
            args.batch, cfg, args.samples, args.tokenizer, args.groups
        ).items()
        if k in INPUTS
    }
    amp = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.dtype == "bf16"
        else torch.autocast(device.type, enabled=False)
    )
    ours = GraphMERT(cfg).to(device)
    emb = nn.Embedding(cfg.vocab_size, cfg.hidden).to(device)
    layer = nn.TransformerEncoderLayer(
        cfg.hidden, cfg.heads, cfg.ffn, dropout=0.0, batch_first=True, norm_first=True, activation="gelu"
    )
    ref = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False).to(device)

    def run_ours() -> None:
        with amp:
            h = ours(*(batch[k] for k in INPUTS))
        h.float().sum().backward()

    def run_ref() -> None:
        with amp:
            h = ref(emb(batch["input_ids"]), src_key_padding_mask=~batch["attention_mask"])
        h.float().sum().backward()

    B, N = batch["input_ids"].shape
    t_ours, t_ref = timed(run_ours, args.steps, device), timed(run_ref, args.steps, device)
    print(
        f"{args.preset} ({cfg.layers}x{cfg.hidden}, {cfg.heads} heads), batch {B} x {N} positions, "
        f"{args.dtype} on {device}"
    )
    print(f"GraphMERT encoder:        {B * N / t_ours:10.0f} tokens/s ({1 / t_ours:.2f} steps/s)")
    print(f"nn.TransformerEncoder:    {B * N / t_ref:10.0f} tokens/s")
    print(f"ratio (ours / reference): {t_ref / t_ours:.2f}x (target >= 0.8x)")
    if device.type == "cuda":
        print(
            f"MFU: {mfu(ours, B, N, t_ours, args.peak_tflops):.1%} of {args.peak_tflops:.0f} TFLOP/s; "
            f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
        )


if __name__ == "__main__":
    main()
