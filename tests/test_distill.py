"""`distill`: calibration on synthetic scores, each validity rule on a hand-built graph, hidden
facts asked exactly like gaps, and the stage and `graphmer distill` on the tiny trained corpus."""

import json
import math
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from graphmer.calibrate import Calibrator, Isotonic, ece, reliability, selective
from graphmer.cli import main
from graphmer.config import ConfigError, DistillConfig, PathsConfig, TokenizerConfig, build
from graphmer.distill import (
    BASIS,
    FEATURES,
    MIN_FIT_QUESTIONS,
    Asked,
    Checked,
    Context,
    Graph,
    LocalLookup,
    Predicted,
    Scorer,
    Slot,
    TailIds,
    Validator,
    distill,
    fit_calibrator,
    fit_weights,
    gap_slots,
    probabilities,
    python_annotations,
    python_returners,
    recalled,
    reciprocal_ranks,
    slot_window,
    versus_rules,
)
from graphmer.extract.pipeline import extract_kg
from graphmer.loader import word_starts
from graphmer.ranking import rank_metrics
from graphmer.relations import Relation
from graphmer.tokenizer import load as load_tokenizer
from tests.tiny import HELD_OUT, LIB, L, R, build_tiny_samples, write_split

# --------------------------------------------------------------------------- calibration


def test_pav_pools_violators_into_their_mean():
    iso = Isotonic.fit([1, 2, 3, 4, 5], [0, 1, 0, 1, 1])
    assert iso.value == (0.0, 0.5, 1.0)  # (2, 3) pooled; 4 and 5 agree
    assert iso(1).tolist() == [0.0] and iso([2, 3]).tolist() == [0.5, 0.5] and iso(5).tolist() == [1.0]
    assert iso([0, 9]).tolist() == [0.0, 1.0]  # clamped at the ends
    assert iso(3.5).tolist() == pytest.approx([0.75])  # linear between blocks
    assert Isotonic.from_dict(json.loads(json.dumps(iso.to_dict()))) == iso


def test_equal_scores_share_one_probability():
    iso = Isotonic.fit([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 1])
    assert iso([0.5]).tolist() == [0.75]


def test_isotonic_calibration_repairs_an_overconfident_scorer():
    """Raw confidence x is right with probability x**2 (overconfident): fitted on one half, the
    isotonic map brings the other half's ECE from about 0.17 to under 0.03."""
    rng = np.random.default_rng(0)
    x = rng.random(20_000)
    y = rng.random(20_000) < x**2
    calib = Calibrator.fit(["r"] * 10_000, x[:10_000], y[:10_000], min_points=100)
    raw = ece(x[10_000:], y[10_000:], 10)
    fixed = ece(calib(["r"] * 10_000, x[10_000:]), y[10_000:], 10)
    assert raw > 0.15 and fixed < 0.03
    assert np.all(np.diff(calib(["r"] * 5, [0.1, 0.3, 0.5, 0.7, 0.9])) >= 0)  # monotone


def test_a_relation_with_few_points_takes_the_pooled_map():
    keys = ["a"] * 300 + ["b"] * 5
    x = np.r_[np.linspace(0, 1, 300), [0.9] * 5]
    y = np.r_[np.linspace(0, 1, 300) > 0.5, [0] * 5]
    calib = Calibrator.fit(keys, x, y, min_points=100)
    assert calib.source("a") == "own" and calib.source("b") == "pooled" and calib.source("c") == "pooled"
    assert calib(["b"], [0.9])[0] == calib.pooled([0.9])[0]
    assert Calibrator.from_dict(json.loads(json.dumps(calib.to_dict()))) == calib


def test_without_outcomes_nothing_is_probable():
    calib = Calibrator.fit([], [], [], min_points=10)
    assert calib(["r", "s"], [0.2, 1.0]).tolist() == [0.0, 0.0]


def test_ece_reliability_and_selective_on_hand_counts():
    p = [0.95] * 10 + [0.15] * 10
    y = [1] * 9 + [0] + [1] * 2 + [0] * 8
    assert ece(p, y, 10) == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    rows = reliability(p, y, 10)
    assert [(r["bin_low"], r["predictions"], r["accuracy"]) for r in rows] == [(0.1, 10, 0.2), (0.9, 10, 0.9)]
    assert ece([], [], 10) is None
    # 4 questions; predictions of questions 0, 0, 1, 2 with probabilities 0.95, 0.6, 0.92, 0.3
    s = selective([0.95, 0.6, 0.92, 0.3], [True, False, False, True], [0, 0, 1, 2], 4, 0.9)
    assert s == {"predictions": 2, "precision": 0.5, "coverage": 0.5, "recall": 0.25}
    assert selective([0.3], [True], [0], 1, 0.9)["precision"] is None


