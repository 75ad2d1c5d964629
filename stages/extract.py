"""Stage `extract`: the code knowledge graph of data/raw/ (params.yaml:extract).

    dvc repro extract          # or, outside DVC: python stages/extract.py

Writes data/kg/{files,entities,mentions,triples}.parquet and metrics/kg.json.
"""

from graphmer import guarded
from graphmer.config import load_section
from graphmer.extract.pipeline import extract_kg, source_roots


def main() -> None:
    cfg, paths = load_section("extract"), load_section("paths")
    roots, metrics = source_roots(paths.raw), paths.metrics / "kg.json"
    m = extract_kg(roots, paths.kg, cfg, metrics_path=metrics, cache_dir=paths.extract_cache)
    print(
        f"extract: {m['files_extracted']} files, {m['entities']} entities, {m['triples']} triples "
        f"({m['mb_per_s']} MB/s)"
    )


if __name__ == "__main__":
    guarded("extract", main, __doc__)
