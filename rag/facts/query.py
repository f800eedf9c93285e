"""Comparison questions: what a question asks (``parse_question``) and the ranking that answers
it (``compare``), computed over the facts of all documents, grouped by what is compared (a
region, or a year for national reports)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from rag.facts.patterns import CJK2, DOWN, NUM, UNIT, UP
from rag.facts.taxonomy import taxonomy
from rag.periods import parse_label, time_scope
from rag.schemas import Fact, Filters
from rag.text import fold, normalize
from rag.units import base_value

_ASK_MORE = re.compile(
    r"最多|最高|最大|最快|最好|降幅最大|增幅最大|most|highest|largest|biggest|fastest|greatest|top",
    re.IGNORECASE,
)
_ASK_LESS = re.compile(r"最少|最低|最小|最慢|最差|least|lowest|smallest|slowest|fewest", re.I)
_ASK_COMPARE = re.compile(r"排名|排序|比较|对比|各地|各市|各区|\brank|\bcompar", re.IGNORECASE)
_ASK_DOWN = re.compile(
    rf"{DOWN}|降幅|\bcut|declin|decreas|drop|fell|\bfall|reduc|lower(ed)?\b", re.IGNORECASE
)
_ASK_UP = re.compile(rf"{UP}|增幅|grow|increas|\brise|\brose|rais", re.IGNORECASE)
_ASK_TARGET = re.compile(
    r"目标|预期|计划|拟|安排|力争|提出的|要(?:控制|达到|实现)|target|goal|plan", re.IGNORECASE
)
_ASK_RESULT = re.compile(
    r"回顾|实际|完成|实现|上一年|去年|跃上|achiev|actual|outcome", re.IGNORECASE
)
_ASK_MORE_OF_TWO = re.compile(r"更(?:高|多|大|快)|higher|more|larger|faster", re.IGNORECASE)
_ASK_LESS_OF_TWO = re.compile(r"更(?:低|少|小|慢)|lower|fewer|smaller|slower", re.IGNORECASE)
# Questions over a time series: the first year (首次, 从哪一年开始), years alike, the trend.
_ASK_FIRST = re.compile(r"首次|第一次|从哪一?年|哪一?年(?:开始|起)|first|since when", re.I)
_ASK_SAME = re.compile(r"哪(?:两|几)年.{0,12}(?:相同|一样|持平)|same", re.IGNORECASE)
_ASK_TREND = re.compile(r"变化趋势|趋势|怎样变化|如何变化|trend", re.IGNORECASE)
_THRESHOLD = re.compile(
    rf"(低于|少于|跌破|不到|高于|超过|突破|跃上|达到|多于|below|under|above|over|exceed\w*|reach\w*)"
    rf"\s*({NUM})\s*({UNIT})?",
    re.IGNORECASE,
)
_BELOW = re.compile(r"低于|少于|跌破|不到|below|under", re.IGNORECASE)
Mode = Literal["rank", "first", "same", "trend"]


@dataclass(frozen=True)
class FactQuery:
    """What a comparison question asks: which indicators, ranked which way, among which facts."""

    canonicals: frozenset[str] = frozenset()
    families: frozenset[str] = frozenset()
    phrase: str = ""  # the folded question, for indicators the taxonomy does not know
    direction: Literal["down", "up"] | None = None
    descending: bool = True
    kind: Literal["target", "result"] | None = None
    reports: frozenset[int] = frozenset()  # the reports named: facts of these documents' years
    years: tuple[int, int] | None = None  # the period asked: facts that speak of it
    mode: Mode = "rank"  # rank the entities, the first year (past a threshold), alike, trend
    # "首次低于3%": (3, "%", below?) in the base unit (rag.units.base_value)
    threshold: tuple[float, str, bool] | None = None
    said: str = ""  # the threshold as the question says it ("低于3%")

    def passes(self, f: Fact) -> bool:
        """Whether a fact is past the question's threshold (any fact is, without one)."""
        if self.threshold is None:
            return True
        limit, unit, below = self.threshold
        value, base = base_value(f.value, f.unit)
        if base != unit:
            return False
        return value < limit if below else value >= limit

    @property
    def over_years(self) -> bool:
        """Whether what is compared is years (of reports, or of a period), not places."""
        return bool(self.reports) or self.years is not None

    def matches(self, f: Fact) -> bool:
        named = (
            (f.canonical is not None and f.canonical in self.canonicals)
            or (f.family is not None and f.family in self.families)
            or (
                not self.canonicals
                and not self.families
                and len(f.indicator) >= 2
                and f.indicator in self.phrase
            )
        )
        return (
            named
            and (self.direction is None or f.direction == self.direction or self.mode != "rank")
            and (self.direction is not None or f.direction is None or self.mode != "rank")
            and (self.kind is None or (self.kind == "result") == (f.kind == "result"))
            and (not self.reports or f.year in self.reports)
            and (self.years is None or self._in_period(f))
        )

    def _in_period(self, f: Fact) -> bool:
        span = parse_label(f.period) or ((f.year, f.year) if f.year else None)
        return (
            span is not None
            and self.years is not None
            and (self.years[0] <= span[0] and span[1] <= self.years[1])
        )


