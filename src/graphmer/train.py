"""Pre-training: MLM on roots + mu(t) * MNM on leaves + constraint_weight * InfoNCE.

    python stages/train.py                              # the DVC stage (tiny preset on CPU)
    torchrun --nproc_per_node=2 stages/train.py         # DDP; rank 0 alone logs and writes

Optimizer steps count `train.steps`; each is `grad_accum` micro-batches per
process, so the effective batch is micro_batch * grad_accum * processes. The
micro-batch sequence is a pure function of (seed, step), which makes a resumed
run, or a run on more processes with the same effective batch, take the same
batches as an unbroken single-process run.

`train` is `setup_training` (data, model, optimizer, a resumed checkpoint, the batch
stream: a `Run`) then `fit` (the steps, dev evaluations, checkpoints, the final model).
What a model or a checkpoint is on disk is `graphmer.checkpoint`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from graphmer import GraphmerError, atomic, progress_bar
from graphmer.checkpoint import (
    find_checkpoint,
    fingerprint,
    restore,
    rng_state,
    save_checkpoint,
    save_model,
    training_state,
)
from graphmer.config import PathsConfig, SamplesConfig, TrainConfig
from graphmer.loader import IGNORE, LeafyChains, batch_loader, collate, compact, micro_batch_indices
from graphmer.model import MODEL_INPUTS, GraphMERT, ModelConfig, masked_groups, total_loss
from graphmer.relations import NUM_RELATIONS
from graphmer.samples import CANDIDATES_TABLE, TAILS_TABLE, windows_table
from graphmer.tokenizer import load as load_tokenizer

# --------------------------------------------------------------------------- schedules


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def mu_at(step: int, cfg: TrainConfig) -> float:
    """MNM weight: 0 during warm-up, then a linear ramp to cfg.mnm_weight (curriculum)."""
    if cfg.mnm_ramp_steps == 0:
        return cfg.mnm_weight if step >= cfg.warmup_steps else 0.0
    return cfg.mnm_weight * min(max((step - cfg.warmup_steps) / cfg.mnm_ramp_steps, 0.0), 1.0)


# --------------------------------------------------------------------------- objective


class Pretrainer(nn.Module):
    """The encoder plus what only training needs (relation matrices of the regularizer)."""

    def __init__(self, cfg: ModelConfig, temperature: float = TrainConfig.constraint_temperature):
        super().__init__()
        self.model = GraphMERT(cfg)
        d = cfg.hidden
        self.relation = nn.Parameter(torch.eye(d).repeat(NUM_RELATIONS, 1, 1))
        self.temperature = temperature

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m, R = self.model, self.model.cfg.roots
        hidden = m(*(batch[k] for k in MODEL_INPUTS))
        labels = batch["labels"]
        b, p = torch.nonzero(labels[:, :R] != IGNORE, as_tuple=True)
        mlm = torch.log_softmax(m.logits(hidden[b, p]).float(), dim=-1)
        out = _nll("mlm", mlm, labels[b, p])
        b, first, targets = masked_groups(batch, R, m.cfg.leaves)
        # a training window's target is a training-graph triple: leave it out of the memory's counts
        logp, guess = m.tail_logprobs(hidden, batch, b, first, targets, leave_one_out=self.training)
        count = (targets != IGNORE).sum()
        out["mnm_loss"] = -logp.sum() / count.clamp(min=1)  # per tail token, as MLM's
        out["mnm_correct"] = ((guess == targets) & (targets != IGNORE)).sum()
        out["mnm_count"] = count
        out["constraint_loss"] = self.constraint(hidden, batch)
        return out

    def constraint(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """InfoNCE: the head span's pooled state, mapped by its relation's matrix, must score its
        own tail (mean token embedding) above the other tails of the batch."""
        m, R, L = self.model, self.model.cfg.roots, self.model.cfg.leaves
        b, k = torch.nonzero(batch["group_root"] >= 0, as_tuple=True)  # filled groups (G,)
        if len(b) < 2:
            return hidden.sum() * 0.0
        g = batch["group_root"][b, k]
        pos = g[:, None] + torch.arange(m.cfg.max_head_tokens, device=g.device)[None]
        valid = (pos < batch["group_head_end"][b, k][:, None]).float()
        heads = hidden[b[:, None], pos.clamp(max=R - 1)]  # (G, Hmax, d)
        head = (heads * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        rel = batch["group_relation"][b, k]
        z = F.normalize(torch.einsum("gd,ged->ge", head.float(), self.relation[rel].float()), dim=-1)
        original = torch.where(batch["labels"] != IGNORE, batch["labels"], batch["input_ids"])
        slots = R + k[:, None] * L + torch.arange(L, device=k.device)[None]  # (G, L)
        leaf_ids = original[b[:, None], slots]
        real = batch["attention_mask"][b[:, None], slots].float()
        tail = (m.tok(leaf_ids) * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp(min=1)
        scores = z @ F.normalize(tail.float(), dim=-1).T / self.temperature
        same = batch["group_tail"][b, k]
        dup = (same[:, None] == same[None, :]) & ~torch.eye(len(b), dtype=torch.bool, device=b.device)
        scores = scores.masked_fill(dup, float("-inf"))  # the same tail elsewhere is no negative
        return F.cross_entropy(scores, torch.arange(len(b), device=b.device))


def _nll(name: str, logp: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean negative log-likelihood, right predictions and count of one objective."""
    loss = F.nll_loss(logp, target) if len(target) else logp.sum() * 0.0
    return {
        f"{name}_loss": loss,
        f"{name}_correct": (logp.argmax(-1) == target).sum(),
        f"{name}_count": torch.tensor(len(target), device=target.device),
    }


