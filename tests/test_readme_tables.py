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
    sources = [m["src"] for m in readme_tables.BLOCK.finditer(text)]
    assert sources and all((ROOT / s).is_file() for s in sources)
