"""One error tree for the library. The API maps it to HTTP in one place (``api/errors.py``):

- ``BadInput`` — the caller's request cannot be served as asked (a 4xx: ``NotFound`` 404,
  ``Conflict`` 409, ``Unsupported`` 422 for a backend this installation cannot run);
- ``Unavailable`` — a part the request needs is down or not installed (a 503); retry later:
  ``StoreUnavailable`` (the Chroma server), ``EmbeddingServiceError`` (a remote embedder),
  ``LLMError`` (a model backend);
- anything else under ``RAGError`` is the installation's fault (a 500 with no detail to clients):
  ``ModelError`` (a bundled model that cannot be built), ``StoreError`` and
  ``EmbeddingMismatchError`` (an index built with another embedding model).

Per-file ingest failures (``LoadError``) are not raised to callers: they are reported in the
``IngestSummary`` and leave the index as it was.
"""

from __future__ import annotations


class RAGError(Exception):
    """Base of every error the library raises on purpose."""


# -- the caller's input (4xx) -------------------------------------------------------------------


class BadInput(RAGError, ValueError):
    """The request cannot be served as asked."""


class NotFound(BadInput, KeyError):
    """A named thing (a document) does not exist."""

    def __str__(self) -> str:  # KeyError quotes its argument; say it plainly
        return str(self.args[0]) if self.args else ""


class Conflict(BadInput):
    """The request contradicts what exists (a knowledge base of that name exists already)."""


class Unsupported(BadInput):
    """The installation cannot do what was asked (a backend it does not run)."""


class LoadError(BadInput):
    """A file that cannot be ingested: missing, empty, binary, undecodable, unsupported type."""


# -- a part is down (503) -----------------------------------------------------------------------


class Unavailable(RAGError):
    """A part the request needs is unreachable or not installed; retry once it is back."""


class StoreError(RAGError):
    """The index refused a read or write."""


class StoreUnavailable(StoreError, Unavailable):
    """The Chroma server (``RAG_CHROMA_URL``) cannot be reached; retry once it is back."""


class EmbeddingMismatchError(StoreError):
    """The collection was built with another embedding model."""


class ModelError(RAGError):
    """A bundled model cannot be built or loaded."""


class EmbeddingServiceError(ModelError, Unavailable):
    """The remote embeddings server (``RAG_EMBEDDING__BASE_URL``) failed or is unreachable."""


class LLMError(Unavailable):
    """An LLM backend cannot be used (not installed, misconfigured, unreachable)."""


class GenerationTimeout(RAGError, TimeoutError):
    """The model exceeded its time budget (the chain falls back to the extractive answer)."""