# --------------------------------------------------------------------------- processes


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    return Dist(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(d: Dist) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None means fp32. auto: bf16 on CUDA cards with it, fp16 on older cards, fp32 on CPU."""
    if precision == "fp32" or (precision == "auto" and device.type == "cpu"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def seed_process(seed: int, d: Dist) -> None:
    """Each rank its own dropout stream (rank 0 keeps `seed`'s: one process is unchanged by DDP);
    the initial weights are rank 0's, which DDP broadcasts."""
    if d.rank:
        torch.manual_seed(int.from_bytes(hashlib.sha256(f"{seed}/{d.rank}".encode()).digest()[:8], "little"))


def gather_rng(device: torch.device, d: Dist) -> list[dict]:
    """Every rank's `rng_state`, rank by rank (what a checkpoint restores)."""
    mine = rng_state(device)
    if d.world == 1:
        return [mine]
    states: list = [None] * d.world
    dist.all_gather_object(states, mine)
    return states


# --------------------------------------------------------------------------- setup


@dataclass
class Run:
    """A run ready for its first step: the model (`ddp`: wrapped for DDP on more than one process),
    optimizer and loss scaler, the stream of training micro-batches from step `start` on, the dev
    windows, where its checkpoints go and rank 0's live logger."""

    cfg: TrainConfig
    paths: PathsConfig
    d: Dist
    device: torch.device
    amp: torch.dtype | None  # autocast dtype (None: fp32)
    net: Pretrainer
    ddp: nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    batches: Iterator[dict[str, torch.Tensor]] | None
    dev: LeafyChains
    start: int  # 0, or the step of the checkpoint resumed
    fingerprint: str
    checkpoints: Path  # this trajectory's folder
    live: object | None  # dvclive.Live on rank 0

    def close(self) -> None:
        self.batches = None  # stops the loader's workers
        if self.live is not None:
            self.live.end()
        if self.d.world > 1:
            dist.destroy_process_group()


def setup_training(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    samples: SamplesConfig,
    paths: PathsConfig = PathsConfig(),
    resume: bool = True,
) -> Run:
    """Data, model, optimizer and batches of a run, in the order that fixes its random streams:
    the seed, the initial weights (rank 0's), each rank's dropout stream, then, resuming, the
    checkpoint's weights and streams over them."""
    d = init_distributed()
    device = pick_device(d)
    torch.manual_seed(cfg.seed)
    train_ds, dev_ds = _windows(model_cfg, samples, paths, cfg.seed)
    names, counts = tail_names(paths.samples, model_cfg.leaves) if model_cfg.memory else ([], None)
    model_cfg = dataclasses.replace(model_cfg, memory_size=len(names))
    net = Pretrainer(model_cfg, cfg.constraint_temperature)
    if net.model.memory is not None:
        net.model.memory.fill(names, counts)
    net = net.to(device)
    seed_process(cfg.seed, d)
    if cfg.compile:
        for block in net.model.blocks:  # in place: parameter names, and so checkpoints, stay as they are
            block.compile(dynamic=True)
    opt = torch.optim.AdamW(
        net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.adam_betas)
    )
    amp = autocast_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    fp = fingerprint(model_cfg, cfg, samples, paths, d.world)
    folder = paths.checkpoints / fp  # one folder per trajectory: other configs' checkpoints stay intact
    paths.checkpoints.mkdir(parents=True, exist_ok=True)  # a DVC output even before the first checkpoint
    if d.main:  # what a killed run was writing (a half checkpoint is as large as a whole one)
        for stale in (paths.models, folder):
            atomic.remove_stale(stale)
    start = _resume(net, opt, scaler, folder, fp, d, device) if resume else 0
    # Relations absent from a micro-batch leave their H-GAT and regularizer weights unused.
    ddp = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True) if d.world > 1 else net
    if d.main and start == 0 and resume:
        _say_fresh(paths.checkpoints, fp)
    live = _live(paths, start) if d.main else None
    loader = batch_loader(
        train_ds,
        micro_batch_indices(start, cfg.steps, cfg.grad_accum, d.world, d.rank),
        cfg.micro_batch,
        cfg.seed,
        cfg.anchored_only,
        cfg.loader_workers,
        pin=device.type == "cuda",
    )
    return Run(
        cfg, paths, d, device, amp, net, ddp, opt, scaler, iter(loader), dev_ds, start, fp, folder, live
    )


