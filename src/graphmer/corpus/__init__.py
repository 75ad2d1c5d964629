"""The `fetch` stage: pinned sources materialized under data/raw/<source>/."""
