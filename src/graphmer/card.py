"""The model card of a trained model (`models/README.md`): what it was trained on, with which
settings, and what the run measured, all read from the run's own params and metrics files, so
the card cannot disagree with them. Hugging Face reads its YAML header (library, license, tags)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graphmer import GraphmerError, atomic
from graphmer.config import PathsConfig, load_all
from graphmer.relations import RELATION_NAMES


def _read(path: Path) -> dict:
    if not path.is_file():
        raise GraphmerError(f"{path} not found: run the stage that writes it first")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise GraphmerError(f"{path} is not valid JSON ({err})") from err


def _f(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _gain(g: dict) -> str:
    return f"{g['mrr_diff']:+.3f} [{g['ci95_low']:+.3f}, {g['ci95_high']:+.3f}]"


def model_card(params: dict[str, Any], model: dict, metrics: dict[str, dict]) -> str:
    """Markdown with a YAML header. `params`: the typed sections of params.yaml (`load_all`);
    `model`: the saved config.json; `metrics`: corpus, kg, split, train, eval and distill
    (metrics/<name>.json)."""
    corpus, kg, split, train = (metrics[k] for k in ("corpus", "kg", "split", "train"))
    ev, distill = metrics["eval"], metrics["distill"]
    tp = ev["tail_prediction"]
    best = tp["strongest_baseline"]
    sources = ", ".join(f"{name} ({s['files']} files)" for name, s in sorted(corpus["sources"].items()))
    parameters = (
        f"{model['layers']} layers, hidden {model['hidden']}, {model['heads']} heads, FFN {model['ffn']}, "
        f"vocabulary {model['vocab_size']}, {model['roots']} roots x {model['leaves']} leaf slots"
    )
    parts = ", ".join(k for k in ("hgat", "decay_mask", "relation_bias", "copy", "memory") if model.get(k))
    tcfg = params["train"]
    lines = [
        "---",
        "library_name: graphmer",
        "license: apache-2.0",
        "pipeline_tag: feature-extraction",
        "tags: [code, knowledge-graph, graphmert, python, java, javascript]",
        "---",
        "",
        "# GraphMERT code encoder (GraphMER-SE)",
        "",
        "A relation-aware transformer encoder trained on source code together with the code's",
        "knowledge graph (GraphMERT leafy chains: code tokens as roots, graph tails as leaves), by",
        "the GraphMER-SE DVC pipeline. This card is generated from the run's params and metrics.",
        "",
        "```python",
        "from graphmer import GraphMERT",
        "from transformers import AutoTokenizer",
        "",
        'model = GraphMERT.from_pretrained("models")   # config.json + model.safetensors',
        'tokenizer = AutoTokenizer.from_pretrained("models")',
        "```",
        "",
        "`graphmer embed PATH --out vectors.parquet` gives one vector per entity definition;",
        "`graphmer predict` ranks the tails of a relation; `graphmer distill` fills graph gaps.",
        "",
        "## Model",
        "",
        f"- {parameters}; graph parts on: {parts or 'none'}",
        f"- {tcfg.steps} optimizer steps, effective batch {tcfg.micro_batch * tcfg.grad_accum} windows "
        f"per process, peak learning rate {tcfg.lr}, seed {tcfg.seed}, precision {tcfg.precision}",
        "",
        "## Data",
        "",
        f"- {corpus['files']} files ({corpus['bytes'] / 1e6:.1f} MB) of {len(corpus['sources'])} pinned "
        f"projects: {sources}",
        f"- knowledge graph: {kg['entities']} entities, {kg['triples']} triples of "
        f"{len(kg['triples_by_relation'])} relations (tree-sitter extraction)",
        f"- split by {split['by']}: " + ", ".join(f"{name} {n} files" for name, n in split["files"].items()),
        "",
        "## Training",
        "",
        f"- final loss {_f(train.get('loss'))} (MLM {_f(train.get('mlm_loss'))}, MNM "
        f"{_f(train.get('mnm_loss'))}); dev MLM accuracy {_f(train.get('dev_mlm_acc'))}, dev MNM "
        f"accuracy {_f(train.get('dev_mnm_acc'))}",
        "",
        f"## Evaluation ({params['evaluate'].split} files, never trained on)",
        "",
        "Tail completion: for a held-out (head, relation) the model ranks every tail the relation has",
        "in the graph; MRR beside the strongest cheap rule on the same questions, with the paired",
        "bootstrap 95% interval of the difference.",
        "",
        f"| questions | model MRR | Hits@1 | Hits@10 | {best} MRR | model - {best} |",
        "|---|---|---|---|---|---|",
    ]
    for part in ("overall", "copyable", "non_copyable"):
        row = tp[part]
        lines.append(
            f"| {part.replace('_', '-')} ({row['model']['triples']}) | {_f(row['model']['mrr'])} | "
            f"{_f(row['model']['hits1'])} | {_f(row['model']['hits10'])} | {_f(row[best]['mrr'])} | "
            f"{_gain(row['gain'][f'model_vs_{best}'])} |"
        )
    masked = ev["masked"]
    lines += [
        "",
        f"Masked accuracy on held-out windows: MLM {_f(masked['mlm'].get('acc'))}, whole-tail MNM "
        f"{_f(masked['mnm']['overall'].get('exact_match'))}.",
    ]
    test = distill.get("test")
    if test:
        top = f"{max(params['distill'].thresholds):g}"  # the key distill writes for a threshold
        at = test["thresholds"].get(top, {})
        lines += [
            "",
            "## Distilled graph",
            "",
            f"Predicted {' and '.join(distill['distilled']['added'])} triples with calibrated "
            f"probabilities (scorer `{distill['scorer']['chosen']}`): on held-out test "
            f"facts, precision {_f(at.get('precision'))} at probability >= {top} (coverage "
            f"{_f(at.get('coverage'))}), expected calibration error {_f(test.get('ece'))}.",
        ]
        rules = test.get("rules", {}).get("thresholds", {}).get(top)
        if rules:
            lines[-1] += (
                f" The cheap rules alone, fitted and calibrated the same way: precision "
                f"{_f(rules.get('precision'))} (coverage {_f(rules.get('coverage'))})."
            )
    lines += [
        "",
        "## Limitations",
        "",
        f"- A corpus of {len(corpus['sources'])} projects: other code's names are less well known.",
        "- Tails not written in the code around their head (non-copyable) are where cheap name",
        "  lookups still do as well or better; see the per-relation table of the run "
        "(`metrics/eval_relations.md`).",
        f"- Relations: {', '.join(RELATION_NAMES)}.",
        "",
    ]
    return "\n".join(lines)


def write_card(params_path: Path, paths: PathsConfig = PathsConfig()) -> str:
    """The `card` stage: the card of the model in `paths.models`, from `params_path` and the run's
    metrics in `paths.metrics`, written beside the model as README.md."""
    params = load_all(params_path)
    model = _read(paths.models / "config.json")
    names = ("corpus", "kg", "split", "train", "eval", "distill")
    text = model_card(params, model, {n: _read(paths.metrics / f"{n}.json") for n in names})
    atomic.write_text(paths.models / "README.md", text)
    return text