def tail_names(samples_dir: Path, leaves: int) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """The tail memory's contents: every name (leaf ids, at most `leaves`) that is some relation's
    tail in the training graph, and its count as each relation's tail (NUM_RELATIONS, N)."""
    rows = pq.read_table(samples_dir / CANDIDATES_TABLE, columns=["relation", "ids", "train_count"])
    rows = rows.filter(pc.greater(rows["train_count"], 0)).to_pydict()
    index: dict[tuple[int, ...], int] = {}
    for ids in rows["ids"]:
        index.setdefault(tuple(ids[:leaves]), len(index))
    counts = torch.zeros(NUM_RELATIONS, len(index), dtype=torch.long)
    for r, ids, n in zip(rows["relation"], rows["ids"], rows["train_count"]):
        counts[r, index[tuple(ids[:leaves])]] += n
    return list(index), counts


def _windows(
    model_cfg: ModelConfig, samples: SamplesConfig, paths: PathsConfig, seed: int
) -> tuple[LeafyChains, LeafyChains]:
    """The train and dev windows, with the tokenizer's vocabulary (which must fit the model's)."""
    vocab = load_tokenizer(paths.tokenizer).get_vocab()
    if max(vocab.values()) >= model_cfg.vocab_size:
        raise GraphmerError(
            f"tokenizer has {max(vocab.values()) + 1} tokens, model vocab_size is {model_cfg.vocab_size}"
        )
    train_ds, dev_ds = (
        LeafyChains(
            paths.samples / windows_table(split),
            paths.samples / TAILS_TABLE,
            vocab,
            model_cfg.roots,
            model_cfg.leaves,
            samples,
            seed,
        )
        for split in ("train", "dev")
    )
    if len(train_ds) == 0:
        raise GraphmerError(f"{paths.samples / windows_table('train')} has no windows")
    return train_ds, dev_ds


def _resume(net, opt, scaler, folder: Path, fp: str, d: Dist, device: torch.device) -> int:
    """The step of the newest checkpoint of this trajectory that fits the model, restored (0: none)."""
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    state = find_checkpoint(folder, fp, print if d.main else lambda _: None, shapes)
    if state is None:
        return 0
    start = restore(state, net, opt, scaler, d.rank, device)
    if d.main:
        print(f"train: resuming from step {start}")
    return start


def _say_fresh(checkpoints: Path, fp: str) -> None:
    others = [p.parent.name for p in checkpoints.glob("*/step-*.pt") if p.parent.name != fp]
    if others:
        print(
            f"train: no checkpoint of this config and data ({fp}); starting fresh "
            f"({len(set(others))} other run(s) kept in {checkpoints})"
        )


