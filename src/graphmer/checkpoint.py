"""A model or a run on disk: the trained model a user downloads, and a training run's checkpoints.

- A trained model is a folder (`PathsConfig.models`): config.json + model.safetensors in Hugging
  Face's layout (`GraphMERT._save_pretrained`, `GraphMERT.from_pretrained`), beside the tokenizer
  it was trained with. `save_model` writes one; `load_model` reads one with its tokenizer and
  refuses a pair that belongs to different runs.
- A training checkpoint is `PathsConfig.checkpoints/<fingerprint>/step-XXXXXXXX.pt`: weights,
  optimizer and scaler states, every rank's random streams, the step and the fingerprint
  (`training_state`), written atomically, the newest few kept. The fingerprint names one
  trajectory (config, data, training code), so a run resumes only from its own checkpoints
  (`find_checkpoint`, `restore`) and other configs' stay intact beside them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from graphmer import GraphmerError, atomic
from graphmer.config import ModelConfig, PathsConfig, SamplesConfig, TrainConfig
from graphmer.model import CONFIG_FILE, WEIGHTS_FILE, GraphMERT, read_model_config, shape_mismatch
from graphmer.samples import CANDIDATES_TABLE, TAILS_TABLE, windows_table
from graphmer.tokenizer import load as load_tokenizer

# --------------------------------------------------------------------------- a trained model


def save_model(model: GraphMERT, folder: Path) -> None:
    """config.json + model.safetensors, each written whole or not at all; the tokenizer is the
    tokenizer stage's and the model card a later stage's."""
    model._save_pretrained(folder)


def load_model(model_dir: str | Path, tokenizer_path: str | Path) -> tuple[GraphMERT, object]:
    """The trained encoder (eval mode, `GraphMERT.from_pretrained`) and its tokenizer, which must
    be the one it was trained with; each mismatch is a one-line error."""
    model_dir, tokenizer_path = Path(model_dir), Path(tokenizer_path)
    for path in (model_dir / CONFIG_FILE, model_dir / WEIGHTS_FILE, tokenizer_path):
        if not path.is_file():
            raise GraphmerError(f"{path} not found: train a model first (`dvc repro train`)")
    vocab_size = read_model_config(model_dir / CONFIG_FILE).vocab_size
    tok = load_tokenizer(tokenizer_path)
    if tok.get_vocab_size() != vocab_size:  # said first: weights that fit no tokenizer are the lesser news
        raise GraphmerError(
            f"tokenizer {tokenizer_path} has {tok.get_vocab_size()} tokens but the model was trained "
            f"with {vocab_size}: they belong to different runs"
        )
    return GraphMERT.from_pretrained(model_dir), tok


# --------------------------------------------------------------------------- training checkpoints

# The code whose change makes a checkpoint another trajectory's: the model, the training loop,
# the loader that builds its batches and this module (what a checkpoint holds and restores).
TRAINING_CODE = ("model.py", "train.py", "loader.py", "checkpoint.py")


def fingerprint(
    model_cfg: ModelConfig, cfg: TrainConfig, samples: SamplesConfig, paths: PathsConfig, world: int
) -> str:
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
                asdict(samples),
                world,
            ],
            sort_keys=True,
        ).encode()
    )
    code = [Path(__file__).with_name(m) for m in TRAINING_CODE]
    windows = paths.samples / windows_table("train")
    tables = (windows, paths.samples / TAILS_TABLE, paths.samples / CANDIDATES_TABLE)  # the memory's names
    for f in (*tables, paths.tokenizer, *code):
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:08d}.pt"


def training_state(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rngs: list[dict],
    step: int,
    fp: str,
) -> dict:
    """What a checkpoint holds after `step`: `rngs` is every rank's `rng_state`, rank by rank."""
    return {
        "model": net.state_dict(),
        "optim": opt.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rngs,
        "step": step,
        "fingerprint": fp,
    }


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


def restore(
    state: dict,
    net: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rank: int,
    device: torch.device,
) -> int:
    """Load a `training_state` into the run (rank `rank`'s random streams); the step it was taken after."""
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optim"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"][rank], device)
    return int(state["step"])


def rng_state(device: torch.device) -> dict:
    """This process's random streams: the CPU generator, and the CUDA one of `device`."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
