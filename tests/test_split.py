"""The split stage: train/dev/test by content, near-duplicates together, whole projects held out."""

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graphmer import GraphmerError
from graphmer.config import ConfigError, SplitConfig
from graphmer.split import assign_splits, build_split, read_split, twin_groups


def _module(i: int) -> str:
    return "".join(
        f"def function_{i}_{j}(argument_{j}):\n    return compute_{i}_{j}(argument_{j})\n" for j in range(8)
    )


def _corpus(tmp_path, texts: dict[str, str]):
    rows = []
    for path, text in texts.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
        rows.append(
            {
                "path": path,
                "source": path.split("/")[0],
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
                "skipped": None,
            }
        )
    return pa.Table.from_pylist(rows)


def test_exact_duplicates_are_used_by_no_split(tmp_path):
    files = _corpus(tmp_path, {"a/x.py": _module(1), "b/x.py": _module(1), "a/y.py": _module(2)})
    splits, _ = assign_splits(files, tmp_path, SplitConfig())
    assert splits["b/x.py"] == "duplicate" and splits["a/x.py"] != "duplicate"


@pytest.mark.parametrize("seed", range(6))
def test_an_edited_copy_goes_with_its_twin(tmp_path, seed):
    texts = {f"a/m{i}.py": _module(i) for i in range(30)}
    texts["b/edited_m3.py"] = _module(3).replace("function_3_0", "renamed") + "extra = 1\n"
    splits, groups = assign_splits(_corpus(tmp_path, texts), tmp_path, SplitConfig(seed=seed))
    assert splits["b/edited_m3.py"] == splits["a/m3.py"]
    assert groups["b/edited_m3.py"] == groups["a/m3.py"] == "a/m3.py"
    assert groups["a/m4.py"] == "a/m4.py"  # unrelated files stay alone


def test_fractions_are_respected_and_a_files_split_ignores_unrelated_files(tmp_path):
    texts = {f"a/m{i}.py": _module(i) for i in range(400)}
    cfg = SplitConfig(dev_fraction=0.1, test_fraction=0.2)
    splits, _ = assign_splits(_corpus(tmp_path, texts), tmp_path, cfg)
    share = {s: sum(v == s for v in splits.values()) / 400 for s in ("train", "dev", "test")}
    assert 0.05 < share["dev"] < 0.15 and 0.14 < share["test"] < 0.26
    more = _corpus(tmp_path, texts | {"a/new.py": _module(999)})
    again, _ = assign_splits(more, tmp_path, cfg)
    assert all(again[p] == s for p, s in splits.items())


def test_by_source_holds_out_whole_projects_and_drops_their_twins_of_training_files(tmp_path):
    texts = {f"main/m{i}.py": _module(i) for i in range(10)}
    texts |= {"lib/a.py": _module(100), "app/b.py": _module(200), "app/copied.py": _module(4) + "x = 1\n"}
    cfg = SplitConfig(by="source", dev_sources=["lib"], test_sources=["app"])
    splits, _ = assign_splits(_corpus(tmp_path, texts), tmp_path, cfg)
    assert {p for p, s in splits.items() if s == "test"} == {"app/b.py"}
    assert {p for p, s in splits.items() if s == "dev"} == {"lib/a.py"}
    assert splits["app/copied.py"] == "duplicate"  # a held-out project's copy of main/m4.py
    assert all(splits[f"main/m{i}.py"] == "train" for i in range(10))


def test_build_split_writes_what_read_split_reads(tmp_path):
    texts = {f"a/m{i}.py": _module(i) for i in range(20)}
    pq.write_table(_corpus(tmp_path, texts), tmp_path / "files.parquet")
    m = build_split(
        tmp_path / "files.parquet", tmp_path, tmp_path / "split.parquet", SplitConfig(), progress=False
    )
    back = read_split(tmp_path / "split.parquet")
    assert set(back) == set(texts) and sum(m["files"].values()) == 20
    assert m["by_source"]["a"] == {s: n for s, n in m["files"].items() if n}
    with pytest.raises(GraphmerError, match="dvc repro split"):
        read_split(tmp_path / "missing.parquet")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dev_fraction": 0.0}, "dev_fraction"),
        ({"dev_fraction": 0.5, "test_fraction": 0.5}, "leave files for training"),
        ({"by": "window"}, "file or source"),
        ({"by": "source"}, "needs split.test_sources"),
        ({"by": "source", "test_sources": ["a"], "dev_sources": ["a"]}, "both dev_sources and test_sources"),
    ],
)
def test_bad_split_configs_are_one_clear_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SplitConfig(**kwargs)


def test_a_distinctive_line_has_at_least_min_line_chars(tmp_path):
    short = "".join(f"value_{j} = 1000{j}\n" for j in range(8))  # 15 characters a line
    texts = {"a.py": short, "b.py": short + "extra = 1\n"}
    assert twin_groups(texts, SplitConfig())["b.py"] == "b.py"
    assert twin_groups(texts, SplitConfig(min_line_chars=15))["b.py"] == "a.py"
