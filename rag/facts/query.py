"""Comparison questions: what a question asks (``parse_question``) and the ranking that answers
it (``compare``), computed over the facts of all documents, grouped by what is compared (a
region, or a year for national reports)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from rag.facts.patterns import CJK2, DOWN, UP
from rag.facts.taxonomy import taxonomy
from rag.schemas import Fact, Filters
from rag.text import fold, normalize

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
_ASK_RESULT = re.compile(r"回顾|实际|完成|实现|achiev|actual|outcome", re.IGNORECASE)
_ASK_YEARS = re.compile(
    r"((?:19|20)\d\d)\s*年?\s*(?:至|到|-|~|—|and|to|through|until)\s*((?:19|20)\d\d)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FactQuery:
    """What a comparison question asks: which indicators, ranked which way, among which facts."""

    canonicals: frozenset[str] = frozenset()
    families: frozenset[str] = frozenset()
    phrase: str = ""  # the folded question, for indicators the taxonomy does not know
    direction: Literal["down", "up"] | None = None
    descending: bool = True
    kind: Literal["target", "result"] | None = None
    years: tuple[int, int] | None = None

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
            and (self.direction is None or f.direction == self.direction)
            and (self.direction is not None or f.direction is None)
            and (self.kind is None or f.kind == self.kind)
            and (
                self.years is None
                or (f.year is not None and self.years[0] <= f.year <= self.years[1])
            )
        )


def parse_question(question: str) -> FactQuery | None:
    """A ``FactQuery`` for a comparison/ranking question (either script, or English), else None."""
    q = fold(question)
    low = q.lower()
    more, less = _ASK_MORE.search(low), _ASK_LESS.search(low)
    if not (more or less or _ASK_COMPARE.search(low)):
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
    years = _ASK_YEARS.search(q)
    return FactQuery(
        canonicals=frozenset(canonicals),
        families=frozenset(families),
        phrase=q,
        direction=direction,
        descending=not (less and not more),
        kind=asked_kind(low),
        years=(int(years.group(1)), int(years.group(2))) if years else None,
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
    by_year = query.years is not None or len({f.region for f in matching}) == 1
    flagged: list[Fact] = []
    plausible: list[Fact] = []
    for f in matching:
        label = (
            (f"{f.year}年" if f.year else f.title) if by_year else entity_label(f.region, f.title)
        )
        f = f.model_copy(update={"entity": label, "implausible": implausible(f)})
        (flagged if f.implausible else plausible).append(f)
    # Only figures in one unit are comparable: the unit most entities report in.
    units = [f.unit for f in plausible]
    unit = max(set(units), key=lambda u: (len({f.entity for f in plausible if f.unit == u}), u))
    ranked = sorted(
        (f for f in plausible if f.unit == unit),
        key=lambda f: (-f.value if query.descending else f.value, f.doc_id, f.start),
    )
    groups: dict[str, list[Fact]] = {}
    seen: set[tuple[str, int, str, float]] = set()
    for f in ranked:
        if f.key not in seen:
            seen.add(f.key)
            groups.setdefault(f.entity or "", []).append(f)
    if not groups:
        return None
    return Comparison(query, list(groups.items()), flagged, by_year)