def test_recalled_marks_the_questions_whose_right_tail_passes_the_threshold():
    truth = frozenset({"py:builtins.int"})
    slots = [
        Slot(f"py:m.f{i}.x", Relation.HAS_TYPE, "untyped_parameter", "p/m.py", 1, (0, 1), truth=truth)
        for i in range(4)
    ]
    asked = [Asked(s, [], np.zeros((0, len(FEATURES))), np.zeros(0, bool), -1) for s in slots]
    # the hand counts of `selective` above: questions 0, 0, 1, 2; question 3 has no prediction
    preds = [
        Predicted(slots[q], 1, "int", "py:builtins.int", 0.5, y)
        for q, y in ((0, True), (0, False), (1, False), (2, True))
    ]
    probs = np.asarray([0.95, 0.6, 0.92, 0.3])
    assert recalled(preds, probs, asked, 0.9).tolist() == [True, False, False, False]
    assert recalled(preds, probs, asked, 0.2).tolist() == [True, False, True, False]
    s = selective(probs, [p.correct for p in preds], [0, 0, 1, 2], 4, 0.2)
    assert recalled(preds, probs, asked, 0.2).mean() == s["recall"]


def _weights(**w) -> tuple[float, ...]:
    return tuple(w.get(c, 0.0) for c in BASIS)


def test_listwise_weights_rank_by_the_informative_column_with_probabilities_that_match():
    """Two candidates per question; the one the project lookup names is right in 80% of them. The
    conditional logit fits the softmax's scale too: its probability is that 80%, not just an order."""
    rng = np.random.default_rng(0)
    feats = np.zeros((2, len(FEATURES)), np.float32)
    feats[0, FEATURES.index("project_lookup")] = np.log1p(1.0)
    feats[:, FEATURES.index("model")] = rng.normal(size=2)  # noise the rules must not use
    slot = Slot("py:m.f.x", int(Relation.HAS_TYPE), "untyped_parameter", "p/m.py", 1, (0, 1))
    # a third candidate, left out of every ranking (another true tail), is A's twin: counted in
    # the softmax it would hold as much probability as A, never more than a half
    feats = np.vstack([feats, feats[:1]])
    keep = np.asarray([True, True, False])
    asked = [Asked(slot, ["A", "B", "C"], feats, keep, int(rng.random() >= 0.8)) for _ in range(500)]
    right = np.mean([a.target == 0 for a in asked])
    w = fit_weights(asked, tuple(c for c in BASIS if not c.startswith("model")))
    scorer = Scorer("rules", w)
    top = scorer.top(asked[0], 3)
    assert [r for r, _ in top] == [0, 1]  # C is never ranked
    assert abs(top[0][1] - right) < 0.01
    assert w["*"][BASIS.index("model")] == 0.0


def test_each_relation_with_enough_questions_gets_its_own_weights():
    """has_type's answer is the candidate the project lookup names, returns' the one the name
    lookup names: one pooled weighting cannot rank both first."""
    rng = np.random.default_rng(0)
    asked = []
    for relation, column in ((Relation.HAS_TYPE, "project_lookup"), (Relation.RETURNS, "name_lookup")):
        slot = Slot("py:m.f", int(relation), "untyped_function", "p/m.py", 1, (0, 1))
        for _ in range(3 * MIN_FIT_QUESTIONS):
            feats = np.zeros((2, len(FEATURES)))
            feats[0, FEATURES.index(column)] = 1.0  # the answer
            other = "name_lookup" if column == "project_lookup" else "project_lookup"
            feats[1, FEATURES.index(other)] = 1.0
            target = int(rng.random() >= 0.9)
            asked.append(Asked(slot, ["A", "B"], feats, np.ones(2, bool), target))
    w = fit_weights(asked, tuple(c for c in BASIS if not c.startswith("model")))
    assert {"*", "has_type", "returns"} == set(w)
    scorer = Scorer("rules", w)
    for a in (asked[0], asked[-1]):
        assert scorer.top(a, 1)[0][0] == 0


def test_a_candidate_the_model_cannot_spell_is_still_scored_by_the_rules():
    feats = np.zeros((2, len(FEATURES)))
    feats[:, FEATURES.index("model")] = [-np.inf, -1.0]
    feats[:, FEATURES.index("name_lookup")] = [np.log1p(3.0), 0.0]
    slot = Slot("py:m.f.x", int(Relation.HAS_TYPE), "untyped_parameter", "p/m.py", 1, (0, 1))
    a = Asked(slot, ["str", "int"], feats, np.ones(2, bool), 0)
    rules = Scorer("rules", {"*": _weights(lookup=1.0)})
    assert np.all(np.isfinite(rules.scores(a))) and [r for r, _ in rules.top(a, 2)] == [0, 1]
    assert reciprocal_ranks(rules.scores(a)[:, None], 0, a.keep)[0] == 1.0
    both = Scorer("model+rules", {"*": _weights(model=1.0, lookup=1.0)})
    assert [r for r, _ in both.top(a, 2)] == [1, 0]  # the model's floor outweighs the lookup


