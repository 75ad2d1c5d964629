"""Pre-training: MLM on roots + mu(t) * MNM on leaves + constraint_weight * InfoNCE.

    python stages/train.py                              # the DVC stage (tiny preset on CPU)
    torchrun --nproc_per_node=2 stages/train.py         # DDP; rank 0 alone logs and writes

Optimizer steps count `train.steps`; each is `grad_accum` micro-batches per
process, so the effective batch is micro_batch * grad_accum * processes. The
micro-batch sequence is a pure function of (seed, step), which makes a resumed
run, or a run on more processes with the same effective batch, take the same
batches as an unbroken single-process run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from graphmer import GraphmerError, atomic, progress_bar
from graphmer.config import SamplesConfig, TrainConfig
from graphmer.loader import IGNORE, LeafyChains, batch_loader, collate, compact, micro_batch_indices
from graphmer.model import MODEL_INPUTS, GraphMERT, ModelConfig, masked_groups, shape_mismatch
from graphmer.relations import NUM_RELATIONS
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

    def __init__(self, cfg: ModelConfig, temperature: float = 0.1):
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
        logp, guess = m.tail_logprobs(hidden, batch, b, first, targets)
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


# --------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class Paths:
    samples: Path = Path("data/samples")
    tokenizer: Path = Path("models/tokenizer.json")
    out: Path = Path("models")
    metrics: Path = Path("metrics/train.json")
    live: Path = Path("dvclive")
    checkpoints: Path = Path("checkpoints")  # outside `out`: models/ is the model a user downloads


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


def fingerprint(model_cfg: ModelConfig, cfg: TrainConfig, masking: SamplesConfig, paths: Paths, world: int) -> str:
    """What a checkpoint must match to be resumed: everything that shapes the trajectory,
    the training code included (a checkpoint of older code is not silently continued)."""
    h = hashlib.sha256()
    skip = {
        "checkpoint_every",
        "keep_checkpoints",
        "eval_every",
        "eval_batches",
        "log_every",
        "monitor_system",
        "loader_workers",  # the same batches, built elsewhere
    }
    h.update(
        json.dumps(
            [
                model_cfg.to_dict(),
                {k: v for k, v in asdict(cfg).items() if k not in skip},
                asdict(masking),
                world,
            ],
            sort_keys=True,
        ).encode()
    )
    code = [Path(__file__).with_name(m) for m in ("model.py", "train.py", "loader.py")]
    for f in (paths.samples / "train.parquet", paths.samples / "tails.parquet", paths.tokenizer, *code):
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- checkpoints


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:08d}.pt"


def save_checkpoint(folder: Path, step: int, state: dict, keep: int) -> Path:
    path = checkpoint_path(folder, step)
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)  # through a Python file: a full disk is an OSError naming ENOSPC
    for old in sorted(folder.glob("step-*.pt"))[:-keep]:  # only after the new one is safely written
        old.unlink()
    return path


def find_checkpoint(folder: Path, fp: str, say=print, shapes: dict | None = None) -> dict | None:
    """The newest checkpoint that loads, matches `fp` and (given the model's `shapes`, name ->
    size) fits the model; says why it passes over others."""
    for path in sorted(folder.glob("step-*.pt"), reverse=True):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file
            say(f"train: checkpoint {path.name} is unreadable ({type(err).__name__}); skipping it")
            continue
        if not isinstance(state, dict) or state.get("fingerprint") != fp:
            say(f"train: checkpoint {path.name} is from another config or data; not resuming from it")
            continue
        if shapes is not None and (misfit := _misfit(state.get("model"), shapes)):
            say(f"train: checkpoint {path.name} does not fit the model ({misfit}); skipping it")
            continue
        return state
    return None


def _misfit(weights, shapes: dict) -> str | None:
    """Why a checkpoint's weights cannot load into a model with `shapes`, or None."""
    if not isinstance(weights, dict):
        return "no model weights"
    found = {k: getattr(v, "shape", ()) for k, v in weights.items()}
    return shape_mismatch(found, shapes, "the model's is")


