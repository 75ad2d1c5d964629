"""The model card: every number from the typed params and the run's metrics."""

import pytest

from graphmer.card import model_card
from graphmer.config import DistillConfig, EvaluateConfig, TrainConfig

MODEL = {"layers": 2, "hidden": 32, "heads": 2, "ffn": 64, "vocab_size": 320, "roots": 16, "leaves": 3}
ROW = {
    "model": {"triples": 4, "mrr": 0.5, "hits1": 0.25, "hits10": 1.0},
    "copy": {"mrr": 0.4},
    "gain": {"model_vs_copy": {"mrr_diff": 0.1, "ci95_low": -0.05, "ci95_high": 0.2}},
}
METRICS = {
    "corpus": {"files": 3, "bytes": 2e6, "sources": {"p": {"files": 3}}},
    "kg": {"entities": 10, "triples": 20, "triples_by_relation": {"calls": {}}},
    "split": {"by": "file", "files": {"train": 2, "test": 1}},
    "train": {"loss": 1.0},
    "eval": {
        "tail_prediction": {
            "strongest_baseline": "copy",
            "overall": ROW,
            "copyable": ROW,
            "non_copyable": ROW,
        },
        "masked": {"mlm": {"acc": 0.5}, "mnm": {"overall": {"exact_match": 0.25}}},
    },
    "distill": {
        "test": {
            "thresholds": {"0.5": {"precision": 0.6, "coverage": 0.9}, "0.8": {"precision": 0.75}},
            "ece": 0.1,
            "rules": {"thresholds": {"0.5": {"precision": 0.55, "coverage": 0.8}}},
        },
        "distilled": {"added": {"has_type": {}}},
        "scorer": {"chosen": "model"},
    },
}


def params(**distill) -> dict:
    train = TrainConfig(steps=7, micro_batch=3, grad_accum=2, lr=0.002, seed=5)
    return {"train": train, "evaluate": EvaluateConfig(split="dev"), "distill": DistillConfig(**distill)}


def test_the_card_reads_the_typed_params():
    card = model_card(params(), MODEL, METRICS)
    assert (
        "- 7 optimizer steps, effective batch 6 windows per process, peak learning rate 0.002, seed 5, "
        in card
    )
    assert "## Evaluation (dev files, never trained on)" in card
    assert "| overall (4) | 0.500 | 0.250 | 1.000 | 0.400 | +0.100 [-0.050, +0.200] |" in card


@pytest.mark.parametrize(
    ("thresholds", "reported"),
    [
        ([0.5, 0.8], "precision 0.750 at probability >= 0.8 (coverage –)"),
        ([0.5], "precision 0.600 at probability >= 0.5 (coverage 0.900)"),
    ],
)
def test_the_distilled_graph_is_reported_at_the_highest_threshold(thresholds, reported):
    assert reported in model_card(params(thresholds=thresholds), MODEL, METRICS)


def test_the_card_gives_the_rules_alone_beside_the_distilled_graph():
    card = model_card(params(thresholds=[0.5]), MODEL, METRICS)
    assert (
        "error 0.100. The cheap rules alone, fitted and calibrated the same way: precision 0.550 "
        "(coverage 0.800)." in card
    )
    # a threshold the rules' figures lack: no sentence about them
    assert "rules alone" not in model_card(params(thresholds=[0.5, 0.8]), MODEL, METRICS)
