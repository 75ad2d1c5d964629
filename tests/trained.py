"""A tiny corpus with a tiny trained model: what evaluation and `graphmer predict` read."""

from __future__ import annotations

from pathlib import Path

from graphmer.config import EvaluateConfig, SamplesConfig, TrainConfig
from graphmer.evaluate import EvalPaths
from graphmer.train import Paths, train
from tests.tiny import L, R, build_tiny, tiny_config

SAMPLES = SamplesConfig(roots=R, leaves=L, stride=R)
EVAL = EvaluateConfig(seed=0, windows=0, triples_per_relation=0, batch_size=8, code_only=True)


def build_trained(root: Path, steps: int = 4) -> dict:
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
    out = root / "models"
    train(
        tiny_config(tiny["vocab_size"]),
        cfg,
        SAMPLES,
        Paths(
            samples=root / "samples",
            tokenizer=root / "tokenizer.json",
            out=out,
            metrics=out / "train.json",
            live=out / "dvclive",
            checkpoints=root / "checkpoints",
        ),
        progress=False,
    )
    return tiny


def eval_paths(root: Path, out: Path) -> EvalPaths:
    return EvalPaths(
        samples=root / "samples",
        kg=root / "kg",
        split=root / "split.parquet",
        model=root / "models",
        tokenizer=root / "tokenizer.json",
        metrics=out / "eval.json",
        table=out / "eval_relations",
        plot=out / "eval_hits10",
    )
