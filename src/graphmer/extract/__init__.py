"""The `extract` stage: tree-sitter parsing into a 16-relation code knowledge graph.

Per-language modules (`python`, `java`, `javascript`) hold all grammar knowledge
and turn one file into a `FileGraph` of definitions and unresolved facts;
`resolve` links the facts across files; `pipeline` runs it in parallel and
writes Parquet.
"""