# --------------------------------------------------------------------------- the loop


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    samples: SamplesConfig,
    paths: PathsConfig = PathsConfig(),
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train, checkpoint, write final weights and metrics; `stop_after` simulates a killed run."""
    run = setup_training(model_cfg, cfg, samples, paths, resume)
    metrics = fit(run, progress, stop_after)
    run.close()
    return metrics


def fit(run: Run, progress: bool = True, stop_after: int | None = None) -> dict:
    """Steps `run.start` .. `cfg.steps`: logged, evaluated on dev and checkpointed as the config
    says; at the end rank 0 writes the model and metrics/train.json. The last step's metrics."""
    cfg, d = run.cfg, run.d
    metrics: dict = {}
    bar = progress_bar(
        range(run.start, cfg.steps),
        initial=run.start,
        total=cfg.steps,
        desc="train",
        unit="step",
        disable=not (progress and d.main),
    )
    for step in bar:
        metrics = _measured_step(run, step)
        if run.live is not None and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps):
            _log(run.live, metrics)
        if d.main:
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", mlm=f"{metrics['mlm_acc']:.2f}", refresh=False)
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            _checkpoint(run, step + 1)
        if stop_after is not None and step + 1 >= stop_after:
            break
    else:
        if d.main:
            _write_outputs(run.net.model, metrics, run.paths)
    return metrics


def _measured_step(run: Run, step: int) -> dict:
    """One optimizer step with its speed and memory, the system's use and, when due, dev metrics."""
    cfg, d, device = run.cfg, run.d, run.device
    t0 = time.perf_counter()
    stats = _step(run, step)
    stats["tokens_per_s"] = stats.pop("tokens") / (time.perf_counter() - t0)
    stats["peak_memory_mb"] = _peak_memory_mb(device)
    metrics = {"step": step + 1, **stats}
    if cfg.monitor_system and d.main:
        metrics |= system_metrics(device)
    if d.main and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
        metrics |= evaluate_batches(run.net, run.dev, cfg, device, run.amp)
    return metrics


def _log(live, metrics: dict) -> None:
    for k, v in metrics.items():
        if k != "step":
            live.log_metric(k if "/" in k else f"train/{k}", v)
    live.next_step()


def _checkpoint(run: Run, step: int) -> None:
    rngs = gather_rng(run.device, run.d)  # every rank takes part; rank 0 writes
    if run.d.main:
        state = training_state(run.net, run.opt, run.scaler, rngs, step, run.fingerprint)
        save_checkpoint(run.checkpoints, step, state, run.cfg.keep_checkpoints)


def _step(run: Run, step: int) -> dict:
    """One optimizer step of `grad_accum` micro-batches per process: mean losses, accuracies, lr,
    mu, the gradient norm and the tokens of every process."""
    cfg = run.cfg
    for group in run.opt.param_groups:
        group["lr"] = lr_at(step, cfg)
    mu = mu_at(step, cfg)
    totals = {"loss": 0.0, "mlm_loss": 0.0, "mnm_loss": 0.0, "constraint_loss": 0.0}
    counts = torch.zeros(4, dtype=torch.float64)
    tokens = 0
    run.ddp.train()
    for a in range(cfg.grad_accum):
        batch = {n: t.to(run.device, non_blocking=True) for n, t in next(run.batches).items()}
        tokens += int(batch["attention_mask"].sum())
        out, loss = _backward(run, batch, mu, sync=a == cfg.grad_accum - 1 or run.d.world == 1)
        for name in ("mlm_loss", "mnm_loss", "constraint_loss"):
            totals[name] += float(out[name].detach()) / cfg.grad_accum
        totals["loss"] += float(loss.detach()) / cfg.grad_accum
        counts += torch.tensor(
            [
                float(out["mlm_correct"]),
                float(out["mlm_count"]),
                float(out["mnm_correct"]),
                float(out["mnm_count"]),
            ],
            dtype=torch.float64,
        )
    run.scaler.unscale_(run.opt)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(run.ddp.parameters(), cfg.grad_clip))
    run.scaler.step(run.opt)
    run.scaler.update()
    run.opt.zero_grad(set_to_none=True)
    accuracy = {
        "mlm_acc": float(counts[0] / max(counts[1], 1)),
        "mnm_acc": float(counts[2] / max(counts[3], 1)),
    }
    return (
        totals
        | accuracy
        | {"lr": lr_at(step, cfg), "mu": mu, "grad_norm": grad_norm, "tokens": tokens * run.d.world}
    )


