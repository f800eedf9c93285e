"""Indicator facts extracted at ingest.

Extraction works on the folded text (simplified, half width, same offsets as the original). It
knows the patterns "A同比下降X%", "A、B分别下降X%、Y%" (paired in order), "N批M人次,同比分别下降
X%和Y%", and levels of known indicators ("地区生产总值660.5亿元"). Indicator names come from
the taxonomy where known, else from the words before the verb.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rag.chunking import split_sentences
from rag.facts.patterns import (
    ADVERBS,
    CHANGE,
    CJK2,
    CLAUSE,
    COUNTED,
    COUNTED_RUN,
    DOWN,
    FIGURE,
    FIGURES,
    ITEM_SPLIT,
    LEAD_NOISE,
    LEVEL,
    LINKS,
    OPEN_LEVEL,
    PLAN_WORDS,
    TARGET_CONTEXT,
    TARGET_WORDS,
)
from rag.facts.stored import dump_facts
from rag.facts.taxonomy import taxonomy
from rag.periods import Clock, Kind, Period, heading_at, headings
from rag.schemas import Chunk, Document, Fact
from rag.text import fold, strip_span


def _indicator(subject: str) -> tuple[str, str | None] | None:
    """The indicator a subject phrase names: (name, canonical) or None when it names nothing.

    A known alias counts when it ends the phrase ("涉法涉诉来信"), not when the phrase goes on
    ("占GDP的比重"); otherwise the name is the phrase itself, less leading time and scope words
    and anything from its first figure on ("一产增加值1.7亿元" → 一产增加值)."""
    subject = subject.strip(" 、")
    found = taxonomy().find(subject)
    if found and not CJK2.search(FIGURES.sub("", subject[found[-1][1] :])):
        s, e, canonical = found[-1]
        return (canonical if canonical in subject[s:e] else subject[s:e]), canonical
    name = re.split(r"\d", LEAD_NOISE.sub("", subject), maxsplit=1)[0]
    name = re.sub(rf"(?:{LINKS}|{ADVERBS})+$", "", name).strip(" 、")[-16:]
    return (name, None) if CJK2.search(name) else None


def _figures(text: str, at: int) -> list[tuple[float, str, str]]:
    """The figures of a list starting at ``at``: (value, unit, qualifier)."""
    m = FIGURES.match(text, at)
    if not m:
        return []
    return [
        (float(f.group(1)), f.group(2) or "", f.group(3) or "")
        for f in re.finditer(FIGURE, m.group(0))
    ]


_Found = tuple[str, str | None, float, str, str | None, str, bool]


def _changes(folded: str, s: int, e: int, prev_subject: str) -> Iterable[_Found]:
    """Change statements in one clause ``folded[s:e]``: (indicator, canonical, value, unit,
    direction, qualifier, borrowed). ``prev_subject`` is the clause before, borrowed for
    "集体访442批2179人次,同比分别下降7%和52%"."""
    clause = folded[s:e]
    for m in CHANGE.finditer(clause):
        subject = clause[: m.start()].strip()
        direction = "down" if re.fullmatch(DOWN, m.group(2)) else "up"
        figures = _figures(clause, m.end())
        if not figures:
            continue
        borrowed = not CJK2.search(subject) and bool(prev_subject)
        if borrowed:
            subject = prev_subject
        counted = COUNTED.findall(subject)
        if len(figures) > 1 and len(counted) == len(figures):
            # "集体访442批2179人次,同比分别下降7%和52%": one indicator, counted two ways
            base = _indicator(subject[: COUNTED.search(subject).start()])  # type: ignore[union-attr]
            if base is None:
                continue
            names = [(base[0] + ("批次" if u == "批" else u), base[1]) for _, u in counted]
        elif len(figures) > 1:
            items = [x for x in ITEM_SPLIT.split(subject) if x.strip()]
            if len(items) != len(figures):
                continue
            named = [_indicator(x) for x in items]
            if any(n is None for n in named):
                continue
            names = [n for n in named if n is not None]
        else:
            if FIGURES.search(subject):  # "粮食产量跃上1.4万亿斤新台阶、亩产提升10.1斤": 亩产
                subject = subject.rsplit("、", 1)[-1]
            one = _indicator(subject)
            if one is None:
                continue
            names = [one]
        for (name, canonical), (value, unit, qual) in zip(names, figures, strict=True):
            yield name, canonical, value, unit, direction, qual, borrowed
        return  # one statement per clause


def _open_levels(clause: str) -> Iterable[_Found]:
    """Levels of any indicator, named as the document names it: "赤字率拟按4%左右安排",
    "粮食产量达到6.07亿吨", "拟安排地方政府专项债券2.15万亿元" (a figure with a unit, after the
    words that name it)."""
    for m in OPEN_LEVEL.finditer(clause):
        if not m.group(3):  # a bare number names nothing comparable
            continue
        named = _indicator(m.group(1))
        if named is None:
            continue
        yield named[0], named[1], float(m.group(2)), m.group(3), None, m.group(4) or "", False
        return  # the first figure of a clause is the one its words name


def _levels(folded: str, s: int, e: int) -> Iterable[_Found]:
    """Levels of known indicators: "地区生产总值660.5亿元" → (name, canonical, value, unit, qual);
    of any other, as ``_open_levels`` finds them."""
    clause = folded[s:e]
    if CHANGE.search(clause):
        # "粮食产量首次跃上1.4万亿斤新台阶、亩产提升10.1斤": the items without a change
        for item in clause.split("、"):
            if not CHANGE.search(item):
                yield from _open_levels(item)
        return
    found = taxonomy().find(clause)
    if not found:
        yield from _open_levels(clause)
        return
    for a_start, a_end, canonical in found:
        m = LEVEL.match(clause, a_end)
        if not m:
            continue
        name = clause[a_start:a_end]
        name = canonical if canonical in name else name
        counted = COUNTED.findall(m.group(0))
        if len(counted) > 1 and COUNTED_RUN.fullmatch(m.group(0)[m.start(1) - m.start() :]):
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


def _kind(
    clause: str, qual: str, target_context: bool, period: Period | None, year: int | None
) -> Kind:
    """What a figure's clause states: a target (预期目标, 力争), a plan (拟, 安排) or a result. A
    figure of a past period is a result unless its clause says otherwise (a review's "控制在3.3%",
    "稳定在5%左右"); one of the document's own year with a qualifier (左右, 以上) is a target, and
    one its sentence sets for this year (今年…) takes the sentence's kind."""
    if target_context or TARGET_WORDS.search(clause):
        return "target"
    if PLAN_WORDS.search(clause):
        return "plan"
    if period is None or year is None:
        return "target" if qual else "result"
    if period.last < year or period.kind == "result":
        return "result"
    if qual:
        return "target"
    return period.kind if period.kind in ("target", "plan") else "result"


