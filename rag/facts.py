"""Indicator facts: extracted at ingest, ranked in Python for comparison questions.

A comparison question ("哪个城市信访量下降最多?") needs one figure from each of several documents;
top-k retrieval and a small model get it wrong. So ingest extracts every indicator statement —
indicator, value, unit, direction (下降/增长), target or result, period, sentence offsets — and a
comparison question is answered from that table: the matching facts of *all* documents, grouped
by what is compared (a region, or a year for national reports), ranked here.

Extraction works on the folded text (simplified, half width, same offsets as the original). It
knows the patterns "A同比下降X%", "A、B分别下降X%、Y%" (paired in order), "N批M人次,同比分别下降
X%和Y%", and levels of known indicators ("地区生产总值660.5亿元"). Indicator names come from
``rag/data/indicators.toml`` where known, else from the words before the verb.
"""

from __future__ import annotations

import json
import re
import threading
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rag.chunking import split_sentences
from rag.schemas import Chunk, Document, Fact, Filters
from rag.text import fold, normalize, strip_span

if TYPE_CHECKING:
    from rag.store import StoredChunk

_TAXONOMY = Path(__file__).parent / "data" / "indicators.toml"

_NUM = r"\d+(?:\.\d+)?"
_UNIT = (
    r"%|个百分点|万亿元|亿元|万元|元|亿美元|万人次|人次|万人|人|万吨|吨|万户|户|批|件|起|个|天|"
    r"万亩|亩|公里|万辆|辆|万"
)
# "新增" (newly added) names a level, not a change.
_DOWN = r"(?<!新)(?:下降|减少|降低|下滑|回落|压减|减|降)"
_UP = r"(?<!新)(?:增长|增加|上升|提高|提升|上涨|增|涨)"
_ADVERBS = r"同比|比上年|较上年|比去年|较去年|平均每年|平均|年均|每年|分别|累计|全年|净|了|\s"
_ADVERB = rf"(?:{_ADVERBS})*"
_QUAL = r"左右|以上|以内|以下|上下"
# One figure and what follows it; a list of figures "7%和52%", "15.1% 、73%".
_FIGURE = rf"({_NUM})\s*({_UNIT})?\s*({_QUAL})?"
_FIGURES = re.compile(rf"{_FIGURE}(?:\s*(?:、|和|与|及|,)\s*{_FIGURE})*")
_CHANGE = re.compile(rf"({_ADVERB})({_DOWN}|{_UP})({_ADVERB})(?={_NUM})")
_ITEM_SPLIT = re.compile(r"\s*(?:、|和|与|及|以及)\s*")
_COUNTED = re.compile(rf"({_NUM})\s*(批|人次|件|起|户|人)")
_CLAUSE = re.compile(r"[^,，;；:：。！？!?\n]+")
_YEAR = re.compile(r"((?:19|20)\d\d)年")
# A paragraph that announces goals ("主要预期目标是:") makes the figures after it targets; so do
# a qualifier on the figure (左右, 以上) and words of intent in its clause.
_TARGET_CONTEXT = re.compile(r"目标(?:任务)?(?:是|为)|预期目标\s*[:：]")
_TARGET_WORDS = re.compile(r"拟|力争|计划|确保|争取")
_LEAD_NOISE = re.compile(
    r"^(?:(?:19|20)\d\d年(?:\d{1,2}月)?|全年|今年|去年|上年|其中|预计|实现|完成|主要|累计|共|总计|"
    r"合计|(?:全区|全市|全县|全省|全国)(?!性)|[\s、])+"
)
_CJK2 = re.compile(r"[\u4e00-\u9fff]{2}")
_LINKS = r"\s|达到|达|为|是|突破|超过|约|拟按|按|控制在|稳定在|保持在|实现|完成"
_LEVEL_LINK = rf"(?:{_LINKS})*"
_LEVEL = re.compile(rf"{_LEVEL_LINK}{_FIGURE}(?:\s*{_NUM}\s*(?:批|人次|件|起|户|人))*")
_COUNTED_RUN = re.compile(rf"(?:{_NUM}\s*(?:批|人次|件|起|户|人)\s*)+")


