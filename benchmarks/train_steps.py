"""Training steps of a preset on synthetic leafy-chain batches: steps/s, tokens/s, memory, MFU.

    python benchmarks/train_steps.py --preset base --steps 100 --micro-batch 32 --grad-accum 4  # GPU

The full objective (MLM + MNM + InfoNCE regularizer) with AdamW, bf16 autocast
on CUDA (fp32 on CPU); an optimizer step is --grad-accum micro-batches (the
reference run's effective batch: 128 windows); the batch is the full
R + R*L = 1024-position layout unless --groups says otherwise. --compile runs the
transformer blocks through torch.compile, as `train.compile: true` does; --attention flex
computes the graph bias inside FlexAttention instead of as one (B, H, N, N) tensor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train import mfu, real_or_synthetic_batch  # noqa: E402

from graphmer.config import TrainConfig  # noqa: E402
from graphmer.model import ModelConfig, total_loss  # noqa: E402
from graphmer.train import Pretrainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="base")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument("--grad-accum", type=int, default=4, help="micro-batches per optimizer step (default 4)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the transformer blocks")
    ap.add_argument("--attention", default="sdpa", choices=["sdpa", "flex"], help="model.attention")
    ap.add_argument("--groups", type=int, default=128)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM: 989)")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = ModelConfig.from_preset(args.preset, vocab_size=8000, dropout=0.0, attention=args.attention)
    batch = real_or_synthetic_batch(args.micro_batch, cfg, Path("-"), Path("-"), args.groups)
    labels = torch.where(torch.rand(batch["input_ids"].shape) < 0.15, batch["input_ids"], -100)
    batch |= {"labels": labels, "group_root": torch.full((args.micro_batch, 1), -1)}
    batch = {k: v.to(device) for k, v in batch.items()}
    train = TrainConfig()  # the objective's default weights and temperature
    net = Pretrainer(cfg, train.constraint_temperature).to(device)
    if args.compile:
        for block in net.model.blocks:
            block.compile(dynamic=True)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=device.type == "cuda")
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> float:
        for _ in range(args.grad_accum):
            with amp:
                out = net(batch)
                loss = total_loss(out, train.mnm_weight, train.constraint_weight)
            (loss / args.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    float(loss)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - start) / args.steps
    B, N = batch["input_ids"].shape
    B *= args.grad_accum  # windows per optimizer step
    print(
        f"{args.preset}: {args.steps} optimizer steps of {B} x {N} ({args.grad_accum} micro-batches) on "
        f"{device}: {1 / dt:.2f} steps/s, {B * N / dt:,.0f} tokens/s, loss {float(loss):.3f}"
    )
    if device.type == "cuda":
        print(
            f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; "
            f"MFU {mfu(net.model, B, N, dt, args.peak_tflops):.1%} of {args.peak_tflops:.0f} TFLOP/s"
        )


if __name__ == "__main__":
    main()