def test_isotonic_values_stay_probabilities_between_subnormal_knots():
    p = Isotonic((0.0, 1e-312), (0.0, 1e-312), (0.0, 1.0), 2)([0.0, 5e-313, 1e-312, 0.5])
    assert np.all((p >= 0) & (p <= 1))


def test_versus_rules_gives_the_chosen_scorer_minus_the_rules_per_question():
    truth = frozenset({"py:builtins.int"})
    slots = [
        Slot(f"py:m.f{i}.x", Relation.HAS_TYPE, "untyped_parameter", "p/m.py", 1, (0, 1), truth=truth)
        for i in range(4)
    ]
    # candidate 0 is right: first by the model's column, second by name lookup's
    feats = np.eye(2, len(FEATURES))  # the model favours int, the name lookup str
    asked = [Asked(s, ["int", "str"], feats, np.ones(2, bool), 0) for s in slots]
    chosen = Scorer("model", {"*": _weights(model=1.0)})
    rules = Scorer("rules", {"*": _weights(lookup=1.0)})

    def checked(scorer, probs):  # one right prediction per question, calibrated to `probs`
        preds = [Predicted(s, 1, "int", "py:builtins.int", 0.5, True) for s in slots]
        return Checked(scorer, None, [], Counter(), preds, np.asarray(probs), Counter())

    cfg = DistillConfig(thresholds=[0.5, 0.9])
    out = versus_rules(checked(chosen, [0.95] * 4), checked(rules, [0.6, 0.6, 0.3, 0.3]), asked, cfg)
    assert out["rules"]["mrr"] == 0.5 and out["rules"]["thresholds"]["0.5"]["recall"] == 0.5
    d = out["chosen_minus_rules"]
    assert d["mrr"] == {"diff": 0.5, "ci95_low": 0.5, "ci95_high": 0.5}
    assert d["recall@0.9"]["diff"] == 1.0 and d["recall@0.5"]["diff"] == 0.5
    assert d["recall@0.5"]["ci95_low"] < 0.5 < d["recall@0.5"]["ci95_high"]


def test_reciprocal_ranks_agree_with_rank_metrics_on_ties():
    rng = np.random.default_rng(1)
    for _ in range(50):
        s = rng.integers(0, 4, size=12).astype(np.float64)  # many ties
        keep = rng.random(12) > 0.2
        target = int(rng.integers(12))
        keep[target] = True
        want = rank_metrics(torch.from_numpy(s), target, torch.from_numpy(~keep))["rr"]
        assert reciprocal_ranks(s[:, None], target, keep)[0] == pytest.approx(want)


# --------------------------------------------------------------------------- validity

KINDS = {
    "A": "class",
    "B": "class",
    "C": "class",
    "X": "class",
    "A.run": "method",
    "B.run": "method",
    "C.run": "method",
    "X.run": "method",
    "B.stop": "method",
    "f": "function",
    "m": "module",
    "ext:str": "external",
    "ext:helper": "external",
    "lib.Other": "class",  # defined in another project, which f's never imports
    "ext:pkg.Thing": "external",  # a third-party type, of a package f's project never imports
}
STATIC = [
    ("A", Relation.INHERITS, "B"),  # A -> B -> C; X stands alone
    ("B", Relation.INHERITS, "C"),
    ("m", Relation.CONTAINS, "A"),
    ("A", Relation.CONTAINS, "A.run"),
    ("B", Relation.CONTAINS, "B.run"),
    ("B", Relation.CONTAINS, "B.stop"),
    ("C", Relation.CONTAINS, "C.run"),
    ("X", Relation.CONTAINS, "X.run"),
    ("f", Relation.CALLS, "ext:helper"),
    ("f", Relation.HAS_TYPE, "ext:str"),
]


@pytest.fixture
def validator():
    projects = (
        {e: "two" if e == "lib.Other" else "one" for e in KINDS if not e.startswith("ext:")},
        {"one": {"A"}},
    )
    return Validator(
        KINDS,
        [(h, int(r), t) for h, r, t in STATIC],
        {"A", "B", "C", "X", "lib.Other", "ext:str", "ext:pkg.Thing"},
        projects,
    )


@pytest.mark.parametrize(
    ("triple", "reason"),
    [
        (("f", Relation.CALLS, "ext:helper"), "duplicate_of_static"),
        (("f", Relation.RETURNS, "A.run"), "tail_not_a_type"),
        (("f", Relation.HAS_TYPE, "ext:helper"), "tail_not_a_type"),
        (("X", Relation.INHERITS, "f"), "tail_not_a_class"),
        (("f", Relation.INSTANTIATES, "A.run"), "tail_not_a_class"),
        (("A.run", Relation.OVERRIDES, "X.run"), "tail_not_an_ancestor_method"),  # X is no ancestor of A
        (("A.run", Relation.OVERRIDES, "B.stop"), "tail_not_an_ancestor_method"),  # another name
        (("C.run", Relation.OVERRIDES, "A.run"), "tail_not_an_ancestor_method"),  # A is C's descendant
        (("C", Relation.INHERITS, "A"), "inheritance_cycle"),
        (("C", Relation.IMPLEMENTS, "C"), "inheritance_cycle"),
        (("X", Relation.CONTAINS, "A.run"), "contains_not_a_forest"),  # A.run already has a parent
        (("A.run", Relation.CONTAINS, "m"), "contains_not_a_forest"),  # m contains A.run: a cycle
        (("f", Relation.HAS_TYPE, "lib.Other"), "type_the_project_never_imports"),
        (("X", Relation.INHERITS, "lib.Other"), "type_the_project_never_imports"),
        (("f", Relation.RETURNS, "ext:pkg.Thing"), "type_the_project_never_imports"),
    ],
)
def test_each_validity_rule_rejects_its_case(validator, triple, reason):
    h, r, t = triple
    assert validator.check(h, int(r), t) == reason


