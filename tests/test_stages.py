"""Every stage script explains itself on --help and refuses arguments (stages read params.yaml)."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

STAGES = sorted(p.stem for p in (ROOT / "stages").glob("*.py"))


@pytest.mark.parametrize("stage", STAGES)
def test_stage_help_and_arguments(stage):
    script = str(ROOT / "stages" / f"{stage}.py")
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert helped.returncode == 0 and f"dvc repro {stage}" in helped.stdout
    refused = subprocess.run([sys.executable, script, "--bogus"], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and "stages read params.yaml" in refused.stderr
    assert refused.stderr.count("\n") == 1  # one line


def test_dvc_yaml_names_every_stage_script():
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert sorted(stages) == STAGES
    for name, stage in stages.items():
        assert stage["cmd"] == f"python stages/{name}.py" and f"stages/{name}.py" in stage["deps"]
