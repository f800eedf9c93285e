from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.lexical import LexicalIndex, top_positive
from rag.retrieval import is_comparison, rrf
from rag.schemas import Filters
from rag.service import RAGService
from rag.store import chunk_id, doc_id_of

EVIDENCE = "同比分別下降7%和52%"


def test_rrf_by_hand() -> None:
    fused = rrf([["a", "b"], ["b", "c"]], k=60)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["c"] == pytest.approx(1 / 62)
    assert max(fused, key=fused.__getitem__) == "b"


@given(st.lists(st.integers(-2, 5), max_size=200), st.integers(0, 60))
def test_top_positive_is_a_stable_sort_cut(values: list[int], n: int) -> None:
    """Same indices, same order (ties by index) as a stable sort of every score, zeros dropped."""
    scores = np.asarray(values, dtype=np.float32)
    expected = [int(i) for i in np.argsort(-scores, kind="stable")[:n] if scores[i] > 0]
    assert [int(i) for i in top_positive(scores, n)] == expected


@pytest.mark.parametrize(
    ("question", "spread"),
    [
        ("哪个城市信访量下降最多?", True),
        ("哪些地方推行了“一枚印章”管审批的改革?", True),
        ("各地的信访量分别是多少?", True),
        ("Which cities reported the largest drop?", True),
        ("2009年至2013年的政府工作报告中，增长目标首次低于8%是哪一年？", True),
        ("2006年底特律圣公会三一堂与哪个教会合并？", False),
        ("在这次选举中处于领先地位的两位候选人分别是谁？", False),
        ("扬子克拉通范围包括哪些？", False),
    ],
)
def test_only_ranking_and_which_places_questions_spread_over_documents(
    question: str, spread: bool
) -> None:
    assert is_comparison(question) is spread


def test_an_unknown_query_token_falls_back_to_known_pieces(tmp_path: Path) -> None:
    """jieba cuts 潘淑是哪里人 into 潘淑是 / 哪里 / 人, a token no passage holds; its known piece
    潘淑 still finds the passage."""
    index = LexicalIndex.build(
        tmp_path / "piece",
        ["a", "b"],
        ["潘淑，会稽句章人，孙权的皇后。", "王沈，字处道，太原晋阳人。"],
    )
    assert not index.knows("潘淑是")
    assert "潘淑" in index.known_tokens(["潘淑是", "哪里", "人"])
    scores = index.scores("潘淑是哪里人？")
    assert scores[0] > scores[1]


@pytest.mark.parametrize("doc_id", ["yanji", "reports_y_1", "a#b", "#"])
def test_a_chunk_id_names_its_document(doc_id: str) -> None:
    """Comparison questions spread hits over documents read from the candidates' ids."""
    assert doc_id_of(chunk_id(doc_id, "ab12" * 16, 7)) == doc_id


@pytest.mark.parametrize(
    "query", ["延吉市集体访人次下降了多少", "延吉市集體訪", "延吉集体访同比下降"]
)
def test_yanji_petition_passage_comes_first(seeded: RAGService, query: str) -> None:
    hits = seeded.search(query, top_k=5)
    assert EVIDENCE in hits[0].text
    assert hits[0].doc_id == "000_941dbc5847c0e16b"


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_returns_scored_hits_with_offsets(seeded: RAGService, mode: str) -> None:
    hits = seeded.search("龙港市撤销了多少个行政村", top_k=3, mode=mode)  # type: ignore[arg-type]
    assert 0 < len(hits) <= 3
    assert hits == sorted(hits, key=lambda h: -h.score)
    for h in hits:
        assert h.end - h.start == len(h.text)
        if mode == "dense":
            assert h.dense_score is not None
        if mode == "bm25":
            assert h.bm25_score is not None and h.bm25_score > 0


def test_filters_apply_to_both_sides(seeded: RAGService) -> None:
    only = Filters(doc_id="003_2de97fa3165b9104")
    hits = seeded.search("信访量下降", top_k=5, filters=only)
    assert hits and {h.doc_id for h in hits} == {"003_2de97fa3165b9104"}
    assert {
        h.region for h in seeded.search("社会治理", top_k=5, filters=Filters(region="城阳区"))
    } == {"城阳区"}
    dated = seeded.search("工作报告", top_k=10, filters=Filters(year_from=2021))
    assert dated and all(h.date and h.date >= "2021" for h in dated)


def test_the_lexical_index_is_kept_on_disk_and_taken_up_by_another_process(
    seeded: RAGService, tmp_path: Path
) -> None:
    """The pieces a service wrote are what another service on the same data dir opens: it
    reads no chunk from the store to answer."""
    folder = seeded.settings.data_dir / "lexical" / seeded.settings.collection
    hits = seeded.search("信访", mode="bm25")
    assert (folder / "state.json").exists() and list(folder.glob("piece-*"))
    other = RAGService(seeded.settings, embedder=seeded.embedder)
    assert [h.model_dump() for h in other.search("信访", mode="bm25")] == [
        h.model_dump() for h in hits
    ]
    assert other.kb().segments.stats["chunks_read"] == 0
    assert other.kb().segments.stats["adopted"] == 1