@pytest.mark.parametrize(
    "triple",
    [
        ("f", Relation.RETURNS, "A"),
        ("f", Relation.HAS_TYPE, "X"),
        ("X", Relation.INHERITS, "A"),
        ("A.run", Relation.OVERRIDES, "C.run"),  # C is A's grandparent
        ("A.run", Relation.OVERRIDES, "B.run"),
        ("m", Relation.CONTAINS, "X"),
        ("f", Relation.CALLS, "A.run"),
    ],
)
def test_valid_predictions_pass(validator, triple):
    h, r, t = triple
    assert validator.check(h, int(r), t) is None


def test_a_hidden_fact_is_no_duplicate_and_an_imported_project_is_reachable(validator):
    assert validator.check("f", int(Relation.HAS_TYPE), "ext:str") == "duplicate_of_static"
    assert validator.check("f", int(Relation.HAS_TYPE), "ext:str", hidden=frozenset({"ext:str"})) is None
    validator.reach["one"] |= {"lib", "pkg"}  # f's project imports Other's package, and pkg
    assert validator.check("f", int(Relation.HAS_TYPE), "lib.Other") is None
    assert validator.check("f", int(Relation.RETURNS), "ext:pkg.Thing") is None


def test_accepted_predictions_constrain_the_next(validator):
    assert validator.check("C", int(Relation.INHERITS), "X") is None
    validator.add("C", int(Relation.INHERITS), "X")
    assert validator.check("X", int(Relation.INHERITS), "A") == "inheritance_cycle"  # A -> B -> C -> X
    assert validator.check("C", int(Relation.INHERITS), "X") == "duplicate_of_static"
    validator.add("m", int(Relation.CONTAINS), "X")
    assert validator.check("f", int(Relation.CONTAINS), "X") == "contains_not_a_forest"


# --------------------------------------------------------------------------- hidden facts = gaps

SNIPPET = b"""class A(Base):
    limit: int = 3
    def f(self, key: str, value=1, *args: Any, **kw: Dict[str, int]) -> Optional[str]:
        self.x: int = 1
        return key
"""


def test_python_annotations_name_each_annotated_name_and_its_annotation():
    spans = python_annotations(SNIPPET)
    got = {SNIPPET[a:b].decode(): SNIPPET[c:d].decode() for (a, b), (c, d) in spans.items()}
    assert got == {
        "limit": ": int",
        "key": ": str",
        "args": ": Any",
        "kw": ": Dict[str, int]",
        "f": "-> Optional[str]",
        "x": ": int",
    }


def test_python_returners_are_functions_that_return_a_value():
    src = (
        b"def f(x):\n    def g():\n        return 1\n    return\n"
        b"def h():\n    yield 2\n"
        b"def k():\n    return None\n"
        b"def m():\n    lambda: 3\n"
        b"def n():\n    return x.y\n"
    )
    names = {src[a:b].decode() for a, b in python_returners(src)}
    assert names == {"g", "h", "n"}  # f returns nothing (g's return is g's), k None, m a lambda's value


def _tiny_graph(tmp_path, texts: dict[str, str]):
    raw = tmp_path / "raw"
    for name, text in texts.items():
        (raw / "p" / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / "p" / name).write_text(text)
    extract_kg({"p": raw / "p"}, tmp_path / "kg", progress=False)
    return Graph.load(tmp_path / "kg"), lambda path: (raw / path).read_bytes()


def test_gaps_are_unannotated_heads_only(tmp_path):
    graph, read = _tiny_graph(
        tmp_path,
        {
            "m.py": "def f(a, b: int) -> None:\n    pass\n\ndef g(c: 'Weird'):\n    return c\n\n"
            "def h():\n    pass\n"
        },
    )
    slots, found = gap_slots(graph, {"p/m.py"}, ["python"], read)
    asked = {(s.head, s.gap) for s in slots}
    # f -> None has no returns triple but is annotated: no gap; 'Weird' (a string) is no type triple
    # either, yet annotated; g's return is a gap, h returns nothing
    assert asked == {("py:m.f.a", "untyped_parameter"), ("py:m.g", "untyped_function")}
    assert found == {"untyped_parameter": 1, "untyped_function": 1}
    assert gap_slots(graph, {"p/m.py"}, ["javascript"], read)[0] == []


