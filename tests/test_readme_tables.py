"""`make readme`: README tables are copies of metrics/ files, refreshed by a script."""

import importlib.util

import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts/readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)


def test_a_marked_table_is_replaced_by_its_source_and_the_prose_kept(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m/t.md").write_text("| a |\n|---|\n| 2 |\n")
    readme = tmp_path / "README.md"
    block = "Prose.\n<!-- table: m/t.md -->\n| a |\n|---|\n| {} |\n<!-- end table -->\nMore prose.\n"
    readme.write_text(block.format(1))
    assert readme_tables.refresh(readme, tmp_path) == 1
    assert readme.read_text() == block.format(2)


def test_a_missing_source_is_a_clear_error_and_changes_nothing(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- table: m/none.md -->\nold\n<!-- end table -->\n")
    with pytest.raises(SystemExit, match="m/none.md not found"):
        readme_tables.refresh(readme, tmp_path)
    assert "old" in readme.read_text()


def test_every_table_of_the_projects_readme_has_its_source_committed():
    text = (ROOT / "README.md").read_text()
    sources = [
        m["src"] for m in readme_tables.BLOCK.finditer(text) if m["src"] not in readme_tables.GENERATED
    ]
    assert sources and all((ROOT / s).is_file() for s in sources)


def test_the_summary_reads_each_stages_metrics(tmp_path):
    """The summary's figures come from the metrics files: change one, the table changes."""
    import json
    import shutil

    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "metrics", metrics)
    before = readme_tables.summary(metrics)
    kg = json.loads((metrics / "kg.json").read_text())
    kg["triples"] = 123_456_789
    (metrics / "kg.json").write_text(json.dumps(kg))
    after = readme_tables.summary(metrics)
    assert "123,456,789 triples" in after and "123,456,789" not in before
    assert [row.split("|")[1].strip() for row in after.splitlines()[2:]] == [
        "fetch",
        "extract",
        "split",
        "tokenizer",
        "samples",
        "train",
        "evaluate",
        "distill",
    ]


def test_the_resolution_table_reads_kg_json(tmp_path):
    import json

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    kg = {
        "triples_by_language": {"python": 10, "java": 4},
        "triples_by_relation": {"calls": {"python": 6, "java": 2}},
        "calls_in_corpus": {"python": 3, "java": 0},
        "calls_in_corpus_share": {"python": 0.5, "java": 0.0},
        "resolution_share": {"exact": 0.75, "inferred": 0.25},
    }
    (metrics / "kg.json").write_text(json.dumps(kg))
    assert readme_tables.resolution(metrics).splitlines() == [
        "| language | triples | calls | calls to a corpus entity |",
        "|---|---|---|---|",
        "| python | 10 | 6 | 3 (50.0%) |",
        "| java | 4 | 2 | 0 (0.0%) |",
        "",
        "| exact | inferred |",
        "|---|---|",
        "| 75.0% | 25.0% |",
    ]


def test_the_readme_tables_agree_with_the_metrics(tmp_path):
    """`make readme` changes nothing: no table drifted from metrics/ (on a clean clone, the
    committed metrics; mid-`dvc repro`, the files being rewritten, so expect a failure then)."""
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    readme_tables.refresh(readme, ROOT)
    assert readme.read_text() == (ROOT / "README.md").read_text(), "run `make readme`"
