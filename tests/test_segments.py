"""The committed documents kept in segments (``rag.segments``): BM25 exactly as bm25s built
afresh, a catch-up that reads only what was committed since, deletions at once, background
merges readers do not wait for, pieces shared through the data dir, and queries answered from the
committed state while a large ingest is under way. Real Chroma, real embedder."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
import pytest

from rag.lexical import Segment, tokenize
from rag.schemas import Chunk, Document, IngestResult
from rag.service import RAGService
from rag.text import index_text
from tests.conftest import service_copy

QUERIES = [
    "延吉市信访总量下降",
    "龙港市常住人口",
    "城阳区社会治理",
    "地区生产总值增长",
    "青禾市来访",
]


def _doc(name: str, body: str) -> tuple[str, bytes]:
    return name, body.encode()


def _scores(service: RAGService, query: str) -> dict[str, np.float32]:
    index = service.kb().retriever.lexical_index()
    scores = index.scores(query)
    return {
        index.chunk_id(i): scores[i] for i in range(scores.size) if index.holds(index.chunk_id(i))
    }


def _bm25s_scores(service: RAGService, query: str) -> dict[str, np.float32]:
    """The oracle: bm25s itself, built now over the committed chunks' stored tokens."""
    chunks = list(service.store.iter_chunks())
    ref = bm25s.BM25()
    ref.index([str(c.metadata["tokens"]).split() for c in chunks], show_progress=False)
    tokens = service.kb().retriever.lexical_index().known_tokens(tokenize(query))
    values = ref.get_scores(tokens) if tokens else np.zeros(len(chunks), dtype=np.float32)
    return {c.id: np.float32(v) for c, v in zip(chunks, values, strict=True)}


@pytest.fixture
def grown(fresh: RAGService, seeds_dir: Path) -> RAGService:
    """The seeds, then documents added one at a time, one replaced and one deleted, each
    followed by a query: several pieces, some of their documents gone."""
    fresh.ingest([seeds_dir])
    fresh.search("信访")
    for i, body in enumerate(
        ["青禾市来访同比下降12%。", "青禾市常住人口31万人。", "白川县来信下降8%。"]
    ):
        fresh.ingest_bytes([_doc(f"extra_{i}.txt", body)])
        fresh.search("青禾市")
    fresh.ingest_bytes([_doc("extra_1.txt", "青禾市常住人口32.5万人，城镇化率61%。")])
    fresh.search("青禾市")
    assert fresh.delete_document("extra_2")
    first = fresh.documents()[0].doc_id
    assert fresh.delete_document(first)
    return fresh


def test_scores_are_those_of_bm25s_built_afresh_before_and_after_a_merge(
    grown: RAGService,
) -> None:
    segments = grown.kb().segments
    snap = segments.snapshot()
    assert len(snap.pieces) >= 4 and snap.state.gone  # pieces, and documents gone from them
    for q in QUERIES:
        assert _scores(grown, q) == _bm25s_scores(grown, q), q

    assert segments.merge(everything=True)
    merged = segments.snapshot()
    assert len(merged.pieces) == 1 and not merged.state.gone
    assert sorted(p.name for p in segments.folder.glob("piece-*")) == [merged.pieces[0].name]
    for q in QUERIES:
        assert _scores(grown, q) == _bm25s_scores(grown, q), q
    assert {d.doc_id for d in grown.kb().catalog()} == {d.doc_id for d in grown.documents()}


def test_a_catch_up_reads_only_what_was_committed_since(fresh: RAGService, seeds_dir: Path) -> None:
    fresh.ingest([seeds_dir])
    fresh.search("信访")
    segments = fresh.kb().segments
    before = dict(segments.stats)
    summary = fresh.ingest_bytes([_doc("qinghe.txt", "青禾市来访同比下降12%。青禾市来信下降3%。")])
    hits = fresh.search("青禾市来访", mode="bm25")
    assert hits[0].doc_id == "qinghe"
    assert segments.stats["catch_ups"] == before["catch_ups"] + 1
    assert segments.stats["chunks_read"] - before["chunks_read"] == summary.documents[0].chunks


def test_every_chunk_keeps_its_tokens_from_ingest(seeded: RAGService) -> None:
    for c in seeded.store.iter_chunks():
        m = c.metadata
        assert m["tokens"].split() == tokenize(index_text(m["title"], m.get("region"), c.text))


def test_a_deleted_document_is_gone_from_the_lexical_side_at_once(fresh: RAGService) -> None:
    fresh.ingest_bytes([_doc("qinghe.txt", "青禾市2031年来访同比下降37.5%，集体访下降41%。")])
    fresh.ingest_bytes([_doc("baichuan.txt", "白川县2031年来信同比下降8%。")])
    assert fresh.search("青禾市来访", mode="bm25")[0].doc_id == "qinghe"
    index = fresh.kb().retriever.lexical_index()
    assert index.knows("青禾") and index.size == 2

    assert fresh.delete_document("qinghe")
    for mode in ("bm25", "dense", "hybrid"):
        assert "qinghe" not in {h.doc_id for h in fresh.search("青禾市来访", mode=mode)}, mode
    index = fresh.kb().retriever.lexical_index()
    assert not index.knows("青禾") and index.df("青禾") == 0 and index.size == 1
    assert [d.doc_id for d in fresh.kb().catalog()] == ["baichuan"]
    assert all(f.doc_id != "qinghe" for f in fresh.kb().facts())
    assert fresh.answer("青禾市2031年来访同比下降了多少?", backend="extractive").refused


