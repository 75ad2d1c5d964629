"""Peak memory of one training step of GraphMERT per layout and attention path, each in a fresh process.

    python benchmarks/memory.py                          # base, micro-batch 16: ~8 minutes on 2 cores
    python benchmarks/memory.py --preset tiny --batch 4  # seconds
    python benchmarks/memory.py --compile                # adds torch.compile'd flex (forward; minutes)

One training step is the real objective (`graphmer.train.Pretrainer`, `graphmer.model.total_loss` with
the train section's default weights: MLM + MNM + 0.1 InfoNCE),
forward + backward, fp32 on the CPU (AdamW's state, allocated once the activations are freed, is
counted analytically), in two layouts: `full`, every leaf group filled
(R + R*L = 1,024 positions for R=128, L=7: the worst case), and `compact`, a real batch from
data/samples (or, without it, a synthetic one with --groups filled groups per window). Each figure
comes from a subprocess of its own: the step's peak resident set size (ru_maxrss) and its delta over
the resident size just before the step (the model and the batch already built). Variants:

  sdpa    today's path: one float bias (B, H, N, N) as attn_mask. Its bias needs a gradient (p_h
          and the relation biases learn), and for such a mask torch's CPU SDPA falls back to the
          unfused math kernel, which keeps the (B, H, N, N) softmax of every layer for backward.
  plain   decay_mask and relation_bias off (key padding only): SDPA's fused kernel on the CPU as
          on CUDA, nothing of size N x N kept; what a fused kernel with the graph bias (compiled
          flex on CUDA) should cost, since its bias is computed per entry and never stored.
  flex    attention="flex". torch refuses FlexAttention's backward on the CPU, so flex and, for
          comparison, sdpa are measured forward only (torch.no_grad); eager flex on the CPU is a
          reference that computes every score densely.

To fit a few minutes (and memory: at 16 windows the full layout needs ~15 GB for one sdpa layer),
the step runs --measure-batch windows (default 4) through --layers blocks (default 1 and 2) and is
scaled: the delta less the gradients (4 bytes a parameter, P(n) parameters at depth n) grows with
the batch, delta(16, n) = 4 P(n) + 16/4 (delta(4, n) - 4 P(n)), and with the depth, linearly through
the two measured depths, to the preset's. `--measure-batch 16 --layers 1 2` measures without the
batch scaling (~20 GB, minutes).

The GPU estimate: tensor bytes do not depend on the device, so a step needs on a CUDA card about
the CPU step's delta, plus the CUDA context (~0.5 GB) and the caching allocator's slack, except
where the kernels differ. There, CUDA's memory-efficient SDPA takes a bias that needs a gradient
without keeping the softmax; it keeps the bias and the GELU input of the decay (2 biases) and
adds, in backward, the bias's gradient and each layer's contribution to it (2 more). So:
sdpa on CUDA ~ plain + 4 biases; compiled flex ~ plain (it captures (B, N) coordinates and the
(B, H, N) relation biases only). These are estimates, not GPU measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train import real_or_synthetic_batch  # noqa: E402

from graphmer.config import PathsConfig, TrainConfig  # noqa: E402
from graphmer.model import MODEL_INPUTS, ModelConfig, count_parameters, total_loss  # noqa: E402
from graphmer.train import Pretrainer  # noqa: E402

GiB = 2**30


def rss() -> int:
    """The resident set size now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def with_objective(batch: dict, cfg: ModelConfig, groups: int) -> dict:
    """A synthetic batch of `real_or_synthetic_batch` (groups filled groups per window) with what the
    objective reads: 15% of the positions masked, and each group's root, head and tail (InfoNCE)."""
    B, R, L = batch["input_ids"].shape[0], cfg.roots, cfg.leaves
    masked = torch.rand(batch["input_ids"].shape, generator=torch.Generator().manual_seed(0)) < 0.15
    group_root = torch.arange(0, R, R // groups)[:groups].expand(B, groups)
    return batch | {
        "labels": torch.where(masked, batch["input_ids"], -100),
        "group_root": group_root,
        "group_head_end": group_root + 1,
        "group_relation": batch["leaf_relation"][:, R::L],
        "group_tail": torch.randint(0, 10**6, (B, groups)),
    }


def build_batch(
    layout: str, cfg: ModelConfig, batch: int, groups: int, samples: Path, tokenizer: Path
) -> dict:
    if layout == "full":
        return with_objective(
            real_or_synthetic_batch(batch, cfg, samples, tokenizer, cfg.roots), cfg, cfg.roots
        )
    if (samples / "train.parquet").exists() and tokenizer.exists():
        b = real_or_synthetic_batch(batch, cfg, samples, tokenizer)
        if int(b["input_ids"].max()) < cfg.vocab_size:
            return b
    return with_objective(real_or_synthetic_batch(batch, cfg, samples, tokenizer, groups), cfg, groups)


def measure(spec: dict) -> dict:
    """One step as `spec` says, in this (fresh) process."""
    torch.manual_seed(0)
    torch.set_num_threads(spec["threads"])
    parts = {"decay_mask": False, "relation_bias": False} if spec["variant"] == "plain" else {}
    attention = "flex" if spec["variant"].startswith("flex") else "sdpa"
    cfg = ModelConfig.from_preset(spec["preset"], layers=spec["layers"], attention=attention, **parts)
    batch = build_batch(
        spec["layout"], cfg, spec["batch"], spec["groups"], Path(spec["samples"]), Path(spec["tokenizer"])
    )
    train = TrainConfig()
    net = Pretrainer(cfg, train.constraint_temperature)
    if spec["variant"] == "flex-compiled":
        for block in net.model.blocks:  # as train.compile does
            block.compile()
    before, start = rss(), time.perf_counter()
    if spec["train"]:
        out = net(batch)
        total_loss(out, train.mnm_weight, train.constraint_weight).backward()
    else:
        with torch.no_grad():
            net.model(*(batch[k] for k in MODEL_INPUTS))
    seconds = time.perf_counter() - start
    return {
        "delta": peak_rss() - before,
        "peak": peak_rss(),
        "seconds": seconds,
        "N": batch["input_ids"].shape[1],
        "params": count_parameters(net),
    }


def run_child(spec: dict, timeout: float) -> dict | None:
    """`measure` in a fresh interpreter, so its peak is its own (None: it failed or ran out of time)."""
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(
            f"  {spec['variant']} {spec['layout']} {spec['layers']} layer(s): over {timeout:.0f} s, skipped"
        )
        return None
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {spec['variant']} {spec['layout']} {spec['layers']} layer(s) failed: {last}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def scaled(r: dict, batch: int, measured: int) -> float:
    """The step's delta at `batch` windows from one at `measured`: all but the gradients grows with it."""
    grads = 4 * r["params"]
    return grads + batch / measured * (r["delta"] - grads)


def extrapolate(points: dict[int, float], n: int) -> float:
    """Linear in the number of layers through the two measured depths."""
    (a, pa), (b, pb) = sorted(points.items())[-2:]
    return pb + (n - b) * (pb - pa) / (b - a)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--preset", default="base", help="model preset (default base: 12 x 768, 12 heads)")
    ap.add_argument("--batch", type=int, default=16, help="windows per micro-batch (default 16)")
    ap.add_argument("--measure-batch", type=int, default=4, help="windows measured, then scaled (default 4)")
    ap.add_argument("--layers", type=int, nargs=2, default=[1, 2], help="two depths to measure (default 1 2)")
    ap.add_argument("--layouts", nargs="+", default=["full", "compact"], choices=["full", "compact"])
    ap.add_argument(
        "--groups", type=int, default=11, help="filled groups per window of a synthetic compact batch"
    )
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd flex, forward only")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per measurement (default 300)")
    ap.add_argument("--samples", type=Path, default=PathsConfig().samples)
    ap.add_argument("--tokenizer", type=Path, default=PathsConfig().tokenizer)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return
    depth = ModelConfig.from_preset(args.preset).layers
    common = {
        "preset": args.preset,
        "batch": args.measure_batch,
        "groups": args.groups,
        "samples": str(args.samples),
        "tokenizer": str(args.tokenizer),
        "threads": torch.get_num_threads(),
    }
    print(
        f"{args.preset} preset ({depth} layers), micro-batch {args.batch}, fp32, CPU, "
        f"{common['threads']} threads"
    )
    for layout in args.layouts:
        report(layout, common, args, depth)


