"""Training: schedules, resume equals an unbroken run, DDP equals one process, safe checkpoints."""

import os
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from graphmer.checkpoint import find_checkpoint
from graphmer.config import PathsConfig, SamplesConfig, TrainConfig
from graphmer.loader import micro_batch_indices
from graphmer.train import Dist, lr_at, mu_at, seed_process, setup_training, train
from tests.tiny import L, R, tiny_config

CFG = TrainConfig(
    steps=4,
    micro_batch=2,
    grad_accum=2,
    lr=3e-3,
    warmup_steps=1,
    mnm_ramp_steps=2,
    checkpoint_every=2,
    keep_checkpoints=2,
    eval_every=2,
    eval_batches=1,
    monitor_system=False,
    seed=0,
)
SAMPLES = SamplesConfig(roots=R, leaves=L, stride=R)


def paths(tiny, out: Path) -> PathsConfig:
    """The tiny corpus's samples; the model (beside a copy of its tokenizer), its checkpoints,
    curves and metrics in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny["paths"].tokenizer, out / "tokenizer.json")
    return replace(
        tiny["paths"], models=out, metrics=out, dvclive=out / "dvclive", checkpoints=out / "checkpoints"
    )


def weights(out: Path) -> dict:
    return load_file(str(out / "model.safetensors"))


def test_schedules():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1, mnm_weight=2.0, mnm_ramp_steps=20)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0) and lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(55, cfg) == pytest.approx(0.55)
    assert mu_at(5, cfg) == 0.0 and mu_at(20, cfg) == pytest.approx(1.0) and mu_at(30, cfg) == 2.0


def test_training_writes_weights_config_metrics_and_curves(tiny, tmp_path):
    m = train(tiny_config(tiny["vocab_size"]), CFG, SAMPLES, paths(tiny, tmp_path), progress=False)
    assert m["step"] == 4 and "dev/mlm_acc" in m
    assert {"model.safetensors", "config.json", "train.json"} <= {p.name for p in tmp_path.iterdir()}
    assert (tmp_path / "dvclive/plots/metrics/train/loss.tsv").read_text().count(
        "\n"
    ) == 5  # header + 4 steps


def test_resume_after_a_kill_matches_an_unbroken_run(tiny, tmp_path):
    cfg = tiny_config(tiny["vocab_size"])
    train(cfg, CFG, SAMPLES, paths(tiny, tmp_path / "straight"), progress=False)
    broken = paths(tiny, tmp_path / "broken")
    train(cfg, CFG, SAMPLES, broken, progress=False, stop_after=3)  # killed after step 3
    assert not (broken.models / "model.safetensors").exists()
    assert [p.name for p in broken.checkpoints.glob("*/*.pt")] == ["step-00000002.pt"]
    train(cfg, CFG, SAMPLES, broken, progress=False)
    a, b = weights(tmp_path / "straight"), weights(broken.models)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    # the curves: each step once, under its own number (the killed run logged step 2 too)
    for name in ("train/loss.tsv", "train/lr.tsv"):
        straight, resumed = (
            [r.split("\t") for r in (p / "dvclive/plots/metrics" / name).read_text().splitlines()[1:]]
            for p in (tmp_path / "straight", broken.models)
        )
        assert [int(s) for s, _ in resumed] == [0, 1, 2, 3]
        assert np.allclose([float(v) for _, v in resumed], [float(v) for _, v in straight], atol=1e-5)


def test_loader_workers_and_a_resume_change_nothing(tiny, tmp_path):
    """Batches built by two worker processes, a kill after step 3 and a resume from the step-2
    checkpoint give the weights of an unbroken inline run; dropout is on, so the restored random
    stream matters, and the workers must not draw from it."""
    cfg = tiny_config(tiny["vocab_size"], dropout=0.1)
    train(cfg, CFG, SAMPLES, paths(tiny, tmp_path / "inline"), progress=False)
    workers = replace(CFG, loader_workers=2)
    broken = paths(tiny, tmp_path / "workers")
    train(cfg, workers, SAMPLES, broken, progress=False, stop_after=3)
    train(cfg, workers, SAMPLES, broken, progress=False)
    a, b = weights(tmp_path / "inline"), weights(broken.models)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and dropout's draws are in play: the same run without dropout ends elsewhere, so a
    # resume that restored another random state would not give the inline run's weights
    no_dropout = tiny_config(tiny["vocab_size"], dropout=0.0)
    train(no_dropout, CFG, SAMPLES, paths(tiny, tmp_path / "no_dropout"), progress=False)
    assert not torch.equal(a["tok.weight"], weights(tmp_path / "no_dropout")["tok.weight"])


def test_the_optimizer_and_the_regularizer_read_the_train_config(tiny, tmp_path):
    """AdamW's betas are train.adam_betas, the InfoNCE temperature train.constraint_temperature."""
    cfg = replace(CFG, adam_betas=[0.8, 0.95], constraint_temperature=0.5)
    run = setup_training(tiny_config(tiny["vocab_size"]), cfg, SAMPLES, paths(tiny, tmp_path))
    try:
        assert run.opt.param_groups[0]["betas"] == (0.8, 0.95)
        assert run.net.temperature == 0.5 and run.start == 0
    finally:
        run.close()


def test_micro_batch_indices_split_a_step_across_ranks():
    one = micro_batch_indices(1, 3, grad_accum=4, world=1, rank=0)
    two = [micro_batch_indices(1, 3, grad_accum=2, world=2, rank=r) for r in (0, 1)]
    assert one == list(range(4, 12))
    assert sorted(two[0] + two[1]) == one and two[1] == [5, 7, 9, 11]


