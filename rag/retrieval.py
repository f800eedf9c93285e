"""Hybrid retrieval: dense (Chroma) + lexical (BM25), fused by reciprocal rank, as a LangChain retriever."""

from __future__ import annotations

import re
from typing import Any, Literal, Protocol

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.config import DEFAULT_TOP_K
from rag.lexical import LexicalIndex, Words
from rag.schemas import Filters, SearchHit
from rag.store import ChromaStore, StoredChunk, doc_id_of
from rag.text import normalize

SearchMode = Literal["hybrid", "dense", "bm25"]
RRF_K = 60


def rrf(
    rankings: list[list[str]], k: int = RRF_K, weights: list[float] | None = None
) -> dict[str, float]:
    """Reciprocal rank fusion: list i adds weights[i]/(k + rank) to the ids it ranks (rank from 1)."""
    fused: dict[str, float] = {}
    for i, ranking in enumerate(rankings):
        w = 1.0 if weights is None else weights[i]
        for rank, cid in enumerate(ranking, start=1):
            fused[cid] = fused.get(cid, 0.0) + w / (k + rank)
    return fused


# Comparison, ranking and aggregation questions need evidence from several documents: a
# superlative or ranking, "each place", "which places", or a span of years (one report a year).
# A bare "which"/"哪个" asks for one thing (``与哪个教会合并``), often answered by one document:
# spreading its top places over other documents would push that document's answering passage out
# (seen on the CMRC2018 dev set).
_COMPARISON = re.compile(
    r"最多|最少|最高|最低|最大|最小|排名|排序|比较|比較|对比|對比|各地|各市|各省|各县|各縣|各区|各區|"
    r"哪些(?:地方|城市|地区|地區|省|市|县|縣|区|區|国家|國家)|历年|歷年|各年|"
    r"\d{4}\s*年?\s*(?:至|到|—|–|-|~|～)\s*\d{4}\s*年|"
    r"\b(compare|comparison|rank|ranking|most|least|highest|lowest|which (?:cities|places|regions|countries)"
    r"|(?:from|between) \d{4} (?:to|and) \d{4})\b",
    re.IGNORECASE,
)


def is_comparison(question: str) -> bool:
    return bool(_COMPARISON.search(question))


def diversify(ranked: list[str], doc_of: dict[str, str], per_doc: int) -> list[str]:
    """Re-rank so that no document holds more than ``per_doc`` of the leading places; the rest
    keep their order behind (nothing is dropped)."""
    lead: list[str] = []
    rest: list[str] = []
    count: dict[str, int] = {}
    for cid in ranked:
        d = doc_of[cid]
        if count.get(d, 0) < per_doc:
            lead.append(cid)
            count[d] = count.get(d, 0) + 1
        else:
            rest.append(cid)
    return lead + rest


class Retriever(Protocol):
    """What the answer chain searches: one knowledge base's ``HybridRetriever``, or several as
    one (``rag.kbs.Spanning``)."""

    def search(
        self,
        query: str,
        top_k: int | None = None,
        mode: SearchMode | None = None,
        filters: Filters | dict[str, Any] | None = None,
    ) -> list[SearchHit]: ...

    def lexical_index(self) -> Words: ...


class HybridRetriever(BaseRetriever):
    """Dense top-n and BM25 top-n, fused by RRF, cut to ``top_k``; filters apply to both sides."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: Any
    embedder: Any
    # () -> LexicalIndex: the lexical index current with the store (``rag.segments``)
    lexical: Any
    top_k: int = DEFAULT_TOP_K  # the service passes settings.answer.top_k
    mode: SearchMode = "hybrid"
    depth: int = 30  # candidates taken from each side before fusion
    # BM25 leads, dense breaks ties and rescues lexical misses: on Chinese text, word matches are
    # the stronger signal for this small embedder (tuned on the seed and CMRC2018 dev sets).
    dense_weight: float = 0.3
    bm25_weight: float = 1.0
    per_doc: int = 1  # for comparison questions: leading passages per document
    kb: str | None = None  # the knowledge base searched, named on every hit

    # -- the two sides ---------------------------------------------------------------------------

    # Both sides rank chunk ids; text and metadata are read only for the hits returned. The
    # lexical index is also the snapshot of what is committed: it holds exactly the committed
    # chunks of the store version it was built from. A dense candidate counts only when that
    # index holds it (a writer's chunks land before its commit record, and a replaced version's
    # chunks stay until its commit is done).

    def dense(
        self, query: str, n: int, filters: Filters | None, index: LexicalIndex
    ) -> list[tuple[str, float]]:
        vector = self.embedder.encode_query(normalize(query))
        store: ChromaStore = self.store
        return [(cid, s) for cid, s in store.nearest(vector, n, filters) if index.holds(cid)]

    def lexical_index(self) -> LexicalIndex:
        """The BM25 index, current with the store (caught up if another writer moved it)."""
        index: LexicalIndex = self.lexical()
        return index

    def bm25(
        self, query: str, n: int, filters: Filters | None, index: LexicalIndex
    ) -> list[tuple[str, float]]:
        if filters is None:
            return index.top(query, n)
        # The filter is applied to the best-scoring candidates, over-fetched.
        top = index.top(query, max(n * 10, 200))
        store: ChromaStore = self.store
        meta = store.get_metadata([cid for cid, _ in top])
        return [(cid, s) for cid, s in top if cid in meta and filters.matches(meta[cid])][:n]

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
        index = self.lexical_index()
        dense = self.dense(query, depth, f, index) if mode in ("hybrid", "dense") else []
        lexical = self.bm25(query, depth, f, index) if mode in ("hybrid", "bm25") else []
        dense_scores = dict(dense)
        bm25_scores = dict(lexical)
        if mode == "dense":
            ranked = dense
        elif mode == "bm25":
            ranked = lexical
        else:
            fused = rrf(
                [[cid for cid, _ in dense], [cid for cid, _ in lexical]],
                weights=[self.dense_weight, self.bm25_weight],
            )
            ranked = sorted(fused.items(), key=lambda kv: -kv[1])
        if is_comparison(query):
            order = diversify(
                [cid for cid, _ in ranked], {cid: doc_id_of(cid) for cid, _ in ranked}, self.per_doc
            )
            scores = dict(ranked)
            ranked = [(cid, scores[cid]) for cid in order]
        store: ChromaStore = self.store
        chunks = store.get_chunks([cid for cid, _ in ranked[:k]])
        return [
            _hit(chunks[cid], score, dense_scores.get(cid), bm25_scores.get(cid), self.kb)
            for cid, score in ranked[:k]
            if cid in chunks  # unless a writer deleted it since
        ]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[LCDocument]:
        """LangChain entry point; ``top_k``, ``mode`` and ``filters`` may be given per call."""
        return [
            LCDocument(
                page_content=h.text, metadata=h.model_dump(exclude={"text"}, exclude_none=True)
            )
            for h in self.search(
                query, kwargs.get("top_k"), kwargs.get("mode"), kwargs.get("filters")
            )
        ]


def _hit(
    c: StoredChunk, score: float, dense: float | None, bm25: float | None, kb: str | None
) -> SearchHit:
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
        section=m.get("section"),
        score=score,
        dense_score=dense,
        bm25_score=bm25,
        kb=kb,
    )
