"""The embedder: bundled multilingual-e5-small by default, any sentence-transformers model by name,
or (``RAG_EMBEDDING__BASE_URL``) any OpenAI-compatible ``/v1/embeddings`` server.

Either way the e5 prompts (``query: `` / ``passage: ``) are added here, before the text leaves, and
the embedder's ``name`` is the configured model name: an index built through a server serves
queries embedded locally, and the other way round, as long as both run the same model.
"""

from __future__ import annotations

import base64
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
from langchain_core.embeddings import Embeddings

from rag.config import BUNDLED_EMBEDDING_MODEL, EmbeddingSettings
from rag.models import ModelError, build_e5

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class EmbeddingServiceError(ModelError):
    """The embeddings server (``RAG_EMBEDDING__BASE_URL``) failed or cannot be reached."""


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
        self.base_url = settings.base_url.rstrip("/") if settings.base_url else None

    @property
    def remote(self) -> bool:
        return self.base_url is not None

    @cached_property
    def _client(self) -> httpx.Client:
        headers = {}
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        return httpx.Client(
            headers=headers,
            timeout=self.settings.timeout_s,
            transport=httpx.HTTPTransport(retries=2),  # connection errors only
        )

    def _post_embeddings(self, texts: list[str]) -> np.ndarray:
        """One request in the OpenAI wire format; rows in input order, L2-normalized."""
        url = f"{self.base_url}/embeddings"
        body = {"input": texts, "model": self.name, "encoding_format": "float"}
        try:
            resp = self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise EmbeddingServiceError(f"embeddings server {url} unreachable: {exc}") from exc
        if resp.status_code != 200:
            raise EmbeddingServiceError(
                f"embeddings server {url} answered {resp.status_code}: {resp.text[:300]}"
            )
        try:
            data = sorted(resp.json()["data"], key=lambda d: int(d["index"]))
            rows = [_decode_vector(d["embedding"]) for d in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingServiceError(
                f"embeddings server {url}: malformed answer ({exc})"
            ) from exc
        if len(rows) != len(texts) or len({len(r) for r in rows}) > 1:
            raise EmbeddingServiceError(
                f"embeddings server {url}: {len(rows)} vectors of uneven size for {len(texts)} inputs"
            )
        out = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)

    def _remote_encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        parts = [
            self._post_embeddings(texts[i : i + batch_size])
            for i in range(0, len(texts), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

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
        if self.remote:
            return int(self._post_embeddings(["dimension"]).shape[1])
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ModelError(f"embedding model '{self.name}' does not declare its dimension")
        return int(dim)

    @cached_property
    def query_prompt(self) -> str:
        if self.settings.query_prompt is not None:
            return self.settings.query_prompt
        if self.remote:
            return _remote_prompts(self.name)[0]
        return str((self.model.prompts or {}).get("query", ""))

    @cached_property
    def passage_prompt(self) -> str:
        if self.settings.passage_prompt is not None:
            return self.settings.passage_prompt
        if self.remote:
            return _remote_prompts(self.name)[1]
        prompts = self.model.prompts or {}
        return str(prompts.get("passage", prompts.get("document", "")))

    def encode_passages(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.remote:
            prompt = self.passage_prompt
            return self._remote_encode([prompt + t for t in texts], batch_size or self.batch_size)
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
        if self.remote:
            return np.asarray(
                self._post_embeddings([self.query_prompt + text])[0], dtype=np.float32
            )
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

    def encode_raw(self, texts: list[str]) -> np.ndarray:
        """Texts embedded exactly as given (no prompt added): what ``POST /v1/embeddings`` serves."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.remote:
            return self._remote_encode(list(texts), self.batch_size)
        return np.asarray(
            self.model.encode(
                texts,
                prompt="",
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model sees (after truncation); 0 when a server does the embedding."""
        if self.remote:
            return 0
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return 0
        limit = self.model.get_max_seq_length() or 512
        return sum(min(len(tokenizer(t)["input_ids"]), limit) for t in texts)

    # LangChain Embeddings interface
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self.encode_passages(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.encode_query(text)]


def _remote_prompts(name: str) -> tuple[str, str]:
    """Query/passage prompts when a server embeds and no prompt is set: e5 models want theirs."""
    if "e5" in Path(name).name.lower():
        return "query: ", "passage: "
    return "", ""


def _decode_vector(value: object) -> list[float]:
    """A vector as a list of floats, or as base64 float32 (``encoding_format=base64``)."""
    if isinstance(value, str):
        return [float(x) for x in np.frombuffer(base64.b64decode(value), dtype="<f4")]
    if isinstance(value, list):
        return [float(x) for x in value]
    raise TypeError(f"embedding of type {type(value).__name__}")
