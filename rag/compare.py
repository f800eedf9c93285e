"""The answer to a comparison question, written from a ranked ``Comparison`` (rag/facts.py).

The ranking is computed, not generated: the text leads with the winner, lists every entity's
figures, each cited ``[n]`` to the clause that states it, then says what is not comparable —
different indicators across entities, who alone reports the overall figure (信访总量), and
implausible figures left out of the ranking. A language model may rewrite the lead sentence
(``prompts/compare_*.md``); the chain keeps its sentence only if it names the computed winner.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.facts import Comparison
from rag.schemas import Fact, Passage


@dataclass
class Written:
    lead: str
    body: str
    passages: list[Passage]
    facts: list[Fact]
    rank: bool = True  # a ranking (a model may rewrite its lead), not a series


# (language, descending?, direction) → how the winner is announced
_SUPERLATIVE: dict[tuple[str, bool, str | None], str] = {
    ("zh", True, "down"): "降幅最大",
    ("zh", True, "up"): "增幅最大",
    ("zh", True, None): "最高",
    ("zh", False, "down"): "降幅最小",
    ("zh", False, "up"): "增幅最小",
    ("zh", False, None): "最低",
    ("en", True, "down"): "largest decline",
    ("en", True, "up"): "largest increase",
    ("en", True, None): "highest",
    ("en", False, "down"): "smallest decline",
    ("en", False, "up"): "smallest increase",
    ("en", False, None): "lowest",
}
# How a change is said, by language (the facts' ``direction``).
CHANGE_WORDS: dict[str, dict[str, str]] = {
    "zh": {"down": "下降", "up": "增长"},
    "en": {"down": "down", "up": "up"},
}
_WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "target": "目标",
        "by_region": "各地数据:",
        "by_year": "各年数据:",
        "mixed": "注意:各{what}报告的指标不同({names}),数字不能严格比较。",
        "what_region": "地",
        "what_year": "年",
        "only_total": "只有{who}报告了{name}({fig})。",
        "only_one": "只有{who}报告了这项数据。",
        "flag": "{who}称{name}{fig},降幅超过百分之百,不合常理,未计入比较。",
        "sep": "、",
        "end": "。",
        "colon": ":",
    },
    "en": {
        "target": " target",
        "by_region": "Figures by region:",
        "by_year": "Figures by year:",
        "mixed": "Note: the {what} report different indicators ({names}), so the figures are "
        "not strictly comparable.",
        "what_region": "regions",
        "what_year": "years",
        "only_total": "Only {who} reports {name} ({fig}).",
        "only_one": "Only {who} reports this figure.",
        "flag": "{who} reports {name} {fig}, a decline larger than the whole: implausible, left "
        "out of the ranking.",
        "sep": "; ",
        "end": ".",
        "colon": ": ",
    },
}


def write(comparison: Comparison, lang: str) -> Written:
    """The template answer: lead, per-entity figures, notes; passages numbered in citing order."""
    w = _WORDS[lang]
    passages: list[Passage] = []
    markers: dict[tuple[str, int, int], int] = {}
    cited: dict[tuple[str, int, str, float], Fact] = {}

    def cite(f: Fact) -> Fact:
        """The fact with the marker of its clause's passage (numbered on first use)."""
        if f.key in cited:
            return cited[f.key]
        key = (f.doc_id, f.start, f.end)
        if key not in markers:
            markers[key] = len(passages) + 1
            passages.append(
                Passage(
                    n=markers[key],
                    doc_id=f.doc_id,
                    source=f.source,
                    title=f.title,
                    date=f.period,
                    region=f.region,
                    start=f.start,
                    end=f.end,
                    text=f.quote or "",
                    score=1.0,
                    kb=f.kb,
                )
            )
        cited[f.key] = f.model_copy(update={"marker": markers[key]})
        return cited[f.key]

    def figure(f: Fact) -> str:
        name = f.indicator + (w["target"] if f.kind == "target" else "")
        change = CHANGE_WORDS[lang].get(f.direction or "", "")
        verb = change if lang == "zh" else f" {change} " if change else " "
        return f"{name}{verb}{f.figure}[{f.marker}]"

    q = comparison.query
    entity, best = comparison.winner
    best = cite(best)
    lead = _lead(comparison, entity, figure(best), lang)
    lines = [w["by_year" if comparison.by_year else "by_region"]]
    for name, group in comparison.groups:
        figures = w["sep"].join(figure(cite(f)) for f in group)
        lines.append(f"- {name}{w['colon']}{figures}{w['end']}")
    what = w["what_year" if comparison.by_year else "what_region"]
    if len(comparison.groups) == 1:
        lines.append(w["only_one"].format(who=entity))
    if comparison.mixed_indicators:
        names = w["sep"].join(dict.fromkeys(g[0].indicator for _, g in comparison.groups))
        lines.append(w["mixed"].format(what=what, names=names))
    totals = comparison.totals()
    if totals and q.families and len({f.entity for f in totals}) < len(comparison.groups):
        for f in totals:
            f = cite(f)
            lines.append(
                w["only_total"].format(
                    who=f.entity, name=f.indicator, fig=figure(f)[len(f.indicator) :].strip()
                )
            )
    for f in comparison.flagged:
        f = cite(f)
        lines.append(
            w["flag"].format(
                who=f.entity, name=f.indicator, fig=figure(f)[len(f.indicator) :].strip()
            )
        )
    return Written(lead, "\n".join(lines), passages, list(cited.values()), q.mode == "rank")


def _lead(comparison: Comparison, entity: str, best: str, lang: str) -> str:
    """The answer's first sentence: the winner, the first year (past the threshold), the years
    alike, or the series from its first year to its last."""
    q = comparison.query
    zh = lang == "zh"
    if q.mode == "first":
        said = f"首次{q.said}" if q.said else "首次出现"
        return (
            f"{entity}{said}:{best}。"
            if zh
            else f"{entity} is the first year{' ' + q.said if q.said else ''}: {best}."
        )
    if q.mode == "same":
        value = comparison.groups[0][1][0].value
        alike = [e for e, fs in comparison.groups if fs[0].value == value]
        if len(alike) > 1:
            return (
                f"{'和'.join(alike)}相同:{best}。"
                if zh
                else f"{' and '.join(alike)} are the same: {best}."
            )
    if q.mode in ("trend", "same"):
        first, last = comparison.groups[0][0], comparison.groups[-1][0]
        return f"{first}至{last}的变化如下。" if zh else f"From {first} to {last}:"
    superlative = _SUPERLATIVE[(lang, q.descending, q.direction)]
    return f"{entity}{superlative}:{best}。" if zh else f"{entity} has the {superlative}: {best}."


def format_facts(written: Written, lang: str) -> str:
    """The cited facts as prompt lines: ``[n] entity | indicator | change | figure``."""
    rows = []
    for f in written.facts:
        change = CHANGE_WORDS[lang].get(f.direction or "", "-")
        rows.append(
            f"[{f.marker}] {f.entity} | {f.indicator} | {change} | "
            f"{f.figure}" + (" | implausible" if f.implausible else "")
        )
    return "\n".join(rows)