def parse_question(question: str) -> FactQuery | None:
    """A ``FactQuery`` for a comparison/ranking question (either script, or English), else None."""
    q = fold(question)
    low = q.lower()
    more = _ASK_MORE.search(low) or _ASK_MORE_OF_TWO.search(low)
    less = _ASK_LESS.search(low) or _ASK_LESS_OF_TWO.search(low)
    mode: Mode = (
        "first"
        if _ASK_FIRST.search(low)
        else "same"
        if _ASK_SAME.search(low)
        else "trend"
        if _ASK_TREND.search(low)
        else "rank"
    )
    if not (more or less or _ASK_COMPARE.search(low)) and mode == "rank":
        return None
    tax = taxonomy()
    named = tax.find(q)
    english = [
        m.span() for a in tax.en_to_canonical for m in re.finditer(rf"\b{re.escape(a)}\b", low)
    ]
    canonicals = {c for _, _, c in named} | {tax.en_to_canonical[low[s:e]] for s, e in english}
    # Family words count outside the indicator names matched ("网络信访" is not all 信访).
    rest = list(low)
    for s, e in [(s, e) for s, e, _ in named] + english:
        rest[s:e] = " " * (e - s)
    left = "".join(rest)
    families = {
        f
        for a, f in tax.family_aliases.items()
        if (a in left if CJK2.search(a) else re.search(rf"\b{re.escape(a)}", left))
    }
    direction: Literal["down", "up"] | None = (
        "down" if _ASK_DOWN.search(low) else "up" if _ASK_UP.search(low) else None
    )
    scope = time_scope(q)
    limit = _THRESHOLD.search(low) if mode == "first" else None
    threshold = None
    if limit:
        value, unit = base_value(float(limit.group(2)), limit.group(3) or "")
        threshold = (value, unit, bool(_BELOW.fullmatch(limit.group(1))))
    if mode != "rank" and not scope.reports and scope.years is None:
        return None  # a series is over years the question names
    return FactQuery(
        canonicals=frozenset(canonicals),
        families=frozenset(families),
        phrase=q,
        direction=direction,
        descending=not (less and not more),
        kind=asked_kind(low),
        reports=frozenset(scope.reports),
        years=scope.years,
        mode=mode,
        threshold=threshold,
        said=limit.group(0) if limit else "",
    )


def asked_kind(question: str) -> Literal["target", "result"] | None:
    """Whether a question asks for a target or plan (目标, 拟, 提出的 …) or for a result (实际,
    完成 …), or neither."""
    q = fold(question)
    return "target" if _ASK_TARGET.search(q) else "result" if _ASK_RESULT.search(q) else None


@lru_cache(maxsize=1024)
def entity_label(region: str | None, title: str) -> str:
    """A region as people name it: a district with its city from the title (兰州 + 城关区)."""
    if not region:
        return title
    if region.endswith(("区", "县")):
        import jieba.posseg as pseg

        for w in pseg.cut(normalize(title)):
            name = w.word
            if (
                w.flag == "ns"
                and len(name) >= 2
                and not name.endswith(("省", "区", "县"))
                and name not in region
                and region not in name
            ):
                return f"{name}{region}"
    return region


def implausible(f: Fact) -> bool:
    """A figure that cannot be right: a decline of more than 100%."""
    return f.direction == "down" and f.unit == "%" and f.value > 100