def _backward(
    run: Run, batch: dict[str, torch.Tensor], mu: float, sync: bool
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Forward and backward of one micro-batch (its share of the step's gradient); `sync`: all-reduce
    the gradients (the last micro-batch of a DDP step)."""
    with contextlib.nullcontext() if sync else run.ddp.no_sync(), _autocast(run.device, run.amp):
        out = run.ddp(batch)
        loss = total_loss(out, mu, run.cfg.constraint_weight)
    run.scaler.scale(loss / run.cfg.grad_accum).backward()
    return out, loss


@torch.no_grad()
def evaluate_batches(net: Pretrainer, ds: LeafyChains, cfg: TrainConfig, device, amp) -> dict:
    """Loss and accuracy on a fixed set of dev windows with fixed masks (epoch 0)."""
    if len(ds) == 0:
        return {}
    net.eval()
    sums = torch.zeros(6, dtype=torch.float64)
    n = min(cfg.eval_batches * cfg.micro_batch, len(ds))
    for lo in range(0, n, cfg.micro_batch):
        batch = compact(collate([ds.draw(i, 0) for i in range(lo, min(lo + cfg.micro_batch, n))]), ds.R, ds.L)
        with _autocast(device, amp):
            out = net({k: t.to(device) for k, t in batch.items()})
        sums += torch.tensor(
            [
                float(out["mlm_loss"]) * float(out["mlm_count"]),
                float(out["mlm_correct"]),
                float(out["mlm_count"]),
                float(out["mnm_loss"]) * float(out["mnm_count"]),
                float(out["mnm_correct"]),
                float(out["mnm_count"]),
            ],
            dtype=torch.float64,
        )
    net.train()
    return {
        "dev/mlm_loss": float(sums[0] / max(sums[2], 1)),
        "dev/mlm_acc": float(sums[1] / max(sums[2], 1)),
        "dev/mnm_loss": float(sums[3] / max(sums[5], 1)),
        "dev/mnm_acc": float(sums[4] / max(sums[5], 1)),
    }


def _autocast(device: torch.device, amp: torch.dtype | None):
    return torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _live(paths: PathsConfig, start: int):
    """DVCLive's logger, at step `start`: a resumed run keeps the curves of the steps before its
    checkpoint and drops what a killed (or finished) run logged after it, which it takes again."""
    from dvclive import Live

    if start:
        for tsv in (paths.dvclive / "plots" / "metrics").rglob("*.tsv"):
            lines = tsv.read_text().splitlines(keepends=True)
            kept = [r for r in lines[1:] if int(r.split("\t", 1)[0]) < start]
            atomic.write_text(tsv, "".join(lines[:1] + kept))
    live = Live(dir=str(paths.dvclive), resume=start > 0, dvcyaml=None, save_dvc_exp=False)
    live.step = start
    return live


def system_metrics(device: torch.device) -> dict:
    """What the reference run reported: GPU utilization, memory, temperature and power where the
    device reports them; CPU and RAM always. (DVCLive's own monitor stops on a CPU-only machine
    that has pynvml installed but no NVML library.)"""
    import psutil

    out = {
        "system/cpu_percent": psutil.cpu_percent(interval=None),
        "system/ram_used_gb": psutil.virtual_memory().used / 2**30,
        "system/ram_percent": psutil.virtual_memory().percent,
    }
    if device.type == "cuda":
        out["system/gpu_memory_gb"] = torch.cuda.memory_reserved(device) / 2**30
        for name, read in (
            ("gpu_utilization", torch.cuda.utilization),
            ("gpu_temperature", torch.cuda.temperature),
            ("gpu_power_w", lambda d: torch.cuda.power_draw(d) / 1000),
        ):
            with contextlib.suppress(Exception):  # needs NVML; not every driver reports every value
                out[f"system/{name}"] = float(read(device))
    return out


def _write_outputs(model: GraphMERT, metrics: dict, paths: PathsConfig) -> None:
    save_model(model, paths.models)
    atomic.write_json(paths.metrics / "train.json", {k.replace("/", "_"): v for k, v in metrics.items()})
