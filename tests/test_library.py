"""The model as a library: save_pretrained / from_pretrained (Hugging Face layout), strictly checked."""

import json

import pytest
import torch

from graphmer import GraphmerError, GraphMERT
from graphmer.model import CONFIG_FILE, WEIGHTS_FILE
from tests.tiny import tiny_config


def _model(seed: int = 0, **overrides) -> GraphMERT:
    torch.manual_seed(seed)
    return GraphMERT(tiny_config(300, **overrides))


def _inputs(cfg) -> tuple[torch.Tensor, ...]:
    B, N = 2, cfg.roots
    ids = torch.randint(5, cfg.vocab_size, (B, N))
    return (
        ids,
        torch.ones(B, N, dtype=torch.bool),
        torch.arange(N).expand(B, N),
        torch.zeros(B, N, dtype=torch.long),
        torch.full((B, N), -1),
        torch.arange(1, N + 1).expand(B, N),
    )


def test_save_then_load_gives_the_same_model(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path)
    assert {CONFIG_FILE, WEIGHTS_FILE, "README.md"} <= {p.name for p in tmp_path.iterdir()}
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["architecture"] == "GraphMERT"
    loaded = GraphMERT.from_pretrained(tmp_path)
    assert loaded.cfg == model.cfg and not loaded.training
    x = _inputs(model.cfg)
    with torch.no_grad():
        assert torch.equal(model.eval()(*x), loaded(*x))
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_weights_of_another_shape_are_refused_before_loading(tmp_path):
    _model().save_pretrained(tmp_path / "a")
    _model(hidden=64).save_pretrained(tmp_path / "b")
    (tmp_path / "b" / CONFIG_FILE).write_bytes((tmp_path / "a" / CONFIG_FILE).read_bytes())
    with pytest.raises(GraphmerError, match=r"model.safetensors does not match .*config.json: "):
        GraphMERT.from_pretrained(tmp_path / "b")


def test_a_folder_without_weights_or_an_unknown_id_is_one_line(tmp_path):
    _model().save_pretrained(tmp_path)
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(GraphmerError, match="model.safetensors not found: train a model first"):
        GraphMERT.from_pretrained(tmp_path)
    with pytest.raises(GraphmerError, match="not a model folder, and not on the Hub") as err:
        GraphMERT.from_pretrained("nobody/no-such-graphmert", local_files_only=True)
    assert "\n" not in str(err.value)


def test_a_config_that_is_not_ours_is_refused(tmp_path):
    _model().save_pretrained(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))
    with pytest.raises(GraphmerError, match="is not a GraphMERT config"):
        GraphMERT.from_pretrained(tmp_path)


@pytest.mark.parametrize("where", ["models", "./models", "no/such/folder"])
def test_a_missing_local_folder_is_said_at_once_not_looked_up_on_the_hub(tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GraphmerError, match="not found: train a model first"):
        GraphMERT.from_pretrained(where)


def test_encode_reads_code_alone_as_the_tokenizer_gives_it(tmp_path):
    model = _model().eval()
    ids = torch.randint(5, 300, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad():
        hidden = model.encode(input_ids=ids, attention_mask=mask)
        alone = model.encode(ids[1:, :5])  # the padded row, without its padding
    assert hidden.shape == (2, 7, model.cfg.hidden)
    assert torch.allclose(hidden[1, :5], alone[0], atol=1e-5)
    with pytest.raises(GraphmerError, match="reads at most"):
        model.encode(torch.zeros(1, model.cfg.roots + 1, dtype=torch.long))