def extract_facts(
    text: str,
    doc_id: str,
    source: str = "",
    title: str = "",
    region: str | None = None,
    date: str | None = None,
    spans: Iterable[tuple[int, int]] | None = None,
) -> list[Fact]:
    """Every indicator statement of ``text`` (within ``spans``, the document's content), each
    with the period it speaks of (``rag.periods``: the report of 2019 reviews 2018)."""
    folded = fold(text)
    tax = taxonomy()
    clock = Clock.of(date, title)
    parts = headings(text)
    facts: list[Fact] = []
    for span_start, span_end in spans or [(0, len(text))]:
        target_context = False
        for s, e in split_sentences(text, span_start, span_end):
            if "\n" in text[max(span_start, s - 1) : s]:
                target_context = False  # a new paragraph
            sentence = folded[s:e]
            target_context = target_context or bool(TARGET_CONTEXT.search(sentence))
            period = clock.read(sentence, heading_at(parts, s))
            prev: re.Match[str] | None = None
            for c in CLAUSE.finditer(folded, s, e):
                clause = c.group(0)
                found = [
                    *_changes(folded, *c.span(), prev.group(0) if prev else ""),
                    *_levels(folded, *c.span()),
                ]
                for name, canonical, value, unit, direction, qual, borrowed in found:
                    # the fact's span: its clause, with the clause it borrowed its subject from
                    start = prev.start() if borrowed and prev else c.start()
                    start, end = strip_span(text, start, c.end())
                    kind = _kind(clause, qual, target_context, period, clock.year)
                    facts.append(
                        Fact(
                            indicator=name,
                            canonical=canonical,
                            family=tax.family_of.get(canonical or ""),
                            value=value,
                            unit=unit,
                            qualifier=qual,
                            direction=direction,
                            kind=kind,
                            period=period.label if period else None,
                            doc_id=doc_id,
                            source=source,
                            title=title,
                            region=region,
                            year=clock.year,
                            start=start,
                            end=end,
                        )
                    )
                prev = c
    return facts


def attach_facts(doc: Document, chunks: list[Chunk]) -> None:
    """Extract the document's facts (over its chunked content, paragraphs kept whole) and store
    each with the first chunk that holds its whole span (``chunk.metadata["facts"]``)."""
    spans: list[tuple[int, int]] = []
    for c in sorted(chunks, key=lambda c: c.start):
        if spans and c.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], c.end))
        else:
            spans.append((c.start, c.end))
    held: dict[int, list[Fact]] = {}
    for f in extract_facts(
        doc.text, doc.doc_id, doc.source, doc.title, doc.region, doc.date, spans
    ):
        holder = next(
            (i for i, c in enumerate(chunks) if c.start <= f.start and f.end <= c.end), None
        )
        if holder is not None:
            held.setdefault(holder, []).append(f)
    for i, facts in held.items():
        chunks[i].metadata["facts"] = dump_facts(facts)
