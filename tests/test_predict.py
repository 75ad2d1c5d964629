"""`graphmer predict` on files that were never in the corpus, with a tiny trained model."""

import json

import pytest

from graphmer.cli import main

OUTSIDE = {
    "shop.py": "class Cart(Base):\n    def add(self, item: str) -> int:\n        return check_price(item)\n",
    "Shop.java": "class Cart {\n    int add(String item) {\n        return checkPrice(item);\n    }\n}\n",
    "shop.js": "function add(item) {\n  return checkPrice(item);\n}\n",
}


def run(trained, capsys, *args):
    paths = trained["paths"]
    argv = [
        "predict",
        *map(str, args),
        "--model-dir",
        str(paths.models),
        "--tokenizer",
        str(paths.tokenizer),
        "--candidates",
        str(paths.samples / "candidates.parquet"),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.mark.parametrize("name", sorted(OUTSIDE))
def test_top_k_tails_for_a_file_outside_the_corpus(trained, capsys, tmp_path, name):
    path = tmp_path / name
    path.write_text(OUTSIDE[name])
    code, out, err = run(
        trained, capsys, path, "--entity", "add", "--relation", "calls", "--top-k", "4", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert "add" in result["head"] and result["relation"] == "calls"
    tails = result["tails"]
    assert len(tails) == 4 and len({t["name"] for t in tails}) == 4
    assert [t["score"] for t in tails] == sorted((t["score"] for t in tails), reverse=True)
    assert all(t["score"] <= 0 for t in tails)  # log-probabilities


def test_names_only_in_the_file_are_candidates_too(trained, capsys, tmp_path):
    path = tmp_path / "shop.py"
    path.write_text(OUTSIDE["shop.py"])
    code, out, _ = run(
        trained, capsys, path, "--entity", "add", "--relation", "calls", "--top-k", "1000", "--json"
    )
    tails = {t["name"]: t["source"] for t in json.loads(out)["tails"]}
    assert code == 0 and tails["check_price"] == "file"  # never seen in the corpus: unresolvable there
    assert "check3" in tails and tails["check3"] == "graph"


def test_table_output(trained, capsys, tmp_path):
    path = tmp_path / "shop.py"
    path.write_text(OUTSIDE["shop.py"])
    code, out, _ = run(trained, capsys, path, "--entity", "Cart", "--relation", "inherits", "--top-k", "3")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("py:shop.Cart (line 1) --inherits-->") and len(lines) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--entity", "nothere", "--relation", "calls"], "entity 'nothere' is not defined in"),
        (["--entity", "add", "--relation", "callz"], "unknown relation 'callz'"),
        (["--entity", "add", "--relation", "calls", "--top-k", "0"], "--top-k must be > 0"),
        (
            ["--entity", "add", "--relation", "calls", "--max-file-bytes", "10"],
            "is larger than --max-file-bytes (10 bytes)",
        ),
    ],
)
def test_bad_input_is_one_line_and_non_zero(trained, capsys, tmp_path, args, message):
    path = tmp_path / "shop.py"
    path.write_text(OUTSIDE["shop.py"])
    code, _, err = run(trained, capsys, path, *args)
    assert code == 1 and message in err and err.count("\n") == 1


def test_missing_file_unknown_language_and_missing_model(trained, capsys, tmp_path):
    code, _, err = run(trained, capsys, tmp_path / "none.py", "--entity", "a", "--relation", "calls")
    assert code == 1 and "no such file" in err
    (tmp_path / "notes.txt").write_text("add\n")
    code, _, err = run(trained, capsys, tmp_path / "notes.txt", "--entity", "add", "--relation", "calls")
    assert code == 1 and "not a Python, Java or JavaScript file" in err
    (tmp_path / "shop.py").write_text(OUTSIDE["shop.py"])
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "predict",
                str(tmp_path / "shop.py"),
                "--entity",
                "add",
                "--relation",
                "calls",
                "--model-dir",
                str(tmp_path / "nomodel"),
                "--tokenizer",
                str(trained["paths"].tokenizer),
                "--candidates",
                str(trained["paths"].samples / "candidates.parquet"),
            ]
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "not found: train a model first" in err
