"""One settings object for the CLI, the API and the harness (env prefix ``RAG_``, nested with ``__``)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_EMBEDDING_MODEL = "multilingual-e5-small"


def default_cache_dir() -> Path:
    """Where built model folders and compiled wheels live: outside the repo, shared by checkouts."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag-zh"


class EmbeddingSettings(BaseModel):
    model: str = Field(
        BUNDLED_EMBEDDING_MODEL,
        description=(
            "`multilingual-e5-small` (bundled, built from Python packages), a local "
            "sentence-transformers folder, or a model name already in the local HF cache"
        ),
    )
    query_prompt: str | None = Field(
        None, description="prefix for queries; default: the model's own `query` prompt"
    )
    passage_prompt: str | None = Field(
        None, description="prefix for passages; default: the model's own `passage` prompt"
    )
    batch_size: int = Field(32, ge=1, le=1024)
    device: str = "cpu"


class ChunkingSettings(BaseModel):
    target_chars: int = Field(400, ge=50, description="pack sentences up to about this size")
    max_chars: int = Field(600, ge=80, description="hard ceiling; longer sentences are split")
    overlap_sentences: int = Field(1, ge=0, le=5)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_nested_delimiter="__", extra="ignore", env_file=".env"
    )

    data_dir: Path = Field(Path(".rag"), description="index and state of this installation")
    cache_dir: Path = Field(
        default_factory=default_cache_dir, description="built models and wheels (outside the repo)"
    )
    chroma_url: str | None = Field(
        None, description="http://host:port of a Chroma server; unset = embedded folder"
    )
    collection: str = Field("documents", pattern=r"^[a-zA-Z0-9._-]{3,512}$")
    embedding: EmbeddingSettings = Field(default_factory=lambda: EmbeddingSettings())
    chunking: ChunkingSettings = Field(default_factory=lambda: ChunkingSettings())

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"
