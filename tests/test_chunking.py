from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunking import chunk_document, chunk_spans, split_sentences
from rag.text import content_spans

from .conftest import SEEDS


def test_sentences_end_at_chinese_punctuation_and_keep_closing_quotes() -> None:
    text = "他说:“好。”然后走了!第三句;第四句"
    assert [text[s:e] for s, e in split_sentences(text, 0, len(text))] == [
        "他说:“好。”",
        "然后走了!",
        "第三句;",
        "第四句",
    ]


def test_packing_respects_target_and_overlaps_one_sentence() -> None:
    text = "".join(f"第{i:02d}句话内容。" for i in range(30))  # 9 chars each
    spans = chunk_spans(text, target_chars=40, max_chars=60, overlap_sentences=1)
    assert all(e - s <= 40 for s, e in spans)
    for (_, e1), (s2, _) in itertools.pairwise(spans):
        assert s2 < e1  # consecutive chunks share a sentence
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_long_sentence_is_split_without_cutting_a_number() -> None:
    text = "指标" + "数值增长12.5%以及" * 40 + "完。"
    spans = chunk_spans(text, target_chars=50, max_chars=60, overlap_sentences=0)
    for s, e in spans:
        assert e - s <= 60
        piece = text[s:e]
        # no span starts or ends in the middle of "12.5%"
        assert not piece[0].isdigit() or text[s - 1] not in "0123456789."
        assert not piece.endswith(("1", "12", "12.", "12.5"))


@pytest.mark.parametrize("path", sorted(SEEDS.iterdir()), ids=lambda p: p.name)
def test_seed_chunks_index_the_original_text(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    chunks = chunk_document("d", text)
    assert chunks
    kept = content_spans(text)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert len(c.text) <= 600
        # every chunk starts and ends inside content lines
        assert any(s <= c.start < e for s, e in kept)
        assert any(s < c.end <= e for s, e in kept)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="延吉市下降了52%。，！？\n 　ab12.", max_size=800),
    st.integers(20, 300),
    st.integers(0, 2),
)
def test_offsets_hold_for_any_text(text: str, target: int, overlap: int) -> None:
    for c in chunk_document(
        "d", text, target_chars=target, max_chars=target + 50, overlap_sentences=overlap
    ):
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip() and c.text
