"""Stage `split`: every extracted file to train, dev or test (params.yaml:split).

    dvc repro split            # or, outside DVC: python stages/split.py
    dvc exp run -S split.by=source -S 'split.test_sources=[sphinx]'   # a project never seen

Writes data/split.parquet (path, source, split, group) and metrics/split.json.
"""

from graphmer import guarded
from graphmer.config import load_section
from graphmer.kg import FILES_TABLE
from graphmer.split import build_split


def main() -> None:
    paths = load_section("paths")
    files, metrics = paths.kg / FILES_TABLE, paths.metrics / "split.json"
    m = build_split(files, paths.raw, paths.split, load_section("split"), metrics)
    f = m["files"]
    print(
        f"split ({m['by']}): {f['train']} train / {f['dev']} dev / {f['test']} test files, "
        f"{f['duplicate']} duplicates; {m['files_in_near_duplicate_groups']} files in "
        f"{m['near_duplicate_groups']} near-duplicate groups"
    )


if __name__ == "__main__":
    guarded("split", main, __doc__)
