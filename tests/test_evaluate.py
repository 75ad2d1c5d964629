"""The evaluate stage on a tiny trained model: honest splits, complete metrics, clear failures."""

import json
import math
import re
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from graphmer import GraphmerError, baselines
from graphmer.config import PathsConfig
from graphmer.evaluate import RULES, SYSTEMS, evaluate, held_out_triples, paired_gain
from graphmer.relations import RELATION_NAMES
from tests.trained import EVAL, SAMPLES, eval_paths


@pytest.fixture(scope="module")
def result(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return evaluate(EVAL, SAMPLES, eval_paths(trained["root"], out), progress=False), out


def _numbers(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _numbers(v)
    elif isinstance(x, float):
        yield x


def test_metrics_hold_every_number_and_no_nan(result):
    m, out = result
    saved = json.loads((out / "eval.json").read_text())
    assert saved == json.loads(json.dumps(m))
    assert all(math.isfinite(v) for v in _numbers(m))
    assert m["leakage"]["shared_content"] == 0 and m["leakage"]["test_files"] == 2
    assert 0 <= m["masked"]["mlm"]["acc"] <= 1 and m["masked"]["mlm"]["tokens"] > 0
    tp = m["tail_prediction"]
    assert set(tp["per_relation"]) == set(RELATION_NAMES)
    for part in ("overall", "copyable", "non_copyable"):
        assert set(tp[part]) == {*SYSTEMS, "gain"}
    assert tp["overall"]["model"]["triples"] == tp["held_out_triples"] > 0  # triples_per_relation=0: all
    assert tp["strongest_baseline"] in RULES
    assert set(tp["rule_by_relation"]) == set(RELATION_NAMES)
    assert set(tp["rule_by_relation"].values()) <= set(baselines.RULES)
    best = tp["overall"][tp["strongest_baseline"]]["mrr"]
    assert all(tp["overall"][s]["mrr"] <= best for s in ("frequency", "copy", "name_lookup", "copy_name"))
    for s in SYSTEMS:
        for k in ("mrr", "hits1", "hits3", "hits10"):
            assert 0 <= tp["overall"][s][k] <= 1
        assert tp["overall"][s]["hits1"] <= tp["overall"][s]["hits3"] <= tp["overall"][s]["hits10"]


def test_gains_are_paired_differences_with_an_interval_around_them(result):
    tp = result[0]["tail_prediction"]
    for s in ("frequency", "code_only", "copy", "name_lookup", "copy_name"):
        g = tp["overall"]["gain"][f"model_vs_{s}"]
        assert g["mrr_diff"] == pytest.approx(tp["overall"]["model"]["mrr"] - tp["overall"][s]["mrr"])
        assert g["ci95_low"] <= g["mrr_diff"] <= g["ci95_high"]


def test_paired_gain_interval_excludes_zero_only_for_a_consistent_difference():
    better = [{"rr": 1.0}] * 50
    worse = [{"rr": 0.5}] * 50
    g = paired_gain(better, worse, seed=0)
    assert g == {"mrr_diff": 0.5, "ci95_low": 0.5, "ci95_high": 0.5}
    mixed = paired_gain([{"rr": x} for x in [1.0, 0.0] * 25], [{"rr": 0.5}] * 50, seed=0)
    assert mixed["ci95_low"] < 0 < mixed["ci95_high"]


def test_a_relation_without_validation_triples_says_so(result):
    m, out = result
    tests = m["tail_prediction"]["per_relation"]["tests"]  # the tiny corpus has no tests
    assert tests["held_out_triples"] == 0 and "no held-out triples" in tests["note"]
    assert m["masked"]["mnm"]["per_relation"]["tests"]["tails"] == 0
    row = next(line for line in (out / "eval_relations.md").read_text().splitlines() if "| tests |" in line)
    assert "nan" not in row.lower() and "–" in row


def test_tables_and_plot_data_open_as_csv(result):
    m, out = result
    import pandas as pd

    table = pd.read_csv(out / "eval_relations.csv")
    assert list(table["relation"]) == RELATION_NAMES
    evaluated = table[table["evaluated"] > 0]
    assert len(evaluated) == sum("evaluated" in e for e in m["tail_prediction"]["per_relation"].values())
    for s in SYSTEMS:
        plot = pd.read_csv(out / "eval_hits10" / f"{s}.csv")
        assert list(plot.columns) == ["relation", "hits10"] and len(plot) == len(evaluated)


def test_held_out_triples_were_never_injected_in_training(trained):
    samples = trained["paths"].samples
    held, counts = held_out_triples(samples, "test", seed=0, per_relation=0)
    tails = pq.read_table(samples / "tails.parquet")["tail"].to_pylist()
    train = pq.read_table(samples / "train.parquet").to_pydict()
    seen = {
        (h, r, tails[t])
        for hs, rs, ts in zip(train["cand_head"], train["cand_relation"], train["cand_tail"])
        for h, r, t in zip(hs, rs, ts)
    }
    assert held and not any((h.head, h.relation, h.tail) in seen for h in held)
    assert len({(h.head, h.relation, h.tail) for h in held}) == len(held)  # each distinct triple once
    # only facts of the test files (m8, m9) are asked; Base's training facts are context, not questions
    assert {h.head.split(".")[1] for h in held} <= {"m8", "m9"}
    assert not any(h.head.startswith("py:pkg.base") for h in held)
    few, _ = held_out_triples(samples, "test", seed=0, per_relation=1)
    assert len(few) == sum(1 for c in counts.values() if c["held_out_triples"])


def test_same_seed_same_numbers(trained, result, tmp_path):
    again = evaluate(EVAL, SAMPLES, eval_paths(trained["root"], tmp_path), progress=False)
    assert again == result[0]


def _copy(trained, tmp_path) -> PathsConfig:
    """A copy of the trained corpus and model to break; its metrics go to tmp_path."""
    root = tmp_path / "copy"
    shutil.copytree(trained["root"], root)
    return eval_paths(root, tmp_path)


def test_leakage_guard_fails_on_a_training_file_in_test(trained, tmp_path):
    p = _copy(trained, tmp_path)
    test = pq.read_table(p.samples / "test.parquet")
    a_train_file = pq.read_table(p.samples / "train.parquet")["file"][0].as_py()
    files = pc.if_else(pc.equal(pa.array(range(test.num_rows)), 0), a_train_file, test["file"])
    pq.write_table(test.set_column(0, "file", files), p.samples / "test.parquet")
    with pytest.raises(GraphmerError, match="leakage guard: test windows come from 1 file"):
        evaluate(EVAL, SAMPLES, p, progress=False)
    assert not (tmp_path / "eval.json").exists()


def test_leakage_guard_fails_on_a_held_out_triple_planted_in_a_training_window(trained, tmp_path):
    """A training window that carries a fact extracted from a test file (m9's Store9 inherits Base)
    is leakage, whatever the samples stage's own `cand_train` flag claims."""
    p = _copy(trained, tmp_path)
    tails = pq.read_table(p.samples / "tails.parquet")["tail"].to_pylist()
    test = pq.read_table(p.samples / "test.parquet").to_pylist()
    row = next(r for r in test if "py:pkg.m9.Store9" in r["cand_head"])
    k = row["cand_head"].index("py:pkg.m9.Store9")
    train = pq.read_table(p.samples / "train.parquet")
    rows = train.to_pylist()
    victim = next(r for r in rows if r["cand_anchor"])
    for col in ("cand_anchor", "cand_end", "cand_relation", "cand_tail", "cand_copyable", "cand_head"):
        victim[col].append(row[col][k])
    victim["cand_train"].append(True)
    pq.write_table(pa.Table.from_pylist(rows, schema=train.schema), p.samples / "train.parquet")
    fact = f"(py:pkg.m9.Store9, {RELATION_NAMES[row['cand_relation'][k]]}, {tails[row['cand_tail'][k]]})"
    with pytest.raises(GraphmerError, match=f"training windows carry 1 triple.*{re.escape(fact)}"):
        evaluate(EVAL, SAMPLES, p, progress=False)


def test_leakage_guard_fails_on_shared_content(trained, tmp_path):
    p = _copy(trained, tmp_path)
    files = pq.read_table(p.kg / "files.parquet").to_pydict()
    val_file = pq.read_table(p.samples / "test.parquet")["file"][0].as_py()
    train_file = pq.read_table(p.samples / "train.parquet")["file"][0].as_py()
    sha = dict(zip(files["path"], files["sha256"]))
    # the validation file's content hash as a training file's: e.g. a vendored copy under another name
    files["sha256"] = [
        sha[val_file] if p == train_file else h for p, h in zip(files["path"], files["sha256"])
    ]
    pq.write_table(pa.table(files), p.kg / "files.parquet")
    with pytest.raises(GraphmerError, match="leakage guard"):
        evaluate(EVAL, SAMPLES, p, progress=False)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda p: (p.models / "model.safetensors").unlink(), "not found: train a model first"),
        (
            lambda p: (p.models / "model.safetensors").write_bytes(b"junk"),
            "not a readable safetensors",
        ),
        (
            lambda p: (p.models / "config.json").write_text(
                (p.models / "config.json").read_text().replace('"vocab_size": ', '"vocab_size": 1')
            ),
            "belong to different runs",
        ),
        (
            lambda p: (p.models / "config.json").write_text(
                (p.models / "config.json").read_text().replace('"roots": 16', '"roots": 32')
            ),
            "does not match",
        ),
    ],
    ids=["missing", "corrupt", "tokenizer", "shape"],
)
def test_a_broken_model_is_one_clear_error(trained, tmp_path, break_it, message):
    p = _copy(trained, tmp_path)
    break_it(p)
    with pytest.raises(GraphmerError, match=message):
        evaluate(EVAL, SAMPLES, p, progress=False)


def test_on_dev_the_rule_by_relation_is_the_best_rule_of_each_relation(trained, tmp_path):
    """Chosen on the dev questions, the per-relation rule scores on dev exactly the best rule's
    MRR in every relation; on test it is the dev choice, whatever test says."""
    from dataclasses import replace

    m = evaluate(replace(EVAL, split="dev"), SAMPLES, eval_paths(trained["root"], tmp_path), progress=False)
    tp = m["tail_prediction"]
    asked = [e for e in tp["per_relation"].values() if "evaluated" in e]
    assert asked
    for e in asked:
        best = max(e[s]["mrr"] for s in baselines.RULES)
        assert e["rule_by_relation"]["mrr"] == pytest.approx(best)