@dataclass(frozen=True)
class Taxonomy:
    """Canonical indicator names, their aliases (simplified, and English) and families."""

    alias_to_canonical: dict[str, str]  # simplified alias → canonical
    family_of: dict[str, str]  # canonical → family
    totals: frozenset[str]  # canonical names that are a family's overall figure
    family_aliases: dict[str, str]  # alias (zh or en) of a family → family
    en_to_canonical: dict[str, str]

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Known aliases in ``text`` (folded): (start, end, canonical), longest first, no overlap."""
        found: list[tuple[int, int, str]] = []
        for alias in sorted(self.alias_to_canonical, key=len, reverse=True):
            for m in re.finditer(re.escape(alias), text, flags=re.IGNORECASE):
                if all(m.end() <= s or m.start() >= e for s, e, _ in found):
                    found.append((m.start(), m.end(), self.alias_to_canonical[alias]))
        return sorted(found)

    def glossary(self, english: str) -> dict[str, str]:
        """English terms of ``english`` the taxonomy knows, with their Chinese name (longest
        terms first, each word used once): a glossary for translating the question."""
        low = english.lower()
        out: dict[str, str] = {}
        terms = {**{a: f for a, f in self.family_aliases.items() if a.isascii()}}
        terms |= self.en_to_canonical
        for term in sorted(terms, key=len, reverse=True):
            m = re.search(rf"\b{re.escape(term.removesuffix('s'))}", low)  # either number
            if m:
                out[term] = terms[term]
                low = low[: m.start()] + " " * len(term) + low[m.end() :]
        return out


@lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    data = tomllib.loads(_TAXONOMY.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    family_of: dict[str, str] = {}
    totals: set[str] = set()
    en: dict[str, str] = {}
    for name, spec in data.get("indicator", {}).items():
        for a in [name, *spec.get("aliases", [])]:
            aliases[fold(a)] = name
        for a in spec.get("en", []):
            en[a.lower()] = name
        if spec.get("family"):
            family_of[name] = spec["family"]
        if spec.get("total"):
            totals.add(name)
    families: dict[str, str] = {}
    for name, spec in data.get("family", {}).items():
        for a in [name, *spec.get("aliases", []), *spec.get("en", [])]:
            families[fold(a).lower()] = name
    return Taxonomy(aliases, family_of, frozenset(totals), families, en)


# -- extraction -----------------------------------------------------------------------------------


def _indicator(subject: str) -> tuple[str, str | None] | None:
    """The indicator a subject phrase names: (name, canonical) or None when it names nothing.

    A known alias counts when it ends the phrase ("涉法涉诉来信"), not when the phrase goes on
    ("占GDP的比重"); otherwise the name is the phrase itself, less leading time and scope words
    and anything from its first figure on ("一产增加值1.7亿元" → 一产增加值)."""
    subject = subject.strip(" 、")
    found = taxonomy().find(subject)
    if found and not _CJK2.search(_FIGURES.sub("", subject[found[-1][1] :])):
        s, e, canonical = found[-1]
        return (canonical if canonical in subject[s:e] else subject[s:e]), canonical
    name = re.split(r"\d", _LEAD_NOISE.sub("", subject), maxsplit=1)[0]
    name = re.sub(rf"(?:{_LINKS}|{_ADVERBS})+$", "", name).strip(" 、")[-16:]
    return (name, None) if _CJK2.search(name) else None


def _figures(text: str, at: int) -> list[tuple[float, str, str]]:
    """The figures of a list starting at ``at``: (value, unit, qualifier)."""
    m = _FIGURES.match(text, at)
    if not m:
        return []
    return [
        (float(f.group(1)), f.group(2) or "", f.group(3) or "")
        for f in re.finditer(_FIGURE, m.group(0))
    ]


_Found = tuple[str, str | None, float, str, str | None, str, bool]


def _changes(folded: str, s: int, e: int, prev_subject: str) -> Iterable[_Found]:
    """Change statements in one clause ``folded[s:e]``: (indicator, canonical, value, unit,
    direction, qualifier, borrowed). ``prev_subject`` is the clause before, borrowed for
    "集体访442批2179人次,同比分别下降7%和52%"."""
    clause = folded[s:e]
    for m in _CHANGE.finditer(clause):
        subject = clause[: m.start()].strip()
        direction = "down" if re.fullmatch(_DOWN, m.group(2)) else "up"
        figures = _figures(clause, m.end())
        if not figures:
            continue
        borrowed = not _CJK2.search(subject) and bool(prev_subject)
        if borrowed:
            subject = prev_subject
        counted = _COUNTED.findall(subject)
        if len(figures) > 1 and len(counted) == len(figures):
            # "集体访442批2179人次,同比分别下降7%和52%": one indicator, counted two ways
            base = _indicator(subject[: _COUNTED.search(subject).start()])  # type: ignore[union-attr]
            if base is None:
                continue
            names = [(base[0] + ("批次" if u == "批" else u), base[1]) for _, u in counted]
        elif len(figures) > 1:
            items = [x for x in _ITEM_SPLIT.split(subject) if x.strip()]
            if len(items) != len(figures):
                continue
            named = [_indicator(x) for x in items]
            if any(n is None for n in named):
                continue
            names = [n for n in named if n is not None]
        else:
            one = _indicator(subject)
            if one is None:
                continue
            names = [one]
        for (name, canonical), (value, unit, qual) in zip(names, figures, strict=True):
            yield name, canonical, value, unit, direction, qual, borrowed
        return  # one statement per clause


def _levels(folded: str, s: int, e: int) -> Iterable[_Found]:
    """Levels of known indicators: "地区生产总值660.5亿元" → (name, canonical, value, unit, qual)."""
    clause = folded[s:e]
    if _CHANGE.search(clause):
        return
    for a_start, a_end, canonical in taxonomy().find(clause):
        m = _LEVEL.match(clause, a_end)
        if not m:
            continue
        name = clause[a_start:a_end]
        name = canonical if canonical in name else name
        counted = _COUNTED.findall(m.group(0))
        if len(counted) > 1 and _COUNTED_RUN.fullmatch(m.group(0)[m.start(1) - m.start() :]):
            # "集体访442批2179人次": the same indicator counted two ways
            for value, unit in counted:
                suffix = "批次" if unit == "批" else unit
                yield name + suffix, canonical, float(value), unit, None, "", False
        else:
            yield (
                name,
                canonical,
                float(m.group(1)),
                m.group(2) or "",
                None,
                m.group(3) or "",
                False,
            )


def extract_facts(
    text: str,
    doc_id: str,
    source: str = "",
    title: str = "",
    region: str | None = None,
    year: int | None = None,
    spans: Iterable[tuple[int, int]] | None = None,
) -> list[Fact]:
    """Every indicator statement of ``text`` (within ``spans``, the document's content)."""
    folded = fold(text)
    tax = taxonomy()
    facts: list[Fact] = []
    for span_start, span_end in spans or [(0, len(text))]:
        target_context = False
        for s, e in split_sentences(text, span_start, span_end):
            if "\n" in text[max(span_start, s - 1) : s]:
                target_context = False  # a new paragraph
            sentence = folded[s:e]
            target_context = target_context or bool(_TARGET_CONTEXT.search(sentence))
            years = _YEAR.findall(sentence)
            period = years[0] if years else (str(year) if year else None)
            prev: re.Match[str] | None = None
            for c in _CLAUSE.finditer(folded, s, e):
                clause = c.group(0)
                found = [
                    *_changes(folded, *c.span(), prev.group(0) if prev else ""),
                    *_levels(folded, *c.span()),
                ]
                for name, canonical, value, unit, direction, qual, borrowed in found:
                    # the fact's span: its clause, with the clause it borrowed its subject from
                    start = prev.start() if borrowed and prev else c.start()
                    start, end = strip_span(text, start, c.end())
                    kind: Literal["target", "result"] = (
                        "target"
                        if qual or target_context or _TARGET_WORDS.search(clause)
                        else "result"
                    )
                    facts.append(
                        Fact(
                            indicator=name,
                            canonical=canonical,
                            family=tax.family_of.get(canonical or ""),
                            value=value,
                            unit=unit,
                            direction=direction,
                            kind=kind,
                            period=period,
                            doc_id=doc_id,
                            source=source,
                            title=title,
                            region=region,
                            year=year,
                            start=start,
                            end=end,
                        )
                    )
                prev = c
    return facts


# Stored with each chunk: what the chunk's metadata does not already say.
_STORED = {
    *("indicator", "canonical", "family", "value", "unit", "direction", "kind", "period"),
    *("start", "end"),
}


def attach_facts(doc: Document, chunks: list[Chunk]) -> None:
    """Extract the document's facts (over its chunked content, paragraphs kept whole) and give
    each to the first chunk that holds its whole span."""
    spans: list[tuple[int, int]] = []
    for c in sorted(chunks, key=lambda c: c.start):
        if spans and c.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], c.end))
        else:
            spans.append((c.start, c.end))
    year = int(doc.date[:4]) if doc.date and doc.date[:4].isdigit() else None
    for f in extract_facts(doc.text, doc.doc_id, doc.source, doc.title, doc.region, year, spans):
        holder = next((c for c in chunks if c.start <= f.start and f.end <= c.end), None)
        if holder is not None:
            holder.facts.append(f)


