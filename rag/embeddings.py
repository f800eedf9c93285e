"""The sentence-transformers embedder: bundled multilingual-e5-small by default, any ST model by name."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.config import BUNDLED_EMBEDDING_MODEL, EmbeddingSettings
from rag.models import ModelError, build_e5

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def resolve_model_path(name: str, models_dir: Path) -> str:
    """The bundled alias builds (once) its folder; a path is used as is; else a cached hub name."""
    if name == BUNDLED_EMBEDDING_MODEL:
        return str(build_e5(models_dir))
    return name


class Embedder(Embeddings):
    """Normalized embeddings with the model's query/passage prompts (``query: `` / ``passage: ``).

    Also a LangChain ``Embeddings``, so LangChain components can share the very same model.
    """

    def __init__(self, settings: EmbeddingSettings, models_dir: Path) -> None:
        self.settings = settings
        self.models_dir = models_dir
        self.name = settings.model
        self.batch_size = settings.batch_size

    @cached_property
    def model(self) -> SentenceTransformer:
        """Loaded on first use: listing or re-ingesting unchanged files needs no model."""
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        # Never reach a model hub: a name must already be in the local cache.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = resolve_model_path(self.settings.model, self.models_dir)
        try:
            return SentenceTransformer(path, device=self.settings.device, local_files_only=True)
        except OSError as exc:
            raise ModelError(
                f"embedding model '{self.settings.model}' is not available offline: give a "
                f"local sentence-transformers folder in RAG_EMBEDDING__MODEL ({exc})"
            ) from exc

    @cached_property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ModelError(f"embedding model '{self.name}' does not declare its dimension")
        return int(dim)

    @cached_property
    def query_prompt(self) -> str:
        if self.settings.query_prompt is not None:
            return self.settings.query_prompt
        return str((self.model.prompts or {}).get("query", ""))

    @cached_property
    def passage_prompt(self) -> str:
        if self.settings.passage_prompt is not None:
            return self.settings.passage_prompt
        prompts = self.model.prompts or {}
        return str(prompts.get("passage", prompts.get("document", "")))

    def encode_passages(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(
            self.model.encode(
                texts,
                prompt=self.passage_prompt,
                batch_size=batch_size or self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )

    def encode_query(self, text: str) -> np.ndarray:
        return np.asarray(
            self.model.encode(
                [text],
                prompt=self.query_prompt,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )[0],
            dtype=np.float32,
        )

    # LangChain Embeddings interface
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self.encode_passages(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.encode_query(text)]
