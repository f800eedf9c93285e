"""RAGService: the one object the CLI, the API and the harness call. Built from one ``Settings``."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path

from langchain_core.language_models.chat_models import BaseChatModel

from rag.chain import AnswerChain, collect
from rag.config import LLMBackend, Settings
from rag.embeddings import Embedder
from rag.facts import FactTable, facts_from_chunks
from rag.ingest import Ingestor, Progress
from rag.llm import make_chat_model
from rag.retrieval import HybridRetriever, SearchMode
from rag.schemas import (
    Answer,
    ChatEvent,
    DocumentInfo,
    Fact,
    Filters,
    IngestSummary,
    SearchHit,
)
from rag.store import ChromaStore


class RAGService:
    """Owns the embedder, the store and the retriever; parts are built on first use."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._models: dict[str, BaseChatModel | None] = {}
        self._models_lock = threading.Lock()

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(self.settings.embedding, self.settings.models_dir)

    @cached_property
    def store(self) -> ChromaStore:
        return ChromaStore(self.settings, self.embedder)

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
        )

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

    def search(
        self,
        query: str,
        top_k: int = 5,
        mode: SearchMode = "hybrid",
        filters: Filters | dict[str, object] | None = None,
    ) -> list[SearchHit]:
        return self.retriever.search(query, top_k=top_k, mode=mode, filters=filters)

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
            self.retriever, self.settings.answer, self.settings.llm.timeout_s, facts=self.facts
        )

    def chat_model(self, backend: LLMBackend | None = None) -> BaseChatModel | None:
        """The model of a backend (None for extractive), built once and shared."""
        backend = backend or self.settings.llm.backend
        with self._models_lock:
            if backend not in self._models:
                llm = self.settings.llm.model_copy(update={"backend": backend})
                self._models[backend] = make_chat_model(llm, self.settings.models_dir)
            return self._models[backend]

    def stream_answer(
        self,
        question: str,
        backend: LLMBackend | None = None,
        top_k: int | None = None,
        filters: Filters | dict[str, object] | None = None,
    ) -> Iterator[ChatEvent]:
        """Events: passages, token…, citations, facts (comparison answers), done."""
        backend = backend or self.settings.llm.backend
        f = Filters.model_validate(filters) if isinstance(filters, dict) else filters
        return self.chain.stream(question, self.chat_model(backend), backend, top_k, f)

    def answer(
        self,
        question: str,
        backend: LLMBackend | None = None,
        top_k: int | None = None,
        filters: Filters | dict[str, object] | None = None,
    ) -> Answer:
        backend = backend or self.settings.llm.backend
        return collect(self.stream_answer(question, backend, top_k, filters), backend)