def test_local_lookup_counts_the_question_file_and_project_less_its_own_head(tmp_path):
    raw = tmp_path / "raw"
    (raw / "a").mkdir(parents=True)
    (raw / "b").mkdir()
    (raw / "a/ma.py").write_text(
        "def f(path: str):\n    pass\n\ndef g(path: str):\n    pass\n\n"
        "def h(path: int):\n    pass\n\ndef k(path):\n    pass\n\ndef m(other: float):\n    pass\n"
    )
    (raw / "a/mc.py").write_text("def n(path: str):\n    pass\n")
    (raw / "b/mb.py").write_text("def f(path: bytes):\n    pass\n")
    extract_kg({"a": raw / "a", "b": raw / "b"}, tmp_path / "kg", progress=False)
    graph = Graph.load(tmp_path / "kg")

    def forms(names):
        return [tuple(map(ord, n)) for n in names]

    lookup = LocalLookup(graph, forms)
    names = ["str", "int", "bytes", "float"]
    index = dict(zip(forms(names), range(len(names))))

    def counts(head, file):
        slot = Slot(head, int(Relation.HAS_TYPE), "untyped_parameter", file, 1, (0, 0))
        got = lookup.counts_for(slot, names, index)
        return {scope: dict(zip(names, got[:, j].tolist())) for j, scope in enumerate(LocalLookup.SCOPES)}

    # f's own `str` stays hidden; b's `bytes` is another project's; `other` is another name;
    # mc.py is another file of the same project
    assert counts("py:ma.f.path", "a/ma.py") == {
        "project_lookup": {"str": 2, "int": 1, "bytes": 0, "float": 0},
        "file_lookup": {"str": 1, "int": 1, "bytes": 0, "float": 0},
        "file_types": {"str": 1, "int": 1, "bytes": 0, "float": 1},
        "project_types": {"str": 2, "int": 1, "bytes": 0, "float": 1},
    }
    unannotated = counts("py:ma.k.path", "a/ma.py")  # a gap: nothing of its own to leave out
    assert unannotated["project_lookup"] == {"str": 3, "int": 1, "bytes": 0, "float": 0}
    assert unannotated["file_types"] == {"str": 2, "int": 1, "bytes": 0, "float": 1}
    assert all(not any(v.values()) for v in counts("py:mb.f.path", "b/mb.py").values())