@dataclass
class Comparison:
    """Facts grouped by entity, best entity first; each group's facts best first."""

    query: FactQuery
    groups: list[tuple[str, list[Fact]]]
    flagged: list[Fact] = field(default_factory=list)  # implausible, left out of the ranking
    by_year: bool = False

    @property
    def winner(self) -> tuple[str, Fact]:
        entity, facts = self.groups[0]
        return entity, facts[0]

    @property
    def facts(self) -> list[Fact]:
        return [f for _, fs in self.groups for f in fs] + self.flagged

    @property
    def mixed_indicators(self) -> bool:
        return len({fs[0].canonical or fs[0].indicator for _, fs in self.groups}) > 1

    def totals(self) -> list[Fact]:
        """Facts of a family's overall indicator (信访总量), when the question is about a family."""
        tax = taxonomy()
        return [f for f in self.facts if f.canonical in tax.totals and not f.implausible]


def compare(
    query: FactQuery, facts: Iterable[Fact], filters: Filters | None = None
) -> Comparison | None:
    """Rank the matching facts by entity; None when no fact matches."""
    matching = [
        f
        for f in facts
        if query.matches(f) and (filters is None or filters.matches(f.model_dump()))
    ]
    if not matching:
        return None
    by_year = query.over_years or len({f.region for f in matching}) == 1
    flagged: list[Fact] = []
    plausible: list[Fact] = []
    if by_year:  # the years compared are single years: "过去五年…" is not one of them
        matching = [f for f in matching if "–" not in (f.period or "")]
    for f in matching:
        label = _year_label(f) if by_year else entity_label(f.region, f.title)
        f = f.model_copy(update={"entity": label, "implausible": implausible(f)})
        (flagged if f.implausible else plausible).append(f)
    # Only figures in one unit are comparable (亿元 and 万亿元 are one): the base unit most
    # entities report in.
    based = [(f, *base_value(f.value, f.unit)) for f in plausible]
    entities: dict[str, set[str | None]] = {}
    for f, _, base in based:
        entities.setdefault(base, set()).add(f.entity)
    if not entities:
        return None
    unit = max(entities, key=lambda u: (len(entities[u]), u))
    sign = -1 if query.descending else 1
    ranked = [
        f
        for f, _, _ in sorted(
            (b for b in based if b[2] == unit),
            key=lambda b: (sign * b[1], b[0].doc_id, b[0].start),
        )
    ]
    groups: dict[str, list[Fact]] = {}
    seen: set[tuple[str, int, str, float]] = set()
    for f in ranked:
        if f.key not in seen:
            seen.add(f.key)
            groups.setdefault(f.entity or "", []).append(f)
    if not groups:
        return None
    items = list(groups.items())
    if by_year and query.mode != "rank":
        items = _series(query, items)
        if not items:
            return None
    return Comparison(query, items, flagged, by_year)


def _year_label(f: Fact) -> str:
    """A national report's fact by the year it speaks of (the report of 2019 gives 2018's
    results), else by its document's year."""
    if f.period:
        return f"{f.period}年"
    return f"{f.year}年" if f.year else f.title


def _series(query: FactQuery, items: list[tuple[str, list[Fact]]]) -> list[tuple[str, list[Fact]]]:
    """The groups of a question over a time series, the answer first, the rest in time order:
    the first year past the threshold (or the first with the figure at all), the years alike,
    or every year (the trend)."""
    by_time = sorted(items, key=lambda item: item[0])
    if query.mode == "first":
        hit = next(((e, fs) for e, fs in by_time if any(query.passes(f) for f in fs)), None)
        if hit is None:
            return []
        entity, facts = hit
        best = [f for f in facts if query.passes(f)]
        return [(entity, best + [f for f in facts if f not in best])] + [
            item for item in by_time if item[0] != entity
        ]
    if query.mode == "same":
        values: dict[float, list[str]] = {}
        for e, fs in by_time:
            values.setdefault(base_value(fs[0].value, fs[0].unit)[0], []).append(e)
        alike = next((es for es in values.values() if len(es) > 1), None)
        if alike is None:
            return by_time
        return [item for item in by_time if item[0] in alike] + [
            item for item in by_time if item[0] not in alike
        ]
    return by_time
