"""The period a sentence speaks of, and whether it states a target, a plan or a result.

A document of many years' kind (an annual work report, a yearly district report) speaks of
several years: the report of year Y reviews Y−1 ("去年", "过去一年", "一、2018年工作回顾") and sets
Y's targets ("今年", "预期目标", "拟安排"). ``Clock`` is one document's time frame (its year, and
whether it opens its year, as a work report delivered in spring does); ``Clock.read(sentence,
section)`` gives the ``Period`` a sentence speaks of, from, in order: the years it names as
written (a base of comparison, "比1980年", is not one), the years it says relatively (今年, 去年,
过去五年, "十三五"时期), the heading of the part it is in, and the document's own year. The text
is read folded (simplified script, half-width digits: ``１９９６年`` reads as 1996年).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from rag.schemas import year_of
from rag.text import fold

Kind = Literal["target", "plan", "result"]

_CN_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九十")} | {"两": 2}
# A year as written; one after 比/较/与/同 is a base of comparison ("比1980年增长5.5%").
_YEAR = re.compile(r"(?<![比较与同于和\d])((?:19|20)\d\d)\s*年(?!代)")
_YEAR_RANGE = re.compile(
    r"(?<!\d)((?:19|20)\d\d)\s*(?:年)?\s*(?:至|到|-|–|—|~)\s*((?:19|20)\d\d)\s*年(?!代)"
)
# Five-year plans: "十三五" is 2016–2020.
_PLANS = {"六五": 1981, "七五": 1986, "八五": 1991, "九五": 1996, "十五": 2001, "十一五": 2006}
_PLANS |= {"十二五": 2011, "十三五": 2016, "十四五": 2021, "十五五": 2026}
_PLAN = re.compile(r"[“\"']?(" + "|".join(sorted(_PLANS, key=len, reverse=True)) + r")[”\"']?")
_THIS_YEAR = re.compile(r"今年|本年度?|当年|年内")
_LAST_YEAR = re.compile(r"去年|过去一年|上一年|(?<![比较与同])上年|一年来")
_NEXT_YEAR = re.compile(r"明年|下一年")
_PAST_YEARS = re.compile(
    r"(?:过去|近|前|这)([一二两三四五六七八九十\d]{1,2})年|([一二两三四五六七八九十\d])年来"
)
# What a sentence states: a goal set for its period, money or work arranged for it, or an outcome.
_TARGET = re.compile(
    r"预期目标|主要目标|目标(?:任务)?(?:是|为|定为)|调控目标|力争|争取|确保|要达到|"
    r"预期|预定"
)
_PLAN_WORDS = re.compile(r"拟|安排|(?<![\d”])计划(?!单列)|将要|部署")  # not "1133”计划"
_RESULT = re.compile(r"实现|完成|达到|增长了|下降了|回顾|实际|取得|突破|超过|比上年|同比")
# A heading: a numbered part ("一、2018年工作回顾", "二、2019年政府工作任务") or a markdown one.
HEADING = re.compile(r"^\s*(?:[一二三四五六七八九十]{1,3}[、.．]|#{1,4}\s)\s*\S.{0,48}$")
# A paragraph that opens by naming its year ("2014年已经过去。这一年，…", "2016年，…") speaks of it,
# and so do the paragraphs after it, up to the next heading or such opening: the clause is a
# heading too.
_OPENS_WITH_YEAR = re.compile(
    r"^\s*((?:19|20)\d\d\s*年(?!代)[^，,。；;：:!！?？\n\d]{0,4}?)\s*[，,。；;：:]"
)


def _number(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text.startswith("十"):
        return 10 + (_CN_DIGITS.get(text[1:], 0) if len(text) > 1 else 0)
    if "十" in text:
        tens, _, ones = text.partition("十")
        return _CN_DIGITS.get(tens, 1) * 10 + (_CN_DIGITS.get(ones, 0) if ones else 0)
    return _CN_DIGITS.get(text, 0)


@dataclass(frozen=True)
class Period:
    """Years ``first``..``last`` (one year when equal), and what is said of them."""

    first: int
    last: int
    kind: Kind | None = None

    @property
    def label(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}–{self.last}"

    def overlaps(self, first: int, last: int) -> bool:
        return self.first <= last and first <= self.last


def parse_label(label: str | None) -> tuple[int, int] | None:
    """``"2018"`` → (2018, 2018), ``"2016–2020"`` → (2016, 2020); None for anything else."""
    if not label:
        return None
    years = re.findall(r"\d{4}", label)
    return (int(years[0]), int(years[-1])) if years else None


def kind_of(sentence: str) -> Kind | None:
    """Whether a (folded) sentence sets a target, arranges a plan or states a result."""
    if _TARGET.search(sentence):
        return "target"
    if _PLAN_WORDS.search(sentence):
        return "plan"
    if _RESULT.search(sentence):
        return "result"
    return None


@dataclass(frozen=True)
class Clock:
    """One document's time frame: its year, and whether it is written at the start of that year
    (a work report delivered in spring, a report dated January): then what it reports done, with
    no year said, is of the year before."""

    year: int | None
    opens_year: bool = False

    @classmethod
    def of(cls, date: str | None, title: str = "") -> Clock:
        year = year_of(date)
        month = int(date[5:7]) if date and len(date) >= 7 and date[5:7].isdigit() else None
        report = "工作报告" in fold(title) or "工作報告" in title
        return cls(
            year, opens_year=(month is not None and month <= 3) or (month is None and report)
        )

    def section(self, heading: str | None) -> Period | None:
        """What a heading says of the part under it: "一、2018年工作回顾" → 2018, results;
        "二、对今年政府工作的建议" → this year; a later part with no year → this year's work."""
        if not heading:
            return None
        h = fold(heading)
        review = "回顾" in h or "过去" in h
        # a numbered part of no review sets out work; a year's opening clause may do either
        plan: Kind | None = "plan" if HEADING.match(h) else None
        found = self._said(h, "result" if review else plan)
        if found is not None:
            return found
        if self.year is None:
            return None
        if review:
            last = self.year - 1 if self.opens_year else self.year
            return Period(last, last, "result")
        return Period(self.year, self.year, "plan")

    def read(self, sentence: str, heading: str | None = None) -> Period | None:
        """The period a sentence speaks of and what it states of it, or None when nothing says."""
        s = fold(sentence)
        kind = kind_of(s)
        said = self._said(s, kind)
        if said is not None:
            return said
        section = self.section(heading)
        if section is not None:  # a review's "预期目标是…" is last year's target
            return Period(section.first, section.last, kind or section.kind)
        if self.year is None:
            return None
        if kind == "result" and self.opens_year:
            return Period(self.year - 1, self.year - 1, kind)
        return Period(self.year, self.year, kind)

    def _said(self, s: str, kind: Kind | None) -> Period | None:
        """The years a text says, as written or relative to the document's year."""
        r = _YEAR_RANGE.search(s)
        if r:
            a, b = int(r.group(1)), int(r.group(2))
            return Period(min(a, b), max(a, b), kind or "result")
        y = _YEAR.search(s)
        if y:
            year = int(y.group(1))
            if kind is None and self.year is not None:
                kind = "result" if year < self.year else "target"
            return Period(year, year, kind)
        p = _PLAN.search(s)
        if p:
            first = _PLANS[p.group(1)]
            if kind is None and self.year is not None:
                kind = "result" if first + 4 < self.year else "target"
            return Period(first, first + 4, kind)
        if self.year is None:
            return None
        if _THIS_YEAR.search(s):
            return Period(self.year, self.year, kind or "target")
        if _NEXT_YEAR.search(s):
            return Period(self.year + 1, self.year + 1, kind or "target")
        if _LAST_YEAR.search(s):  # before "过去五年": the more specific of the two
            return Period(self.year - 1, self.year - 1, kind or "result")
        past = _PAST_YEARS.search(s)
        if past:
            n = _number(past.group(1) or past.group(2))
            last = self.year - 1 if self.opens_year else self.year
            return Period(last - max(n, 1) + 1, last, "result")
        return None


