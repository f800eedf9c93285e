"""The one vocabulary of units a figure is written with.

Facts (``rag/facts``) take a figure's unit from ``MEASURES``; the citation check
(``rag/citations.py``) reads numbers with ``MEASURES`` and ``DATES`` (``2016年`` is a claim about
a year, not the number 2016); the chunker (``rag/chunking.py``) never cuts between a number and
``NUMERIC_CHARS``. Alternations list the longer of two overlapping units first, so a regex takes
the longest unit (``万人次`` before ``万人`` before ``万``).
"""

from __future__ import annotations

import re

# What is counted or measured: money, people, shares, things, areas, lengths, weights.
MEASURES: tuple[str, ...] = (
    *("%", "个百分点", "百分点", "倍"),
    *("万亿元", "亿元", "万元", "元", "万亿美元", "亿美元", "美元", "万亿", "亿"),
    *("万人次", "人次", "万人", "人"),
    *("亿吨", "万吨", "吨", "万亿斤", "亿斤", "万斤", "斤", "亿公斤", "万公斤", "公斤"),
    *("万户", "户", "万亩", "亩", "万辆", "辆"),
    *("批", "件", "起", "项", "个", "所", "套", "天"),
    *("平方公里", "平方米", "公里", "千米", "米"),
    "万",
)
# Calendar units: a number with one of these is a date.
DATES: tuple[str, ...] = ("年", "月", "日")


def alternation(units: tuple[str, ...]) -> str:
    """A regex alternation of ``units``, longest first (a regex takes the first that matches)."""
    return "|".join(re.escape(u) for u in sorted(units, key=len, reverse=True))


# Characters that stay with a number when an over-long sentence is cut: digits (half and full
# width), the decimal point, per-mille and the characters of every unit.
NUMERIC_CHARS: frozenset[str] = frozenset(
    "0123456789０１２３４５６７８９.．%％‰千百十号" + "".join(MEASURES + DATES)
)


# A unit as a multiple of its base, so figures in 亿元 and 万亿元 compare: (base, factor).
_SCALES = {"万亿": 1e12, "亿": 1e8, "万": 1e4}


def base_value(value: float, unit: str) -> tuple[float, str]:
    """A figure in its base unit: (1.35, "万亿元") → (1.35e12, "元"); (8000, "亿元") → (8e11,
    "元"); a unit without a scale stays as it is (52, "%") → (52, "%")."""
    for prefix, factor in _SCALES.items():
        if unit.startswith(prefix):
            return value * factor, unit[len(prefix) :]
    return value, unit
