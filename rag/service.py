"""RAGService: the one object the CLI, the API and the harness call. Built from one ``Settings``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from rag.config import Settings
from rag.embeddings import Embedder
from rag.ingest import Ingestor, Progress
from rag.retrieval import HybridRetriever, SearchMode
from rag.schemas import DocumentInfo, Filters, IngestSummary, SearchHit
from rag.store import ChromaStore


class RAGService:
    """Owns the embedder, the store and the retriever; parts are built on first use."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(self.settings.embedding, self.settings.models_dir)

    @cached_property
    def store(self) -> ChromaStore:
        return ChromaStore(self.settings, self.embedder)

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.store, self.embedder, self.settings.chunking)

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

    def ingest_bytes(self, files: Sequence[tuple[str, bytes]]) -> IngestSummary:
        return self.ingestor.ingest_bytes(files)

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