def report(layout: str, common: dict, args: argparse.Namespace, depth: int) -> None:
    runs: dict[str, dict[int, dict]] = {}
    for variant in ("sdpa", "plain"):
        for layers in args.layers:
            spec = common | {"layout": layout, "variant": variant, "layers": layers, "train": True}
            if r := run_child(spec, args.timeout):
                runs.setdefault(variant, {})[layers] = r
    fwd = {}
    for variant in ["sdpa", "flex"] + (["flex-compiled"] if args.compile else []):
        spec = common | {"layout": layout, "variant": variant, "layers": args.layers[0], "train": False}
        if r := run_child(spec, args.timeout * (3 if variant == "flex-compiled" else 1)):
            fwd[variant] = r
    n = next(iter((fwd or next(iter(runs.values()), {})).values()), {}).get("N", 0)
    cfg = ModelConfig.from_preset(args.preset)
    with torch.device("meta"):
        params = count_parameters(Pretrainer(cfg))
    bias = args.batch * cfg.heads * n * n * 4
    print(f"\n[{layout}] {args.batch} windows, measured on {args.measure_batch} x {n} positions")
    print(
        f"  attention bias (B, H, N, N) fp32: {bias / GiB:.2f} GiB; {params / 1e6:.0f}M parameters: "
        f"{4 * params / GiB:.2f} GiB, + gradients + AdamW moments: {16 * params / GiB:.2f} GiB"
    )
    step = {}
    for variant, points in runs.items():
        for layers, r in sorted(points.items()):
            print(
                f"  train {variant:5} {layers:2} layer(s): peak RSS {r['peak'] / GiB:6.2f} GiB, step delta "
                f"{r['delta'] / GiB:6.2f} GiB, {r['seconds']:6.1f} s"
            )
        if len(points) == 2:
            at_batch = {k: scaled(r, args.batch, args.measure_batch) for k, r in points.items()}
            step[variant] = extrapolate(at_batch, depth)
            print(
                f"  train {variant:5} {depth:2} layers, {args.batch} windows (scaled): forward + backward "
                f"{step[variant] / GiB:6.2f} GiB over the parameters"
            )
    if "plain" in step:
        # the parameters, then the larger of the step and the gradients + AdamW state after it
        flex = 4 * params + max(step["plain"], 12 * params)
        sdpa = 4 * params + max(step["plain"] + 4 * bias, 12 * params)
        print(
            f"  GPU estimate, fp32, {depth} layers: sdpa ~ {sdpa / GiB:.1f} GiB, compiled flex ~ "
            f"{flex / GiB:.1f} GiB (+ ~0.5 GiB CUDA context; see --help)"
        )
    for variant, r in fwd.items():
        print(
            f"  forward only (no_grad), {args.layers[0]} layer(s), {args.measure_batch} windows, "
            f"{variant:13}: "
            f"delta {r['delta'] / GiB:6.2f} GiB, {r['seconds']:6.1f} s"
        )


if __name__ == "__main__":
    main()