def dump_facts(facts: list[Fact]) -> str:
    return json.dumps(
        [f.model_dump(include=_STORED, exclude_none=True) for f in facts], ensure_ascii=False
    )


def facts_from_chunks(chunks: Iterable[StoredChunk]) -> Iterator[Fact]:
    """The facts stored in chunks' metadata, completed from it (document, quote)."""
    for c in chunks:
        raw = c.metadata.get("facts")
        if not raw:
            continue
        m = c.metadata
        offset = int(m["start"])
        for d in json.loads(str(raw)):
            yield Fact(
                **d,
                doc_id=str(m["doc_id"]),
                source=str(m.get("source", "")),
                title=str(m.get("title", "")),
                region=m.get("region"),
                year=m.get("year"),
                quote=c.text[d["start"] - offset : d["end"] - offset],
            )


# -- questions ------------------------------------------------------------------------------------

_ASK_MORE = re.compile(
    r"最多|最高|最大|最快|最好|降幅最大|增幅最大|most|highest|largest|biggest|fastest|greatest|top",
    re.IGNORECASE,
)
_ASK_LESS = re.compile(r"最少|最低|最小|最慢|最差|least|lowest|smallest|slowest|fewest", re.I)
_ASK_COMPARE = re.compile(r"排名|排序|比较|对比|各地|各市|各区|\brank|\bcompar", re.IGNORECASE)
_ASK_DOWN = re.compile(
    rf"{_DOWN}|降幅|\bcut|declin|decreas|drop|fell|\bfall|reduc|lower(ed)?\b", re.IGNORECASE
)
_ASK_UP = re.compile(rf"{_UP}|增幅|grow|increas|\brise|\brose|rais", re.IGNORECASE)
_ASK_TARGET = re.compile(r"目标|预期|计划|target|goal|plan", re.IGNORECASE)
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
        if (a in left if _CJK2.search(a) else re.search(rf"\b{re.escape(a)}", left))
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
        kind="target" if _ASK_TARGET.search(low) else "result" if _ASK_RESULT.search(low) else None,
        years=(int(years.group(1)), int(years.group(2))) if years else None,
    )


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


# -- comparison -----------------------------------------------------------------------------------


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
        key = (f.doc_id, f.start, f.indicator, f.value)
        if key not in seen:
            seen.add(key)
            groups.setdefault(f.entity or "", []).append(f)
    if not groups:
        return None
    return Comparison(query, list(groups.items()), flagged, by_year)


# -- the table ------------------------------------------------------------------------------------


class FactTable:
    """All facts of the committed chunks, reloaded when the index version moves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._facts: list[Fact] = []

    def get(self, version: int, load: Callable[[], Iterable[Fact]]) -> list[Fact]:
        with self._lock:
            if version != self._version:
                seen: set[tuple[str, int, str, float]] = set()
                facts = []
                for f in load():
                    key = (f.doc_id, f.start, f.indicator, f.value)
                    if key not in seen:  # overlapping chunks carry a sentence twice
                        seen.add(key)
                        facts.append(f)
                self._facts, self._version = facts, version
            return self._facts