@pytest.fixture(scope="module")
def tok_ctx(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    from graphmer.tokenizer import save, train_tokenizer

    tok = train_tokenizer([LIB.format(i=i) for i in range(5)], TokenizerConfig(vocab_size=320))
    save(tok, root / "tokenizer.json")
    return load_tokenizer(root / "tokenizer.json")


def test_a_hidden_fact_is_asked_exactly_like_the_gap_it_imitates(tmp_path, tok_ctx):
    """The question about `key: str` with its annotation hidden is, token for token, the question
    about the same code written without it."""
    typed = LIB.format(i=1)
    untyped = typed.replace("def put(self, key: str,", "def put(self, key,", 1)
    g_typed, read_typed = _tiny_graph(tmp_path / "t", {"m.py": typed})
    g_plain, read_plain = _tiny_graph(tmp_path / "u", {"m.py": untyped})
    head = "py:m.Store1.put.key"
    hide = python_annotations(read_typed("p/m.py"))[g_typed.span[head]]
    hidden = Slot(head, int(Relation.HAS_TYPE), "untyped_parameter", "p/m.py", 4, g_typed.span[head], hide)
    (gap,) = [s for s in gap_slots(g_plain, {"p/m.py"}, ["python"], read_plain)[0] if s.head == head]
    begins, ends = word_starts(tok_ctx.get_vocab())
    q1, text1 = slot_window(hidden, read_typed("p/m.py"), tok_ctx, R, L, begins, ends)
    q2, text2 = slot_window(gap, read_plain("p/m.py"), tok_ctx, R, L, begins, ends)
    assert text1 == text2 == untyped
    assert (q1.anchor, q1.head_end, q1.relation) == (q2.anchor, q2.head_end, q2.relation)
    for k in q1.item:
        assert np.array_equal(q1.item[k], q2.item[k]), k
    assert tok_ctx.decode(q1.item["input_ids"][q1.anchor : q1.head_end].tolist()).strip() == "key"


def test_a_name_becomes_the_tail_the_file_would_mean(tmp_path):
    corpus, _ = _tiny_graph(
        tmp_path / "c",
        {
            "a/__init__.py": "",
            "b/__init__.py": "",
            "a/types.py": "class Context:\n    pass\n",
            "b/ctx.py": "class Context:\n    pass\n",
            "a/w.py": "class Widget:\n    pass\n",
            "b/w.py": "class Widget:\n    pass\n",
            "a/other.py": "from b.ctx import Context\n",
            "a/mod.py": "from b import ctx\n",
            "a/use.py": "from a.types import Context\n\ndef f(c: Context):\n    pass\n\n"
            "def g(d: Context):\n    pass\n",
        },
    )
    ids = TailIds(corpus, set(corpus.file.values()), corpus)
    has_type = int(Relation.HAS_TYPE)
    # the training graph's usual Context is a.types' (two triples), in a project of neither
    assert ids(has_type, "py:x.f.c", "p/x.py", "Context") == "py:a.types.Context"
    assert ids(has_type, "py:b.z.f.c", "p/b/z.py", "Context") == "py:a.types.Context"
    # a file that imports b's Context (or its module), or defines its own, means that one
    assert ids(has_type, "py:a.other.f.c", "p/a/other.py", "Context") == "py:b.ctx.Context"
    assert ids(has_type, "py:a.mod.f.c", "p/a/mod.py", "Context") == "py:b.ctx.Context"
    assert ids(has_type, "py:b.ctx.f.c", "p/b/ctx.py", "Context") == "py:b.ctx.Context"
    # never a type in the training graph: the class of the head's own project
    assert ids(has_type, "py:b.z.f.c", "p/b/z.py", "Widget") == "py:b.w.Widget"
    assert ids(has_type, "py:a.z.f.c", "p/a/z.py", "Widget") == "py:a.w.Widget"
    assert ids(has_type, "py:x.f.c", "p/x.py", "Nowhere") == "py:?.Nowhere"
    assert ids(has_type, "js:x.js:f.c", "p/x.js", "Context") == "js:?.Context"  # no Python type


# --------------------------------------------------------------------------- the stage, end to end

UNTYPED = LIB.replace(": str", "").replace(": int", "").replace(" -> None", "").replace(" -> int", "")


@pytest.fixture(scope="module")
def corpus(trained, tmp_path_factory):
    """A copy of the tiny trained corpus with one test file (m9) stripped of its annotations: dev
    (m7) and test (m8) hold annotated facts to hide, m9 holds the gaps. Only held-out files change,
    so the model (trained on the training files) stays the corpus's own."""
    root = tmp_path_factory.mktemp("distill") / "corpus"
    shutil.copytree(trained["root"], root)
    paths = PathsConfig().under(root)
    (paths.raw / "p/pkg/m9.py").write_text(UNTYPED.format(i=9))
    shutil.rmtree(paths.kg)
    extract_kg({"p": paths.raw / "p"}, paths.kg, progress=False)
    write_split(paths.kg, paths.split, HELD_OUT)
    shutil.rmtree(paths.samples)
    build_tiny_samples(paths)
    return paths


CFG = DistillConfig(max_tail_tokens=L, min_calibration_points=5, max_questions=0, batch_size=8)


def _paths(corpus: PathsConfig, out: Path) -> PathsConfig:
    """The corpus and its model; the distilled graph and the metrics written to `out` (the fitted
    calibrator beside the model, where the table puts it)."""
    return replace(corpus, metrics=out, distilled=out / "distilled.parquet")


@pytest.fixture(scope="module")
def staged(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return distill(CFG, _paths(corpus, out), progress=False), out


def _numbers(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _numbers(v)
    elif isinstance(x, list):
        for v in x:
            yield from _numbers(v)
    elif isinstance(x, float):
        yield x


def test_stage_metrics_name_the_scorer_and_check_calibration_on_test(staged):
    m, out = staged
    assert json.loads((out / "distill.json").read_text()) == json.loads(json.dumps(m))
    assert all(math.isfinite(v) for v in _numbers(m))
    s = m["scorer"]
    assert s["chosen"] in ("model", "model+rules")
    assert {"model", "model+rules", "rules", "rule_by_relation", "name_lookup", "copy"} <= set(s["dev_mrr"])
    assert s["dev_mrr"][s["chosen"]] == max(s["dev_mrr"]["model"], s["dev_mrr"]["model+rules"])
    # dev: m7 (key, value of put; key of get; value of check7; get, check7 return int)
    assert s["dev_questions"] == 6
    # reported to 6 decimals (no float noise in `dvc metrics diff`), and some weight is not zero
    tables = (s["weights"], m["test"]["rules"]["weights"])
    reported = [w for table in tables for r in table.values() for w in r.values()]
    assert all(w == round(w, 6) for w in reported) and any(w != 0 for w in reported)
    test = m["test"]
    rejected = m["rejected_hidden_fact_predictions"]["test"]
    assert test["questions"] == 6 and test["predictions"] + sum(rejected.values()) == 6 * CFG.top_k
    assert set(test["per_relation"]) == {"has_type", "returns"}
    assert set(test["thresholds"]) == {"0.5", "0.7", "0.9"}
    for t in test["thresholds"].values():
        assert t["precision"] is None or 0 <= t["precision"] <= 1
        assert 0 <= t["recall"] <= t["coverage"] <= 1
    assert 0 <= test["ece"] <= 1
    assert m["skipped_hidden_facts"]["test"] == {}
    # the rules alone, on the same questions, and the chosen scorer minus them
    rules, diff = test["rules"], test["chosen_minus_rules"]
    assert rules["questions"] == test["questions"] and set(rules["thresholds"]) == set(test["thresholds"])
    assert all(w["model"] == 0 for w in rules["weights"].values())
    assert diff["mrr"]["diff"] == pytest.approx(test["mrr"][s["chosen"]] - rules["mrr"])
    cv = s["dev_versus_rules"]  # the same comparison by 2-fold cross-validation on dev
    assert cv["questions"] == 6 and set(cv["chosen_minus_rules"]) == set(diff)
    for k, d in cv["chosen_minus_rules"].items():
        assert d["diff"] == pytest.approx(cv["chosen"][k] - cv["rules"][k])
    for t in test["thresholds"]:
        d = diff[f"recall@{t}"]
        assert d["diff"] == pytest.approx(test["thresholds"][t]["recall"] - rules["thresholds"][t]["recall"])
        assert d["ci95_low"] <= d["diff"] <= d["ci95_high"]


def test_stage_fills_the_gaps_of_the_test_files_only(staged, corpus):
    m, out = staged
    d = m["distilled"]
    # m9: put(key, value), get(key), check9(value) untyped; get and check9 return a value untyped
    assert d["gaps"] == {"untyped_function": 2, "untyped_parameter": 4}
    assert d["questions_asked"] == d["gaps"]
    table = pq.read_table(out / "distilled.parquet").to_pylist()
    static = [r for r in table if r["source"] == "static"]
    model = [r for r in table if r["source"] == "model"]
    files = {"p/pkg/m8.py", "p/pkg/m9.py"}
    triples = pq.read_table(corpus.kg / "triples.parquet").to_pylist()
    assert len(static) == sum(t["file"] in files for t in triples) == d["static_triples"]
    assert {r["file"] for r in model} == {"p/pkg/m9.py"}
    assert all(0 <= r["probability"] <= 1 and 1 <= r["rank"] <= CFG.top_k for r in model)
    assert all(r["relation"] in (Relation.HAS_TYPE, Relation.RETURNS) for r in model)
    assert len(model) + sum(d["rejected"].values()) == d["predictions"] == 6 * CFG.top_k
    assert sum(v["all"] for v in d["added"].values()) == len(model)
    keys = {(t["head"], t["relation"], t["tail"]) for t in triples}
    assert not any((r["head"], r["relation"], r["tail"]) in keys for r in model)
    csv = (out / "distill_reliability.csv").read_text().splitlines()
    assert csv[0] == "bin_low,bin_high,mean_probability,accuracy,predictions" and len(csv) > 1
    assert f"| **overall** | 6 | {m['test']['predictions']} |" in (out / "distill.md").read_text()


def test_same_seed_same_distilled_graph(staged, corpus, tmp_path):
    again = distill(CFG, _paths(corpus, tmp_path), progress=False)
    m, out = staged
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in m.items() if k != "seconds"
    }
    assert pq.read_table(tmp_path / "distilled.parquet").equals(pq.read_table(out / "distilled.parquet"))


def test_config_rules():
    with pytest.raises(ConfigError, match="distill.split must be dev or test"):
        build(DistillConfig, {"split": "train"}, "distill")
    with pytest.raises(ConfigError, match="distill.languages"):
        build(DistillConfig, {"languages": ["java"]}, "distill")
    with pytest.raises(ConfigError, match=r"distill.thresholds\[1\] must be .*\[0, 1\]"):
        build(DistillConfig, {"thresholds": [0.5, 1.5]}, "distill")
    with pytest.raises(ConfigError, match="distill.thresholds is empty"):
        build(DistillConfig, {"thresholds": []}, "distill")
    with pytest.raises(ConfigError, match="distill.top_k must be >= 1"):
        build(DistillConfig, {"top_k": 0}, "distill")
    with pytest.raises(ConfigError, match="distill.calibration must be isotonic or softmax"):
        build(DistillConfig, {"calibration": "platt"}, "distill")


def test_softmax_calibration_keeps_the_scorer_probabilities_and_isotonic_maps_them():
    slot = Slot("py:m.f.x", int(Relation.HAS_TYPE), "untyped_parameter", "p/m.py", 1, (0, 1))
    raw = np.linspace(0.05, 0.95, 40)
    preds = [Predicted(slot, 1, "int", "py:builtins.int", float(r), i % 2 == 0) for i, r in enumerate(raw)]
    same = probabilities(preds, fit_calibrator(preds, replace(CFG, calibration="softmax")))
    assert np.allclose(same, raw)
    mapped = probabilities(preds, fit_calibrator(preds, CFG))  # right every other time: about 0.5 each
    assert np.all(np.abs(mapped - 0.5) < 0.1)


# --------------------------------------------------------------------------- `graphmer distill`


def _cli(corpus: PathsConfig, calibration: Path | None, capsys, *args):
    """`graphmer distill` on the corpus's model and graph; `calibration` None: the default, the one
    beside the model (what the stage wrote)."""
    argv = [
        "distill",
        *map(str, args),
        "--model-dir",
        str(corpus.models),
        "--tokenizer",
        str(corpus.tokenizer),
        "--samples",
        str(corpus.samples),
        "--kg",
        str(corpus.kg),
        "--split",
        str(corpus.split),
        *(["--calibration", str(calibration)] if calibration else []),
        "--workers",
        "1",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
        raise SystemExit(0)
    cap = capsys.readouterr()
    return exit_info.value.code, cap.out, cap.err


def test_graphmer_distill_on_a_plain_folder_outside_the_corpus(staged, corpus, capsys, tmp_path):
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "cart.py").write_text(
        "class Cart(Base):\n    def add(self, item, count=1):\n        return check_price(item)\n"
    )
    code, out, err = _cli(corpus, None, capsys, shop, "--out", tmp_path / "out")
    assert code == 0, err
    assert out.count("\n") == 1 and "distilled 1 files: 3 gaps, 3 asked" in out
    table = pq.read_table(tmp_path / "out/distilled.parquet").to_pylist()
    model = [r for r in table if r["source"] == "model"]
    assert {r["head"] for r in model} <= {
        "py:cart.Cart.add",
        "py:cart.Cart.add.item",
        "py:cart.Cart.add.count",
    }
    static = {(r["head"], r["relation"], r["tail"]) for r in table if r["source"] == "static"}
    assert ("py:cart.Cart", int(Relation.CONTAINS), "py:cart.Cart.add") in static
    summary = json.loads((tmp_path / "out/distill.json").read_text())
    assert summary["questions_asked"] == {"untyped_function": 1, "untyped_parameter": 2}


def test_graphmer_distill_without_a_fitted_calibrator_is_one_line(corpus, capsys, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.py").write_text("def f(x):\n    return x\n")
    none = tmp_path / "none/calibration.json"
    code, _, err = _cli(corpus, none, capsys, tmp_path / "src", "--out", tmp_path / "out")
    assert code == 1 and "not found: fit the calibrator first" in err and err.count("\n") == 1


def test_a_calibrator_of_another_model_is_refused(staged, corpus, capsys, tmp_path):
    other = tmp_path / "calibration.json"
    d = json.loads(corpus.calibration.read_text())
    d["model_sha256"] = "0" * 64
    other.write_text(json.dumps(d))
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.py").write_text("def f(x):\n    return x\n")
    code, _, err = _cli(corpus, other, capsys, tmp_path / "src", "--out", tmp_path / "out")
    assert code == 1 and "fitted for another model" in err


def test_a_calibrator_of_other_features_is_refused(staged, corpus, capsys, tmp_path):
    other = tmp_path / "calibration.json"
    d = json.loads(corpus.calibration.read_text())
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.py").write_text("def f(x):\n    return x\n")
    older = json.loads(json.dumps(d))
    older["scorer"]["features"] = d["scorer"]["features"][:4]  # a file fitted before project_lookup
    narrow = json.loads(json.dumps(d))
    narrow["scorer"]["weights"]["*"] = [0.0, 1.0]  # the right names, weights of another width
    for bad in (older, narrow):
        other.write_text(json.dumps(bad))
        code, _, err = _cli(corpus, other, capsys, tmp_path / "src", "--out", tmp_path / "out")
        assert code == 1 and "rerun `dvc repro distill`" in err


def test_context_candidates_are_training_tails_plus_file_names_within_the_token_limit(staged, corpus):
    """What a question ranks: the relation's tails with a training count, then the file's names
    that spell no such tail, none longer than max_tail_tokens."""
    from graphmer.evaluate import Ranking

    tok = load_tokenizer(corpus.tokenizer)
    ranking = Ranking.load(corpus, tok, L)
    graph = Graph.load(corpus.kg)
    ctx = Context(ranking, tok, L, 2, graph, graph, lambda p: b"")
    c = ctx.candidates(int(Relation.HAS_TYPE), "def f(x: int):\n    return check_price(x) + Base\n")
    assert int(c.lengths.max()) <= 2
    known = ctx.known[int(Relation.HAS_TYPE)]
    assert c.names[: len(known)] == known.names and all(known.train_count > 0)
    assert set(known.names) >= {"str", "int"}
    extra = c.names[len(known) :]
    assert "x" in extra and "int" not in extra
    assert np.all(c.train_count[len(known) :] == 0)
    assert torch.equal(c.log_length_prior, known.log_length_prior)


def test_table_columns(staged):
    _, out = staged
    schema = pq.read_schema(out / "distilled.parquet")
    assert schema.names == [
        "head",
        "relation",
        "tail",
        "probability",
        "rank",
        "file",
        "line",
        "source",
        "resolution",
        "gap",
        "language",
    ]
    assert schema.field("relation").type == pa.int8()


def test_replace_keeps_config_checks():
    with pytest.raises(ConfigError):
        replace(DistillConfig(), languages=[])