def rng_state(device: torch.device) -> dict:
    """This process's random streams: the CPU generator, and the CUDA one of `device`."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


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


# --------------------------------------------------------------------------- the loop


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    samples: SamplesConfig,
    paths: Paths = Paths(),
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train, checkpoint, write final weights and metrics; `stop_after` simulates a killed run."""
    d = init_distributed()
    device = pick_device(d)
    torch.manual_seed(cfg.seed)
    masking = samples
    vocab = load_tokenizer(paths.tokenizer).get_vocab()
    if max(vocab.values()) >= model_cfg.vocab_size:
        raise GraphmerError(
            f"tokenizer has {max(vocab.values()) + 1} tokens, model vocab_size is {model_cfg.vocab_size}"
        )
    train_ds, val_ds = (
        LeafyChains(
            paths.samples / f"{split}.parquet",
            paths.samples / "tails.parquet",
            vocab,
            model_cfg.roots,
            model_cfg.leaves,
            masking,
            cfg.seed,
        )
        for split in ("train", "dev")
    )
    if len(train_ds) == 0:
        raise GraphmerError(f"{paths.samples / 'train.parquet'} has no windows")
    net = Pretrainer(model_cfg).to(device)
    seed_process(cfg.seed, d)
    if cfg.compile:
        for block in net.model.blocks:  # in place: parameter names, and so checkpoints, stay as they are
            block.compile(dynamic=True)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    amp = autocast_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    fp = fingerprint(model_cfg, cfg, masking, paths, d.world)
    ckpt_dir = paths.checkpoints / fp  # one folder per trajectory: other configs' checkpoints stay intact
    paths.checkpoints.mkdir(parents=True, exist_ok=True)  # a DVC output even before the first checkpoint
    if d.main:  # what a killed run was writing (a half checkpoint is as large as a whole one)
        for folder in (paths.out, ckpt_dir):
            atomic.remove_stale(folder)
    start = 0
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    if resume and (state := find_checkpoint(ckpt_dir, fp, print if d.main else lambda _: None, shapes)):
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][d.rank], device)
        start = int(state["step"])
        if d.main:
            print(f"train: resuming from step {start}")
    # Relations absent from a micro-batch leave their H-GAT and regularizer weights unused.
    ddp = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True) if d.world > 1 else net
    if d.main and start == 0 and resume:
        others = [p.parent.name for p in paths.checkpoints.glob("*/step-*.pt") if p.parent.name != fp]
        if others:
            print(
                f"train: no checkpoint of this config and data ({fp}); starting fresh "
                f"({len(set(others))} other run(s) kept in {paths.checkpoints})"
            )
    live = _live(paths, resume=start > 0) if d.main else None
    metrics: dict = {}
    bar = progress_bar(
        range(start, cfg.steps),
        initial=start,
        total=cfg.steps,
        desc="train",
        unit="step",
        disable=not (progress and d.main),
    )
    loader = batch_loader(
        train_ds,
        micro_batch_indices(start, cfg.steps, cfg.grad_accum, d.world, d.rank),
        cfg.micro_batch,
        cfg.seed,
        cfg.anchored_only,
        cfg.loader_workers,
        pin=device.type == "cuda",
    )
    batches = iter(loader)
    for step in bar:
        t0 = time.perf_counter()
        stats = _step(ddp, opt, scaler, batches, cfg, step, d, device, amp)
        stats["tokens_per_s"] = stats.pop("tokens") / (time.perf_counter() - t0)
        stats["peak_memory_mb"] = _peak_memory_mb(device)
        metrics = {"step": step + 1, **stats}
        if cfg.monitor_system and d.main:
            metrics |= system_metrics(device)
        if d.main and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            metrics |= evaluate_batches(net, val_ds, cfg, device, amp)
        if live is not None and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps):
            for k, v in metrics.items():
                if k != "step":
                    live.log_metric(k if "/" in k else f"train/{k}", v)
            live.next_step()
        if d.main:
            bar.set_postfix(loss=f"{stats['loss']:.3f}", mlm=f"{stats['mlm_acc']:.2f}", refresh=False)
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            rngs = gather_rng(device, d)  # every rank takes part; rank 0 writes
            if d.main:
                save_checkpoint(
                    ckpt_dir,
                    step + 1,
                    {
                        "model": net.state_dict(),
                        "optim": opt.state_dict(),
                        "scaler": scaler.state_dict(),
                        "rng": rngs,
                        "step": step + 1,
                        "fingerprint": fp,
                    },
                    cfg.keep_checkpoints,
                )
        if stop_after is not None and step + 1 >= stop_after:
            break
    else:
        if d.main:
            _write_outputs(net.model, metrics, paths)
    del batches  # stops the loader's workers
    if live is not None:
        live.end()
    if d.world > 1:
        dist.destroy_process_group()
    return metrics


def _step(ddp, opt, scaler, batches, cfg: TrainConfig, step: int, d: Dist, device, amp) -> dict:
    for group in opt.param_groups:
        group["lr"] = lr_at(step, cfg)
    mu = mu_at(step, cfg)
    totals = {"loss": 0.0, "mlm_loss": 0.0, "mnm_loss": 0.0, "constraint_loss": 0.0}
    counts = torch.zeros(4, dtype=torch.float64)
    tokens = 0
    ddp.train()
    for a in range(cfg.grad_accum):
        batch = {n: t.to(device, non_blocking=True) for n, t in next(batches).items()}
        tokens += int(batch["attention_mask"].sum())
        sync = a == cfg.grad_accum - 1 or d.world == 1
        with contextlib.nullcontext() if sync else ddp.no_sync(), _autocast(device, amp):
            out = ddp(batch)
            loss = out["mlm_loss"] + mu * out["mnm_loss"] + cfg.constraint_weight * out["constraint_loss"]
        scaler.scale(loss / cfg.grad_accum).backward()
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
    scaler.unscale_(opt)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(ddp.parameters(), cfg.grad_clip))
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)
    accuracy = {
        "mlm_acc": float(counts[0] / max(counts[1], 1)),
        "mnm_acc": float(counts[2] / max(counts[3], 1)),
    }
    return (
        totals
        | accuracy
        | {"lr": lr_at(step, cfg), "mu": mu, "grad_norm": grad_norm, "tokens": tokens * d.world}
    )


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


def _live(paths: Paths, resume: bool):
    from dvclive import Live

    return Live(dir=str(paths.live), resume=resume, dvcyaml=None, save_dvc_exp=False)


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


def _write_outputs(model: GraphMERT, metrics: dict, paths: Paths) -> None:
    model._save_pretrained(paths.out)  # config.json + model.safetensors; the model card is a later stage's
    atomic.write_json(paths.metrics, {k.replace("/", "_"): v for k, v in metrics.items()})
