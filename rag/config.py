"""One settings object for the CLI, the API and the harness (env prefix ``RAG_``, nested with ``__``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_EMBEDDING_MODEL = "multilingual-e5-small"


def default_cache_dir() -> Path:
    """Where built model folders and compiled wheels live: outside the repo, shared by checkouts."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag-zh"


EmbeddingBackend = Literal["auto", "torch", "onnx-int8"]


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
    backend: EmbeddingBackend = Field(
        "auto",
        description=(
            "what runs the model locally: `torch` (fp32, sentence-transformers), `onnx-int8` "
            "(onnxruntime on an int8-quantized ONNX export of the bundled model, built once from "
            "its folder by `rag models install`; faster on a CPU, same hybrid recall@5: see "
            "docs/results.md), or `auto`: "
            "onnx-int8 for the bundled model, torch for any other; both embed alike, so an "
            "index serves either; unused with base_url"
        ),
    )
    base_url: str | None = Field(
        None,
        description=(
            "OpenAI-compatible embeddings server, e.g. http://host:8000/v1 (`POST /embeddings`); "
            "the model name stays RAG_EMBEDDING__MODEL, so an index works with either way"
        ),
    )
    api_key: SecretStr | None = Field(None, description="key for the embeddings server")
    timeout_s: float = Field(60.0, gt=0, description="per request to the embeddings server")


class ChunkingSettings(BaseModel):
    target_chars: int = Field(400, ge=50, description="pack sentences up to about this size")
    max_chars: int = Field(600, ge=80, description="hard ceiling; longer sentences are split")
    overlap_sentences: int = Field(1, ge=0, le=5)


LLMBackend = Literal["local", "openai", "extractive"]


class LLMSettings(BaseModel):
    backend: LLMBackend = Field(
        "local",
        description="local (GGUF via llama.cpp), openai (any compatible server), extractive",
    )
    model_path: Path | None = Field(
        None, description="a GGUF file for `local`; default: the bundled Qwen2.5-Coder-1.5B"
    )
    base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://host/v1")
    model: str = Field("default", description="model name sent to the OpenAI-compatible server")
    api_key: SecretStr | None = Field(None, description="key for the OpenAI-compatible server")
    threads: int = Field(2, ge=1, le=256, description="llama.cpp threads (keep ≤ free cores)")
    context_tokens: int = Field(4096, ge=512, le=32768, description="llama.cpp context size")
    max_tokens: int = Field(200, ge=16, le=4096, description="cap on generated tokens")
    lookup_tokens: int = Field(
        3,
        ge=0,
        le=64,
        description="`local`: prompt lookup decoding, at most this many tokens copied from the "
        "prompt as a draft per step and verified in one batch (same greedy tokens); 0 = off",
    )
    timeout_s: float = Field(60.0, gt=0, description="past this, the extractive answer is used")


# Passages per question or search, where a caller says nothing (RAG_ANSWER__TOP_K).
DEFAULT_TOP_K = 5


class AnswerSettings(BaseModel):
    top_k: int = Field(
        DEFAULT_TOP_K, ge=1, le=50, description="passages retrieved per question or search"
    )
    context_passages: int = Field(4, ge=1, le=20, description="excerpts numbered in the prompt")
    excerpt_sentences: int = Field(2, ge=1, le=10, description="sentences per excerpt, at most")
    min_excerpt_share: float = Field(
        0.3, ge=0, le=1, description="excerpts scoring below this share of the best are left out"
    )
    excerpt_chars: int = Field(
        160, ge=40, le=2000, description="an excerpt longer than this keeps its best clauses"
    )
    remove_unverified: bool = Field(
        False, description="drop answer sentences whose numbers are not in their cited passages"
    )


class IngestLimits(BaseModel):
    """Work one file may cost, checked before that work is done; past one the file fails with
    the limit named (the index as it was, the other files still go in)."""

    max_chars: int = Field(
        2_000_000, ge=1, description="characters of text one file may hold, once extracted"
    )
    max_pdf_pages: int = Field(1_000, ge=1, description="pages of one PDF")
    max_html_depth: int = Field(1_000, ge=1, description="nesting of the elements of one HTML file")
    max_unpacked_bytes: int = Field(
        100 * 1024 * 1024, ge=1, description="bytes one DOCX (a zip) may unpack to"
    )
    max_parts: int = Field(5_000, ge=1, description="parts (zip members) of one DOCX")


class ConversationSettings(BaseModel):
    max_turns: int = Field(
        20, ge=0, le=200, description="earlier turns a request may send as history (more: 422)"
    )
    max_turn_chars: int = Field(
        4000, ge=10, description="characters per history turn (longer: 422)"
    )
    model_rewrite: bool = Field(
        False,
        description="with a model backend, let the model rewrite a follow-up that has a cue "
        "(kept only if it keeps the inherited place/year/topic and adds no figure)",
    )


class KBSettings(BaseModel):
    max_open: int = Field(
        8,
        ge=1,
        le=10_000,
        description="knowledge bases held open (lexical index, facts) besides the default one; "
        "the least recently used beyond this are released, and reopened on their next use",
    )
    idle_s: float = Field(
        900.0, gt=0, description="a knowledge base unused this long is released (seconds)"
    )


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
    ingest_group_chunks: int = Field(
        1024,
        ge=1,
        description="chunks read, embedded and committed together: memory and resume granularity",
    )
    limits: IngestLimits = Field(default_factory=lambda: IngestLimits())
    api_keys: str = Field(
        "",
        description="comma-separated API keys with full access; empty (and no keys file) = no key needed",
    )
    api_keys_file: Path | None = Field(
        None,
        description="TOML file of named keys, each with the knowledge bases it may read and "
        "write, or admin (README: Knowledge bases and keys)",
    )
    max_question_chars: int = Field(2000, ge=10, description="longer questions are a 422")
    max_upload_bytes: int = Field(20_000_000, ge=1, description="larger uploads are a 413")
    ingest_async_bytes: int = Field(
        1_000_000,
        ge=0,
        description="an upload larger than this (its files together) is answered at once with "
        "202 and an ingest job to follow (GET /v1/jobs/{id}); 0 = every upload",
    )
    rate_limit: int = Field(
        0, ge=0, description="requests per minute per API key (or client address); 0 = off"
    )
    max_concurrent: int = Field(
        0, ge=0, description="chat requests answered at once, more get a 429; 0 = off"
    )
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS")
    llm: LLMSettings = Field(default_factory=lambda: LLMSettings())
    answer: AnswerSettings = Field(default_factory=lambda: AnswerSettings())
    conversation: ConversationSettings = Field(default_factory=lambda: ConversationSettings())
    kb: KBSettings = Field(default_factory=lambda: KBSettings())

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"