def headings(text: str) -> list[tuple[int, str]]:
    """The heading lines of a text, and the clauses that open a paragraph with its year
    ("2014年已经过去"), with their offsets."""
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        if HEADING.match(line.rstrip("\r\n")):
            out.append((pos, line.strip()))
        elif opening := _OPENS_WITH_YEAR.match(fold(line)):
            out.append((pos, line[opening.start(1) : opening.end(1)].strip()))
        pos += len(line)
    return out


def heading_at(found: list[tuple[int, str]], at: int) -> str | None:
    """Of ``headings(text)``, the last one that starts before offset ``at``."""
    i = bisect.bisect_right([p for p, _ in found], at) - 1
    return found[i][1] if i >= 0 else None


# A run of years: "2021年至2025年", "2003年、2005年和2007年", "2004 and 2005".
_YEARS_RUN = re.compile(
    r"(?<!\d)(?:19|20)\d\d(?!\d)\s*年?(?:\s*(?:至|到|-|–|—|~|、|和|与|及|以及|,|，|and|to|through)"
    r"\s*(?:19|20)\d\d(?!\d)\s*年?)*",
    re.IGNORECASE,
)
_TO = re.compile(r"\s*(?:至|到|-|–|—|~|to|through)\s*", re.IGNORECASE)
# What names a report after its years: "的政府工作报告", "年《政府工作报告》", " Government Work Report".
_REPORT_AFTER = re.compile(
    r"\s*(?:年)?\s*(?:的)?\s*[《“\"]?\s*(?:中华人民共和国)?(?:国务院)?(?:政府)?(?:工作)?报告|"
    r"\s*(?:'s)?\s*(?:government\s+)?(?:work\s+)?report",
    re.IGNORECASE,
)
_RECENT = re.compile(
    r"(?:最近|近)([一二两三四五六七八九十\d]{1,2})年|(?:last|past) (\w+) years", re.I
)
_EN_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10}