def test_queries_do_not_wait_for_a_merge(
    grown: RAGService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge under way holds no lock a reader needs: while it is stopped halfway, searches,
    answers and a catch-up after an ingest all go on from the state they have."""
    segments = grown.kb().segments
    started, release = threading.Event(), threading.Event()
    real = Segment.merged

    def gated(parts: Sequence[tuple[Segment, np.ndarray | None]]) -> object:
        started.set()
        assert release.wait(60)
        return real(parts)

    monkeypatch.setattr(Segment, "merged", staticmethod(gated))
    merging = threading.Thread(target=segments.merge, args=(True,))
    merging.start()
    try:
        assert started.wait(60)
        grown.ingest_bytes([_doc("baiyun.txt", "白云市来访同比下降21%。")])
        assert grown.search("白云市来访", mode="bm25")[0].doc_id == "baiyun"
        assert not grown.answer("白云市来访同比下降了多少?", backend="extractive").refused
    finally:
        release.set()
        merging.join(60)
    # the merge began before the ingest: it is published with the new piece beside it
    snap = segments.snapshot()
    assert len(snap.pieces) == 2
    assert grown.search("白云市来访", mode="bm25")[0].doc_id == "baiyun"
    for q in [*QUERIES, "白云市来访"]:
        assert _scores(grown, q) == _bm25s_scores(grown, q), q


class _Paused:
    """An ingest progress that stops the ingest once ``at`` chunks are embedded, until released."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.done = 0
        self.paused = threading.Event()
        self.resume = threading.Event()

    def add_total(self, chunks: int) -> None:
        pass

    def advance(self, chunks: int) -> None:
        before, self.done = self.done, self.done + chunks
        if before < self.at <= self.done:
            self.paused.set()
            assert self.resume.wait(120)

    def finished(self, results: Sequence[IngestResult]) -> None:
        pass


def test_a_query_during_a_large_ingest_answers_from_the_committed_state(
    seeded: RAGService, tmp_path: Path
) -> None:
    """The ingest is stopped after its small documents were committed and while half of a large
    one is written but not committed: queries are answered at once, from what is committed."""
    service = service_copy(seeded, tmp_path / "data", ingest_group_chunks=4)
    small = [_doc(f"town_{i}.txt", f"丙{i}镇来访同比下降{i + 10}%。" * 3) for i in range(6)]
    large = _doc(
        "report.txt",
        "\n".join(
            f"丁县第{i}项工作：集体访同比下降{i}%，来信办结率{90 + i % 10}%。" * 4
            for i in range(40)
        ),
    )
    small_chunks = 6  # one chunk each
    progress = _Paused(at=small_chunks + 4 + 1)  # inside the large document's second group
    ingest = threading.Thread(
        target=lambda: service.ingest_bytes([*small, large], progress=progress)
    )
    ingest.start()
    try:
        assert progress.paused.wait(120)
        segments = service.kb().segments
        assert service.search("丙3镇来访", mode="bm25")[0].doc_id == "town_3"
        for mode in ("bm25", "dense", "hybrid"):
            hits = service.search("丁县集体访同比下降", mode=mode)
            assert "report" not in {h.doc_id for h in hits}, mode
        assert sorted(d.doc_id for d in service.kb().catalog()) == [f"town_{i}" for i in range(6)]
        assert segments.stats["chunks_read"] == small_chunks
        # half of the large document is in the store, not committed
        stored = service.store.count_chunks()
        assert stored > small_chunks
    finally:
        progress.resume.set()
        ingest.join(300)
    assert service.search("丁县集体访同比下降", mode="bm25")[0].doc_id == "report"
    assert segments.stats["chunks_read"] == service.store.count_chunks()


def test_processes_of_one_data_dir_share_the_pieces(grown: RAGService) -> None:
    """Another service on the same data dir (another worker) takes up the state written by the
    first and opens its pieces: it reads no chunk from the store, and answers alike."""
    hits = grown.search("青禾市常住人口", mode="bm25")
    other = RAGService(grown.settings, embedder=grown.embedder)
    assert other.search("青禾市常住人口", mode="bm25") == hits
    assert other.kb().segments.stats["chunks_read"] == 0
    grown.ingest_bytes([_doc("baiyun.txt", "白云市来访同比下降21%。")])
    grown.search("白云市")  # the first one catches up and writes the state
    assert other.search("白云市来访", mode="bm25")[0].doc_id == "baiyun"
    assert other.kb().segments.stats["chunks_read"] == 0


def test_an_index_written_before_tokens_were_stored_still_searches(fresh: RAGService) -> None:
    """Chunks without stored tokens (an index from an earlier version) are tokenized when read."""
    doc = Document(
        doc_id="old",
        source="old.txt",
        title="旧报告",
        text="青禾市来访同比下降12%。",
        content_hash="ab" * 32,
    )
    chunk = Chunk(doc_id="old", index=0, start=0, end=len(doc.text), text=doc.text)
    vector = fresh.embedder.encode_passages([index_text(doc.title, None, doc.text)])
    fresh.store.write_documents([(doc, [chunk], vector)])
    assert "tokens" not in next(fresh.store.iter_chunks()).metadata
    assert fresh.search("青禾市来访", mode="bm25")[0].doc_id == "old"


def test_the_records_of_a_commit_larger_than_sqlites_variable_limit_are_read(
    fresh: RAGService,
) -> None:
    """A catch-up after an ingest of 36k documents failed: one ``where`` query fetched every
    matching record in one SQL statement, past SQLite's 32,766 variables."""
    n = 33_000
    docs = [
        (
            Document(
                doc_id=f"d{i}", source=f"d{i}.txt", title=f"d{i}", text="", content_hash=f"h{i}"
            ),
            0,
        )
        for i in range(n)
    ]
    fresh.store.commit_documents(docs)
    since = fresh.store.committed_since(0)
    assert len(since) == n and since["d32999"].info.content_hash == "h32999"
