"""Sentence-aware Chinese chunking that keeps character offsets into the original text."""

from __future__ import annotations

import re

from rag.schemas import Chunk
from rag.text import Span, content_blocks, strip_span
from rag.units import NUMERIC_CHARS

# A sentence ends at 。！？；!?; (plus any closing quotes/brackets after it) or at a line break.
_SENTENCE = re.compile(r"[^。！？；!?;\n]*(?:[。！？；!?;]+[”’」』）)\"']*|\n|$)")
# Where an over-long sentence may be cut: after a clause mark.
_CLAUSE_END = re.compile(r"[，,、：:]")


def split_sentences(text: str, start: int, end: int) -> list[Span]:
    """Stripped sentence spans of ``text[start:end]`` (offsets into ``text``)."""
    spans = []
    for m in _SENTENCE.finditer(text, start, end):
        s, e = strip_span(text, m.start(), m.end())
        if s < e:
            spans.append((s, e))
    return spans


def _safe_cut(text: str, start: int, limit: int) -> int:
    """A cut point in (start, limit] that does not separate a number from its unit."""
    window = text[start:limit]
    clause_ends = [m.end() for m in _CLAUSE_END.finditer(window)]
    if clause_ends and clause_ends[-1] > len(window) // 3:
        return start + clause_ends[-1]
    cut = limit
    while cut > start + 1 and (text[cut - 1] in NUMERIC_CHARS or text[cut] in NUMERIC_CHARS):
        cut -= 1
    return cut if cut > start + 1 else limit


def _bounded(text: str, spans: list[Span], max_chars: int) -> list[Span]:
    """Split sentences longer than ``max_chars`` at clause marks, never inside a number."""
    out: list[Span] = []
    for s, e in spans:
        while e - s > max_chars:
            cut = _safe_cut(text, s, s + max_chars)
            piece = strip_span(text, s, cut)
            if piece[0] < piece[1]:
                out.append(piece)
            s = strip_span(text, cut, e)[0]
        if s < e:
            out.append((s, e))
    return out


def chunk_spans(
    text: str, target_chars: int = 400, max_chars: int = 600, overlap_sentences: int = 1
) -> list[Span]:
    """Pack the content sentences of ``text`` into spans of about ``target_chars``.

    A span never crosses removed boilerplate; consecutive spans share ``overlap_sentences``
    sentences so that a fact straddling a boundary is whole in one of them.
    """
    max_chars = max(max_chars, target_chars)
    chunks: list[Span] = []
    for block_start, block_end in content_blocks(text):
        sentences = _bounded(text, split_sentences(text, block_start, block_end), max_chars)
        i = 0
        while i < len(sentences):
            j = i + 1
            while j < len(sentences) and sentences[j][1] - sentences[i][0] <= target_chars:
                j += 1
            chunks.append((sentences[i][0], sentences[j - 1][1]))
            if j >= len(sentences):
                break
            # Step back for the overlap, but always move forward.
            i = max(j - overlap_sentences, i + 1)
    return chunks


def chunk_document(
    doc_id: str,
    text: str,
    target_chars: int = 400,
    max_chars: int = 600,
    overlap_sentences: int = 1,
) -> list[Chunk]:
    return [
        Chunk(doc_id=doc_id, index=i, text=text[s:e], start=s, end=e)
        for i, (s, e) in enumerate(chunk_spans(text, target_chars, max_chars, overlap_sentences))
    ]
