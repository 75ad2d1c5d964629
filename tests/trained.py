"""A tiny corpus with a tiny trained model: what evaluation and `graphmer predict` read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from graphmer.config import EvaluateConfig, PathsConfig, TrainConfig
from graphmer.train import train
from tests.tiny import SAMPLES, build_tiny, tiny_config

EVAL = EvaluateConfig(seed=0, windows=0, triples_per_relation=0, batch_size=8, code_only=True)


def build_trained(root: Path, steps: int = 4) -> dict:
    """`build_tiny` with a model trained on it, all in the pipeline's places inside `root`."""
    tiny = build_tiny(root)
    cfg = TrainConfig(
        steps=steps,
        micro_batch=4,
        grad_accum=1,
        warmup_steps=1,
        mnm_ramp_steps=1,
        eval_every=steps,
        eval_batches=1,
        monitor_system=False,
    )
    train(tiny_config(tiny["vocab_size"]), cfg, SAMPLES, tiny["paths"], progress=False)
    return tiny


def eval_paths(root: Path, out: Path) -> PathsConfig:
    """The trained corpus in `root`, the metrics written to `out`."""
    return replace(PathsConfig().under(root), metrics=out)
