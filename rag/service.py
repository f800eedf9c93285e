"""RAGService: the one door the CLI, the API and the harness use. Built from one ``Settings``.

Its parts (embedder, store, chat models) are built on first use, or given to the constructor:
a test or a benchmark that already holds a loaded embedder passes it in instead of loading a
second copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from langchain_core.language_models.chat_models import BaseChatModel

from rag.chain import AnswerChain
from rag.config import LLMBackend, Settings
from rag.conversation import resolve
from rag.conversation import warm_up as warm_up_conversation
from rag.embeddings import Embedder
from rag.errors import LLMError, NotFound, Unsupported
from rag.facts import FactTable, facts_from_chunks
from rag.generation import ms_since
from rag.ingest import Ingestor, Progress
from rag.llm import make_chat_model
from rag.retrieval import HybridRetriever, SearchMode
from rag.schemas import (
    Answer,
    ChatEvent,
    DocumentInfo,
    DocumentText,
    DoneEvent,
    Fact,
    Filters,
    IngestSummary,
    PassagesEvent,
    Readiness,
    SearchHit,
    Turn,
)
from rag.store import ChromaStore

FiltersArg = Filters | Mapping[str, object] | None
HistoryArg = Sequence[Turn | Mapping[str, str]] | None


@dataclass(frozen=True)
class Embedded:
    """Texts embedded as given (no e5 prefix added), and the tokens they took."""

    vectors: np.ndarray
    tokens: int


def _filters(filters: FiltersArg) -> Filters | None:
    return Filters.model_validate(filters) if isinstance(filters, Mapping) else filters


def _turns(history: HistoryArg) -> list[Turn]:
    return [t if isinstance(t, Turn) else Turn.model_validate(t) for t in history or ()]


class RAGService:
    """Owns the embedder, the store, the retriever and the chat models of one index."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        store: ChromaStore | None = None,
        chat_models: Mapping[str, BaseChatModel | None] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._embedder = embedder
        self._store = store
        self._models: dict[str, BaseChatModel | None] = dict(chat_models or {})
        self._models_lock = threading.Lock()
        self._parts_lock = threading.Lock()
        self._catalog: tuple[int, list[DocumentInfo]] | None = None

    # -- parts -----------------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._parts_lock:
                if self._embedder is None:
                    self._embedder = Embedder(self.settings.embedding, self.settings.models_dir)
        return self._embedder

    @property
    def store(self) -> ChromaStore:
        if self._store is None:
            embedder = self.embedder
            with self._parts_lock:
                if self._store is None:
                    self._store = ChromaStore(self.settings, embedder)
        return self._store

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(
            self.store, self.embedder, self.settings.chunking, self.settings.ingest_group_chunks
        )

    @cached_property
    def retriever(self) -> HybridRetriever:
        return HybridRetriever.from_service_parts(
            store=self.store,
            embedder=self.embedder,
            index_dir=self.settings.data_dir / "lexical" / self.settings.collection,
            top_k=self.settings.answer.top_k,
        )

    def warm_up(self) -> None:
        """Load the embedder and open the index now rather than on the first request
        (raises ``Unavailable`` when a server they need is down)."""
        _ = self.embedder.dimension
        _ = self.store
        warm_up_conversation()

    def readiness(self) -> Readiness:
        """Whether the index and the embedder answer (raises what is down)."""
        return Readiness(chunks=self.store.count_chunks(), embedding_dim=self.embedder.dimension)

    # -- documents -------------------------------------------------------------------------------

    def ingest(
        self, paths: Sequence[Path], prune: bool = False, progress: Progress | None = None
    ) -> IngestSummary:
        return self.ingestor.ingest_paths(paths, prune=prune, progress=progress)

    def ingest_bytes(
        self, files: Iterable[tuple[str, bytes]], progress: Progress | None = None
    ) -> IngestSummary:
        return self.ingestor.ingest_bytes(files, progress=progress)

    def delete_document(self, doc_id: str) -> bool:
        return self.store.delete_document(doc_id)

    def documents(self) -> list[DocumentInfo]:
        return sorted(self.store.committed().values(), key=lambda d: d.source)

    def document(self, doc_id: str) -> DocumentText:
        """A committed document with its full original text (``NotFound`` if there is none)."""
        info = self.store.committed_document(doc_id)
        text = self.store.document_text(doc_id) if info is not None else None
        if info is None or text is None:
            raise NotFound(f"no document with doc_id '{doc_id}'")
        return DocumentText(**info.model_dump(), text=text)

    # -- search and embeddings -------------------------------------------------------------------

    def search(
        self,
        query: str,
        top_k: int | None = None,
        mode: SearchMode = "hybrid",
        filters: FiltersArg = None,
    ) -> list[SearchHit]:
        return self.retriever.search(
            query, top_k=top_k or self.settings.answer.top_k, mode=mode, filters=_filters(filters)
        )

    @property
    def embedding_model(self) -> str:
        return self.embedder.name

    @property
    def embedding_dim(self) -> int:
        return self.embedder.dimension

    def embed(self, texts: list[str]) -> Embedded:
        """Vectors of ``texts`` as given (a caller of e5 adds its own prefixes)."""
        return Embedded(self.embedder.encode_raw(texts), self.embedder.count_tokens(texts))

    # -- answers ---------------------------------------------------------------------------------

    @cached_property
    def fact_table(self) -> FactTable:
        return FactTable()

    def facts(self) -> list[Fact]:
        """Every indicator fact of the committed documents (reloaded when the index moves)."""
        return self.fact_table.get(
            self.store.version, lambda: facts_from_chunks(self.store.iter_chunks())
        )

    @cached_property
    def chain(self) -> AnswerChain:
        return AnswerChain(
            self.retriever,
            self.settings.answer,
            self.settings.llm.timeout_s,
            facts=self.facts,
            catalog=self.catalog,
        )

    def catalog(self) -> list[DocumentInfo]:
        """The committed documents, read again only when the index moves (the answer chain
        scopes a question to a year's or a place's documents with it)."""
        version = self.store.version
        if self._catalog is None or self._catalog[0] != version:
            self._catalog = (version, self.documents())
        return self._catalog[1]

    @property
    def default_backend(self) -> LLMBackend:
        return self.settings.llm.backend

    def chat_model(self, backend: LLMBackend | None = None) -> BaseChatModel | None:
        """The model of a backend (None for extractive), built once and shared.

        A backend that cannot be loaded raises ``LLMError`` (``Unavailable``) when it is the
        default, ``Unsupported`` when the caller asked for another than the default."""
        backend = backend or self.default_backend
        with self._models_lock:
            if backend not in self._models:
                llm = self.settings.llm.model_copy(update={"backend": backend})
                try:
                    self._models[backend] = make_chat_model(llm, self.settings.models_dir)
                except LLMError as exc:
                    if backend != self.default_backend:
                        raise Unsupported(
                            f"backend '{backend}' is not available here: {exc}"
                        ) from exc
                    raise LLMError(f"the LLM backend '{backend}' is not available: {exc}") from exc
            return self._models[backend]

    def stream_answer(
        self,
        question: str,
        backend: LLMBackend | None = None,
        top_k: int | None = None,
        filters: FiltersArg = None,
        history: HistoryArg = None,
    ) -> Iterator[ChatEvent]:
        """Events: passages (with the standalone question answered), token…, citations, facts
        (comparison answers), done. ``history``: the earlier turns, oldest first; a follow-up is
        answered as the standalone question they make of it (``rag.conversation``)."""
        model = self.chat_model(backend or self.default_backend)  # raises now, not mid-stream
        return self._answer_events(question, model, top_k, _filters(filters), _turns(history))

    def _answer_events(
        self,
        question: str,
        model: BaseChatModel | None,
        top_k: int | None,
        filters: Filters | None,
        history: list[Turn],
    ) -> Iterator[ChatEvent]:
        t0 = time.perf_counter()
        resolved = resolve(question, history)
        timings = {"resolve_ms": ms_since(t0)}
        standalone = resolved.standalone
        if resolved.followup and model is not None and self.settings.conversation.model_rewrite:
            standalone = self.chain.rewrite_followup(resolved, history, model) or standalone
            timings["rewrite_ms"] = ms_since(t0) - timings["resolve_ms"]
        for e in self.chain.stream(standalone, model, top_k, filters):
            if isinstance(e, PassagesEvent):
                e = e.model_copy(update={"standalone_question": standalone})
            elif isinstance(e, DoneEvent):
                e = DoneEvent(timings={**timings, **e.timings, "total_ms": ms_since(t0)})
            yield e

    def answer(
        self,
        question: str,
        backend: LLMBackend | None = None,
        top_k: int | None = None,
        filters: FiltersArg = None,
        history: HistoryArg = None,
    ) -> Answer:
        backend = backend or self.default_backend
        events = self.stream_answer(question, backend, top_k, filters, history)
        return Answer.from_events(events, backend)
