"""Hybrid retrieval: dense (Chroma) + lexical (BM25), fused by reciprocal rank, as a LangChain retriever."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.embeddings import Embedder
from rag.ingest import index_text
from rag.lexical import LexicalIndexCache
from rag.schemas import Filters, SearchHit
from rag.store import ChromaStore, StoredChunk
from rag.text import normalize

SearchMode = Literal["hybrid", "dense", "bm25"]
RRF_K = 60


def rrf(rankings: list[list[str]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion: each list adds 1/(k + rank) to the ids it ranks (rank from 1)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, start=1):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (k + rank)
    return fused


class HybridRetriever(BaseRetriever):
    """Dense top-n and BM25 top-n, fused by RRF, cut to ``top_k``; filters apply to both sides."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: Any
    embedder: Any
    lexical: Any
    top_k: int = 5
    mode: SearchMode = "hybrid"
    depth: int = 30  # candidates taken from each side before fusion

    @classmethod
    def from_service_parts(
        cls, store: ChromaStore, embedder: Embedder, index_dir: Path, **kwargs: Any
    ) -> HybridRetriever:
        return cls(store=store, embedder=embedder, lexical=LexicalIndexCache(index_dir), **kwargs)

    # -- the two sides ---------------------------------------------------------------------------

    def dense(self, query: str, n: int, filters: Filters | None) -> list[tuple[StoredChunk, float]]:
        vector = self.embedder.encode_query(normalize(query))
        where = filters.to_where() if filters else None
        return list(self.store.query(vector, n, where=where))

    def bm25(self, query: str, n: int, filters: Filters | None) -> list[tuple[StoredChunk, float]]:
        store: ChromaStore = self.store
        index = self.lexical.get(
            store.version,
            lambda: (
                (c.id, index_text(str(c.metadata.get("title", "")), c.text))
                for c in store.iter_chunks()
            ),
        )
        scores = index.scores(query)
        if scores.size == 0:
            return []
        # Over-fetch when filtering: the filter is applied to the best-scoring candidates.
        take = n if filters is None else max(n * 10, 200)
        top = [int(i) for i in np.argsort(-scores, kind="stable")[:take] if scores[i] > 0]
        chunks = store.get_chunks([index.ids[i] for i in top])
        out = [
            (chunks[index.ids[i]], float(scores[i]))
            for i in top
            if index.ids[i] in chunks
            and (filters is None or filters.matches(chunks[index.ids[i]].metadata))
        ]
        return out[:n]

    # -- fused -----------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        top_k: int | None = None,
        mode: SearchMode | None = None,
        filters: Filters | dict[str, Any] | None = None,
    ) -> list[SearchHit]:
        k = top_k or self.top_k
        mode = mode or self.mode
        f = Filters.model_validate(filters) if isinstance(filters, dict) else filters
        depth = max(self.depth, k)
        dense = self.dense(query, depth, f) if mode in ("hybrid", "dense") else []
        lexical = self.bm25(query, depth, f) if mode in ("hybrid", "bm25") else []
        by_id = {c.id: c for c, _ in dense} | {c.id: c for c, _ in lexical}
        dense_scores = {c.id: s for c, s in dense}
        bm25_scores = {c.id: s for c, s in lexical}
        if mode == "dense":
            ranked = [(c.id, s) for c, s in dense]
        elif mode == "bm25":
            ranked = [(c.id, s) for c, s in lexical]
        else:
            fused = rrf([[c.id for c, _ in dense], [c.id for c, _ in lexical]])
            ranked = sorted(fused.items(), key=lambda kv: -kv[1])
        return [
            _hit(by_id[cid], score, dense_scores.get(cid), bm25_scores.get(cid))
            for cid, score in ranked[:k]
        ]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        return [
            LCDocument(
                page_content=h.text, metadata=h.model_dump(exclude={"text"}, exclude_none=True)
            )
            for h in self.search(query)
        ]


def _hit(c: StoredChunk, score: float, dense: float | None, bm25: float | None) -> SearchHit:
    m = c.metadata
    return SearchHit(
        text=c.text,
        doc_id=str(m["doc_id"]),
        source=str(m["source"]),
        title=str(m["title"]),
        date=m.get("date"),
        region=m.get("region"),
        start=int(m["start"]),
        end=int(m["end"]),
        score=score,
        dense_score=dense,
        bm25_score=bm25,
    )