def test_each_rank_draws_its_own_dropout_masks():
    def masks(rank: int) -> torch.Tensor:
        torch.manual_seed(0)
        seed_process(0, Dist(rank=rank, world=2))
        return torch.rand(8)

    assert torch.equal(masks(0), masks(0))
    assert not torch.equal(masks(0), masks(1))
    torch.manual_seed(0)
    assert torch.equal(torch.rand(8), masks(0))  # rank 0 keeps the seed's own stream


def test_compiled_blocks_train_like_eager_ones(tiny, tmp_path):
    cfg = tiny_config(tiny["vocab_size"])
    short = replace(CFG, steps=2, eval_every=2)
    eager = train(cfg, short, SAMPLES, paths(tiny, tmp_path / "eager"), progress=False)
    compiled = train(cfg, replace(short, compile=True), SAMPLES, paths(tiny, tmp_path / "c"), progress=False)
    assert compiled["loss"] == pytest.approx(eager["loss"], rel=1e-4)
    a, b = weights(tmp_path / "eager"), weights(tmp_path / "c")
    assert a.keys() == b.keys()  # compiled in place: the same parameter names
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4), k


def test_corrupt_or_foreign_checkpoints_are_refused_and_kept(tiny, tmp_path, capsys):
    cfg = tiny_config(tiny["vocab_size"])
    p = paths(tiny, tmp_path)
    train(cfg, CFG, SAMPLES, p, progress=False, stop_after=2)
    (good,) = p.checkpoints.glob("*/step-00000002.pt")
    good_bytes = good.read_bytes()
    fp = good.parent.name
    (good.parent / "step-00000003.pt").write_bytes(b"not a checkpoint")  # a newer, truncated one
    foreign = torch.load(good, weights_only=True) | {"fingerprint": "0" * 16}
    torch.save(foreign, good.parent / "step-00000004.pt")
    misfit = torch.load(good, weights_only=True)  # the right fingerprint, a tensor of the wrong shape
    name = next(iter(misfit["model"]))
    misfit["model"][name] = torch.zeros(3, 5)
    torch.save(misfit, good.parent / "step-00000005.pt")
    shapes = {k: v.shape for k, v in torch.load(good, weights_only=True)["model"].items()}
    state = find_checkpoint(good.parent, fp, shapes=shapes)
    out = capsys.readouterr().out
    assert "step-00000004.pt is from another config" in out and "step-00000003.pt is unreadable" in out
    assert f"step-00000005.pt does not fit the model ({name} is (3, 5)" in out
    assert state is not None and state["step"] == 2
    # Another config trains from scratch beside it and leaves the first run's checkpoint alone.
    train(cfg, replace(CFG, lr=1e-3), SAMPLES, p, progress=False, stop_after=2)
    assert "starting fresh" in capsys.readouterr().out
    assert good.read_bytes() == good_bytes
    assert len({q.parent.name for q in p.checkpoints.glob("*/*.pt")}) == 2


def _ddp_worker(rank: int, world: int, port: int, tiny: dict, paths: PathsConfig) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    cfg = replace(CFG, grad_accum=1, steps=3)
    train(tiny_config(tiny["vocab_size"]), cfg, SAMPLES, paths, progress=False)


def test_two_process_ddp_equals_one_process_with_the_same_global_batch(tiny, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, tiny, paths(tiny, tmp_path / "ddp")), nprocs=2, join=True)
    train(
        tiny_config(tiny["vocab_size"]),
        replace(CFG, grad_accum=2, steps=3),
        SAMPLES,
        paths(tiny, tmp_path / "single"),
        progress=False,
    )
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-only path: fp16 with GradScaler")
def test_fp16_on_cuda(tiny, tmp_path):
    m = train(
        tiny_config(tiny["vocab_size"]),
        replace(CFG, precision="fp16"),
        SAMPLES,
        paths(tiny, tmp_path),
        progress=False,
    )
    assert m["loss"] == m["loss"]  # not NaN


def test_system_metrics_report_cpu_and_ram():
    from graphmer.train import system_metrics

    m = system_metrics(torch.device("cpu"))
    assert {"system/cpu_percent", "system/ram_used_gb", "system/ram_percent"} <= set(m)
    assert m["system/ram_used_gb"] > 0


def test_a_model_with_the_tail_memory_trains_resumes_and_loads_with_the_training_graphs_names(tiny, tmp_path):
    from graphmer.model import GraphMERT
    from graphmer.train import tail_names

    cfg = tiny_config(tiny["vocab_size"], memory=True)
    train(cfg, CFG, SAMPLES, paths(tiny, tmp_path / "straight"), progress=False)
    broken = paths(tiny, tmp_path / "broken")
    train(cfg, CFG, SAMPLES, broken, progress=False, stop_after=3)
    train(cfg, CFG, SAMPLES, broken, progress=False)  # resumed at step 2
    a, b = weights(tmp_path / "straight"), weights(broken.models)
    assert "memory.bias" in a and a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    names, counts = tail_names(tiny["paths"].samples, L)
    model = GraphMERT.from_pretrained(tmp_path / "straight")
    assert model.cfg.memory_size == len(names) > 0
    assert model.memory.rows() == {n: i for i, n in enumerate(names)}
    assert torch.equal(model.memory.member, counts > 0)
    start = GraphMERT(model.cfg)
    start.memory.fill(names, counts)
    moved = (model.memory.bias - start.memory.bias).abs()
    assert start.memory.bias.max() > 1 and 0 < moved.max() < 0.1  # 4 small steps from its prior
