"""Stage `fetch`: materialize the pinned corpus (params.yaml:corpus) under data/raw/<source>/.

    dvc repro fetch            # or, outside DVC: python stages/fetch.py

Writes data/raw/ (replaced atomically) and metrics/corpus.json.
"""

from graphmer import guarded
from graphmer.config import load_section
from graphmer.corpus.fetch import fetch_corpus


def main() -> None:
    corpus, extract, paths = load_section("corpus"), load_section("extract"), load_section("paths")
    m = fetch_corpus(corpus, paths.raw, paths.metrics / "corpus.json", extract)
    langs = ", ".join(f"{lang} {v['files']}" for lang, v in m["by_language"].items())
    print(f"fetch: {m['files']} source files ({langs}); {m['skipped_files']} skipped")


if __name__ == "__main__":
    guarded("fetch", main, __doc__)
