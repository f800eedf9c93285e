"""The embedder: bundled multilingual-e5-small by default, any sentence-transformers model by name,
or (``RAG_EMBEDDING__BASE_URL``) any OpenAI-compatible ``/v1/embeddings`` server.

Locally, one of two encoders runs the model (``RAG_EMBEDDING__BACKEND``): ``torch`` (fp32,
sentence-transformers) or ``onnx-int8`` (onnxruntime on an int8-quantized ONNX export of the same
bundled folder, see ``rag.models.build_e5_onnx``). Both give the same kind of vectors (normalized
mean-pooled token embeddings of ``prompt + text``), so they share an index.

Either way the e5 prompts (``query: `` / ``passage: ``) are added here, before the text leaves, and
the embedder's ``name`` is the configured model name: an index built through a server serves
queries embedded locally, and the other way round, as long as both run the same model.
"""

from __future__ import annotations

import base64
import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import numpy as np
from langchain_core.embeddings import Embeddings

from rag.bundled.e5 import build_e5
from rag.bundled.e5_onnx import ONNX_INT8, build_e5_onnx
from rag.config import BUNDLED_EMBEDDING_MODEL, EmbeddingSettings
from rag.errors import EmbeddingServiceError as EmbeddingServiceError  # re-exported
from rag.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def resolve_model_path(name: str, models_dir: Path) -> str:
    """The bundled alias builds (once) its folder; a path is used as is; else a cached hub name."""
    if name == BUNDLED_EMBEDDING_MODEL:
        return str(build_e5(models_dir))
    return name


class LocalEncoder(Protocol):
    """A loaded model: L2-normalized float32 embeddings of ``prompt + text``, in input order."""

    prompts: dict[str, str]
    dimension: int

    def encode(self, texts: list[str], prompt: str, batch_size: int) -> np.ndarray: ...

    def count_tokens(self, texts: list[str]) -> int: ...


class TorchEncoder:
    """A sentence-transformers model (fp32 torch)."""

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model
        self.prompts = {str(k): str(v) for k, v in (model.prompts or {}).items()}
        dim = model.get_embedding_dimension()
        if dim is None:
            raise ModelError("the embedding model does not declare its dimension")
        self.dimension = int(dim)

    def encode(self, texts: list[str], prompt: str, batch_size: int) -> np.ndarray:
        return np.asarray(
            self.model.encode(
                texts,
                prompt=prompt,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )

    def count_tokens(self, texts: list[str]) -> int:
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return 0
        limit = self.model.get_max_seq_length() or 512
        return sum(min(len(tokenizer(t)["input_ids"]), limit) for t in texts)


class OnnxEncoder:
    """onnxruntime on an exported folder (``rag.models.build_e5_onnx``), doing what the
    sentence-transformers folder's modules do: tokenize (truncated to ``max_seq_length``), run the
    transformer, mean-pool over the attention mask, L2-normalize. No torch is imported."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        pooling = _read_json(folder / "1_Pooling" / "config.json")
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ModelError(f"{folder}: only mean pooling is supported by the ONNX encoder")
        self.dimension = int(pooling["word_embedding_dimension"])
        self.max_length = int(_read_json(folder / "sentence_bert_config.json")["max_seq_length"])
        prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
        self.prompts = {str(k): str(v) for k, v in prompts.items()}
        pad = str(_read_json(folder / "special_tokens_map.json")["pad_token"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad), pad_token=pad)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(
            str(folder / ONNX_INT8), options, providers=["CPUExecutionProvider"]
        )

    def _batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)  # padded to the longest in the batch
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def encode(self, texts: list[str], prompt: str, batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i in range(0, len(texts), batch_size):
            ids, mask = self._batch([prompt + t for t in texts[i : i + batch_size]])
            tokens = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[i : i + batch_size] = pooled / np.maximum(norms, 1e-12)
        return out

    def count_tokens(self, texts: list[str]) -> int:
        return sum(int(self._batch([t])[1].sum()) for t in texts)


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data


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

    @property
    def backend(self) -> str:
        """What computes the vectors: ``remote``, ``torch`` or ``onnx-int8``."""
        if self.remote:
            return "remote"
        if self.settings.backend == "auto":
            return "onnx-int8" if self.settings.model == BUNDLED_EMBEDDING_MODEL else "torch"
        return self.settings.backend

    @cached_property
    def encoder(self) -> LocalEncoder:
        """Loaded on first use: listing or re-ingesting unchanged files needs no model."""
        # Never reach a model hub: a name must already be in the local cache.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if self.backend == "onnx-int8":
            if self.settings.model != BUNDLED_EMBEDDING_MODEL:
                raise ModelError(
                    f"the onnx-int8 backend exists for the bundled {BUNDLED_EMBEDDING_MODEL} "
                    f"only, not '{self.settings.model}': set RAG_EMBEDDING__BACKEND=torch"
                )
            return OnnxEncoder(build_e5_onnx(self.models_dir))
        return TorchEncoder(self._sentence_transformer())

    def _sentence_transformer(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
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
        return self.encoder.dimension

    @cached_property
    def query_prompt(self) -> str:
        if self.settings.query_prompt is not None:
            return self.settings.query_prompt
        if self.remote:
            return _remote_prompts(self.name)[0]
        return self.encoder.prompts.get("query", "")

    @cached_property
    def passage_prompt(self) -> str:
        if self.settings.passage_prompt is not None:
            return self.settings.passage_prompt
        if self.remote:
            return _remote_prompts(self.name)[1]
        prompts = self.encoder.prompts
        return prompts.get("passage", prompts.get("document", ""))

    def _encode(self, texts: list[str], prompt: str, batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.remote:
            return self._remote_encode([prompt + t for t in texts], batch_size)
        return self.encoder.encode(texts, prompt, batch_size)

    def encode_passages(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        return self._encode(list(texts), self.passage_prompt, batch_size or self.batch_size)

    def encode_query(self, text: str) -> np.ndarray:
        return np.asarray(self._encode([text], self.query_prompt, 1)[0], dtype=np.float32)

    def encode_raw(self, texts: list[str]) -> np.ndarray:
        """Texts embedded exactly as given (no prompt added): what ``POST /v1/embeddings`` serves."""
        return self._encode(list(texts), "", self.batch_size)

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model sees (after truncation); 0 when a server does the embedding."""
        if self.remote:
            return 0
        return self.encoder.count_tokens(texts)

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