def _years(run: str) -> list[int]:
    """The years of a run, a range expanded: "2021年至2025年" → 2021 … 2025."""
    found = [int(y) for y in re.findall(r"(?:19|20)\d\d", run)]
    if len(found) == 2 and _TO.search(run):
        a, b = sorted(found)
        return list(range(a, b + 1))
    return found


@dataclass(frozen=True)
class TimeScope:
    """What a question says about time: the reports it names (their years, in order), the
    period it asks about outside them, and "最近三年" (the last N years the corpus holds)."""

    reports: tuple[int, ...] = ()
    years: tuple[int, int] | None = None
    recent: int | None = None

    def period(self, kind: Kind | None) -> tuple[int, int] | None:
        """The years a figure asked for speaks of: as said, else those of the one report named
        (a target is the report's own year; a result with no year said, the year before)."""
        if self.years is not None:
            return self.years
        if len(self.reports) == 1:
            year = self.reports[0] - (1 if kind == "result" else 0)
            return (year, year)
        return None


@lru_cache(maxsize=4096)
def time_scope(question: str) -> TimeScope:
    """The time scope of a question (either script, or English); cached: the chain asks it of
    one question at several steps."""
    q = fold(question)
    reports: list[int] = []
    period: list[int] = []
    for m in _YEARS_RUN.finditer(q):
        years = _years(m.group(0))
        (reports if _REPORT_AFTER.match(q, m.end()) else period).extend(years)
    recent = _RECENT.search(q)
    n = None
    if recent:
        raw = recent.group(1) or recent.group(2)
        n = _number(raw) if recent.group(1) else _EN_NUMBERS.get(raw.lower())
    return TimeScope(
        reports=tuple(dict.fromkeys(reports)),
        years=(min(period), max(period)) if period else None,
        recent=n or None,
    )
