"""GraphMER-SE: graph-aware code encoders trained on a code knowledge graph."""

__version__ = "0.1.0"


class GraphmerError(Exception):
    """An error a user can act on; stages print it as one line and exit non-zero."""
