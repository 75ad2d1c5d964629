"""The real DVC pipeline (`dvc repro`) on a tiny local corpus, in a throwaway git repo."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from tokenizers import Tokenizer

from tests.conftest import ROOT, git

pytestmark = pytest.mark.slow  # `make test-fast` leaves these out; `make test` runs them

STAGES = ["fetch", "extract", "split", "tokenizer", "samples", "train", "evaluate", "distill", "card"]


def dvc(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("e2e")
    corpus = tmp / "corpus"
    (corpus / "pkg").mkdir(parents=True)
    (corpus / "pkg/__init__.py").write_text("")
    (corpus / "pkg/core.py").write_text("class Base:\n    def run(self):\n        pass\n")
    (corpus / "pkg/app.py").write_text(
        "from pkg.core import Base\n\nclass App(Base):\n    def run(self):\n        super().run()\n"
    )
    (corpus / "web").mkdir()
    (corpus / "web/a.js").write_text("function a() { b(); }\nfunction b() {}\n")
    (corpus / "src/org/x").mkdir(parents=True)
    (corpus / "src/org/x/A.java").write_text("package org.x;\nclass A { void f() { new A(); } }\n")
    # two more projects, held out whole (split.by: source): one for dev, one for test
    for name, cls in (("devproj", "Tool"), ("testproj", "Widget")):
        (tmp / name).mkdir()
        (tmp / name / "mod.py").write_text(
            f"from pkg.core import Base\n\nclass {cls}(Base):\n    def run(self, x: int) -> int:\n"
            f"        raise ValueError(x)\n"
        )

    proj = tmp / "proj"
    proj.mkdir()
    for name in ("dvc.yaml", "stages", "src"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, proj / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["corpus"]["sources"] = [
        {"name": "tiny", "kind": "local", "path": str(corpus)},
        {"name": "devproj", "kind": "local", "path": str(tmp / "devproj")},
        {"name": "testproj", "kind": "local", "path": str(tmp / "testproj")},
    ]
    params["split"].update(by="source", dev_sources=["devproj"], test_sources=["testproj"])
    params["extract"]["workers"] = 1
    params["tokenizer"]["vocab_size"] = 300
    params["samples"].update(roots=16, stride=16, leaves=3)
    params["model"].update(layers=1, hidden=32, heads=2, ffn=64)
    params["train"].update(
        steps=2,
        micro_batch=2,
        grad_accum=1,
        warmup_steps=1,
        mnm_ramp_steps=1,
        eval_every=1,
        eval_batches=1,
        checkpoint_every=1,
        monitor_system=False,
    )
    params["evaluate"].update(windows=0, triples_per_relation=0, batch_size=4)
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    git(proj, "init", "-q")
    git(proj, "config", "user.name", "t")
    git(proj, "config", "user.email", "t@example.com")
    dvc(proj, "init", "-q")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "pipeline")  # DVCLive reads the git revision
    return proj


def test_repro_runs_every_stage_then_is_up_to_date(project):
    out = dvc(project, "repro")
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out
    corpus = json.loads((project / "metrics/corpus.json").read_text())
    assert corpus["by_language"]["python"]["files"] == 4  # __init__.py is empty: skipped
    kg = json.loads((project / "metrics/kg.json").read_text())
    assert kg["triples_by_relation"]["overrides"]["python"] == 3  # App, Tool, Widget: run
    triples = pd.read_parquet(project / "data/kg/triples.parquet")
    assert ("py:pkg.app.App.run", 6, "py:pkg.core.Base.run") in set(
        zip(triples["head"], triples["relation"], triples["tail"])
    )
    samples = json.loads((project / "metrics/samples.json").read_text())
    assert min(samples[s]["windows"] for s in ("train", "dev", "test")) > 0
    for split, source in (("dev", "devproj"), ("test", "testproj")):
        files = set(pd.read_parquet(project / f"data/samples/{split}.parquet")["file"])
        assert files == {f"{source}/mod.py"}
    assert json.loads((project / "metrics/tokenizer.json").read_text())["vocab_size"] <= 300
    assert json.loads((project / "metrics/train.json").read_text())["step"] == 2
    assert (project / "models/model.safetensors").exists()
    assert (project / "dvclive/plots/metrics/train/loss.tsv").exists()
    evaluation = json.loads((project / "metrics/eval.json").read_text())
    assert evaluation["leakage"] == {"train_files": 4, "test_files": 1, "shared_content": 0}
    tp = evaluation["tail_prediction"]
    # no code_only: off by default
    systems = {"model", "frequency", "copy", "name_lookup", "copy_name", "rule_by_relation"}
    assert set(tp["overall"]) == systems | {"gain"}
    assert tp["per_relation"]["inherits"]["evaluated"] == 1  # Widget -> Base, from the test project
    distilled = json.loads((project / "metrics/distill.json").read_text())
    # Widget.run's `x: int`, its annotation hidden (run raises: `-> int` is a stub's, not asked)
    assert distilled["test"]["questions"] == 1
    assert distilled["skipped_hidden_facts"]["test"] == {"returns_no_value": 1}
    assert pd.read_parquet(project / "data/distilled.parquet")["file"].eq("testproj/mod.py").all()
    shown = json.loads(dvc(project, "metrics", "show", "--json"))
    assert "metrics/eval.json" in json.dumps(shown) and "metrics/distill.json" in json.dumps(shown)
    assert "metrics/distill_reliability.csv" in dvc(project, "plots", "show", "--json")
    assert "up to date" in dvc(project, "repro")
    assert "up to date" in dvc(project, "status")


def test_the_trained_model_is_a_library_and_a_registry_artifact(project, tmp_path):
    """What a user does with models/ after `dvc repro`: load it the Hugging Face way, read its
    card, and fetch it by name from the model registry."""
    from transformers import AutoTokenizer

    from graphmer import GraphMERT

    dvc(project, "repro")
    model = GraphMERT.from_pretrained(project / "models")
    assert model.cfg.layers == 1 and not model.training
    tok = AutoTokenizer.from_pretrained(project / "models")
    ours = Tokenizer.from_file(str(project / "models/tokenizer.json"))
    text = "class App(Base):\n    def run(self): pass\n"
    assert tok(text, add_special_tokens=False)["input_ids"] == ours.encode(text).ids
    assert tok.mask_token_id == 4 and tok.pad_token_id == 0
    with torch.no_grad():
        hidden = model.encode(**tok(text, return_tensors="pt", truncation=True, max_length=model.cfg.roots))
    assert hidden.shape == (1, model.cfg.roots, model.cfg.hidden)  # the text is longer than 16 roots
    card = (project / "models/README.md").read_text()
    overall = json.loads((project / "metrics/eval.json").read_text())["tail_prediction"]["overall"]
    mrr = overall["model"]["mrr"]
    assert card.startswith("---\nlibrary_name: graphmer") and f"| {mrr:.3f} |" in card
    git(project, "add", "-A")
    git(project, "commit", "-qm", "trained")
    # a registered version is a GTO tag (what `gto register graphmer-se` writes)
    git(project, "tag", "-a", "graphmer-se@v0.0.1", "-m", "Registering artifact graphmer-se version v0.0.1")
    dvc(project, "artifacts", "get", str(project), "graphmer-se", "-o", str(tmp_path / "got"))
    got = GraphMERT.from_pretrained(tmp_path / "got")
    for (name, a), b in zip(model.state_dict().items(), got.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_param_change_reruns_only_what_depends_on_it(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["extract"]["chunk_files"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    out = dvc(project, "repro")
    assert "Running stage 'extract'" in out
    assert "Running stage 'fetch'" not in out


def test_a_masking_param_reruns_training_but_not_the_samples(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["samples"]["mask_rate"] = 0.2  # read at batch time by the loader, not by the samples stage
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    out = dvc(project, "repro")
    assert "Running stage 'train'" in out and "Running stage 'samples'" not in out


def test_dvc_exp_run_with_a_changed_step_count(project):
    git(project, "add", "-A")
    git(project, "commit", "-qm", "first run")
    out = dvc(project, "exp", "run", "-S", "train.steps=3")
    assert "Running stage 'train'" in out and "Running stage 'samples'" not in out
    assert json.loads((project / "metrics/train.json").read_text())["step"] == 3
    runs = revisions(json.loads(dvc(project, "exp", "show", "--json")))
    by_steps = {r["params"]["params.yaml"]["data"]["train"]["steps"]: r for r in runs}
    assert set(by_steps) == {2, 3}  # the committed run and the experiment, side by side
    assert by_steps[3]["metrics"]["metrics/train.json"]["data"]["step"] == 3
    assert by_steps[2]["metrics"]["metrics/train.json"]["data"]["step"] == 2


def revisions(shown) -> list[dict]:
    """Every revision's `data` (params and metrics) in `dvc exp show --json`, however nested."""
    if isinstance(shown, list):
        return [d for x in shown for d in revisions(x)]
    if not isinstance(shown, dict):
        return []
    here = [shown] if {"params", "metrics"} <= shown.keys() else []
    return here + [d for v in shown.values() for d in revisions(v)]
