"""Metric functions: pure, small, and unit-tested with hand-computed cases."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from rag.text import to_simplified

_WS = re.compile(r"\s+")
_NUMERIC_EDGE = re.compile(r"[0-9.]")


def norm(text: str) -> str:
    """Matching form: NFKC width folding, traditional→simplified, no whitespace, lower case."""
    import unicodedata

    return _WS.sub("", unicodedata.normalize("NFKC", to_simplified(text))).lower()


def contains(haystack: str, needle: str) -> bool:
    """``needle`` occurs in ``haystack`` after normalization, and a number is never matched
    inside a longer number: "5万亿" is not in "7.5万亿", "73" is not in "173%"."""
    h, n = norm(haystack), norm(needle)
    if not n:
        return True
    start = h.find(n)
    while start != -1:
        end = start + len(n)
        left_ok = not (
            _NUMERIC_EDGE.match(n[0]) and start > 0 and _NUMERIC_EDGE.match(h[start - 1])
        )
        right_ok = not (_NUMERIC_EDGE.match(n[-1]) and end < len(h) and h[end].isdigit())
        if left_ok and right_ok:
            return True
        start = h.find(n, start + 1)
    return False


def first_rank(passages: Sequence[str], needles: Sequence[str]) -> int | None:
    """1-based rank of the first passage holding any of ``needles`` (None: none does)."""
    for rank, text in enumerate(passages, start=1):
        if any(contains(text, n) for n in needles):
            return rank
    return None


def all_found_within(passages: Sequence[str], needles: Sequence[str], k: int) -> bool:
    """Every needle lies inside one of the top-k passages (each may be in a different one)."""
    top = passages[:k]
    return all(any(contains(p, n) for p in top) for n in needles)


def any_found_within(passages: Sequence[str], needles: Sequence[str], k: int) -> bool:
    rank = first_rank(passages[:k], needles)
    return rank is not None


def reciprocal_rank(rank: int | None) -> float:
    return 0.0 if rank is None else 1.0 / rank


def answer_correct(answer: str, must_include: Sequence[str]) -> bool:
    return all(contains(answer, m) for m in must_include)


def parts_found(answer: str, parts: Sequence[Sequence[str]], plain: bool = False) -> bool:
    """Every part is in the answer, in any one of its forms (RGB's rule). ``plain``: RGB's own
    matcher (spaces removed, case folded, a bare substring test) instead of ``contains``."""
    if plain:
        text = answer.replace(" ", "").lower()
        return all(any(f.replace(" ", "").lower() in text for f in forms) for forms in parts)
    return all(any(contains(answer, f) for f in forms) for forms in parts)


def char_f1(prediction: str, gold: str) -> float:
    """Character-level F1 (the CMRC2018 convention), after normalization."""
    p, g = Counter(norm(prediction)), Counter(norm(gold))
    common = sum((p & g).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
_RANGE = re.compile(
    r"(?<!\d)((?:19|20)\d\d)\s*年?\s*(?:至|到|-|–|—|~|and|to|through)\s*((?:19|20)\d\d)(?!\d)", re.I
)
_REPORT = re.compile(
    r"((?:19|20)\d\d)\s*年?\s*(?:的)?\s*(?:政府工作|government work)\s*(?:报告|報告|report)", re.I
)


def asked_years(question: str) -> set[int]:
    """The years of the documents a question asks about, read from its text alone (the harness
    does not borrow the system's parser): the reports it names ("2019年政府工作报告", "2021年至
    2025年的政府工作报告"), else every year it names and the year after (a year's result is
    reported the next year). Empty: the question names no year."""
    q = norm(question)
    spans = [(int(a), int(b)) for a, b in _RANGE.findall(q)]
    years = {y for a, b in spans for y in range(min(a, b), max(a, b) + 1)}
    years |= {int(y) for y in _YEAR.findall(q)}
    if _REPORT.search(q) or "报告" in q or "report" in q:
        return years
    return years | {y + 1 for y in years}


def document_year(source: str, title: str) -> int | None:
    """The year of a cited document: its file name's (``2019.txt``), else its title's."""
    for text in (source.rsplit("/", 1)[-1], title):
        m = _YEAR.search(text)
        if m:
            return int(m.group(1))
    return None
