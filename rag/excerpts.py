"""Excerpts: which sentences of the retrieved passages answer the question, and how they are shown.

Prompt length dominates latency on a CPU, so the prompt holds only the sentences that matter:
from each of the best passages, the sentence(s) sharing the most informative words with the
question, numbered ``[1]..[n]`` and headed by their document's title, date and region. The same
excerpts, cited, are the extractive answer.

Citation-like markers inside a document's own text ("…5400户[9]", "据国务院【1】通报") are data,
not citations: they are taken out wherever passage text is shown as ours (the prompt, the
extractive answer), so a document can neither forge a citation nor have a model copy one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from rag.chunking import split_sentences
from rag.citations import has_figure, numbers_in, strip_markers
from rag.compare import CHANGE_WORDS
from rag.config import AnswerSettings
from rag.facts import taxonomy
from rag.lexical import Words, tokenize
from rag.periods import HEADING, Clock, Period, heading_at, headings
from rag.schemas import Fact, Located, Passage, SearchHit, year_of
from rag.slots import parse, place_names, places_in
from rag.text import fold, looks_like_instruction, normalize, strip_span

# Share of the question's informative words found in the best excerpt (and its title): above
# STRONG the passages answer it (a model refusal is overruled); below WEAK they do not.
STRONG_EVIDENCE = 0.6
WEAK_EVIDENCE = 0.3
# A sentence of the kind a question asks for (target or result) scores this much more, one of
# another kind this much less; so does a sentence about the period asked (2021's result).
KIND_MATCH = 1.25
PERIOD_MATCH = 1.5
# Within a document, question words found in its title weigh this much (see select_excerpts).
TITLE_WORD_WEIGHT = 0.2
# A neighbouring sentence joins an excerpt when it scores at least this share of the best one.
NEIGHBOUR_SHARE = 0.5


@dataclass(frozen=True)
class Scored:
    hit: SearchHit
    start: int  # offsets into the document
    end: int
    score: float


@dataclass(frozen=True)
class Asked:
    """What a question asks for beyond its words: a target or a result, of which years."""

    kind: Literal["target", "result"] | None = None
    years: tuple[int, int] | None = None

    def factor(self, period: Period | None) -> float:
        """How much a sentence speaking of ``period`` is preferred (1: no preference)."""
        if period is None:
            return 1.0
        factor = 1.0
        if self.kind is not None and period.kind is not None:
            same = (self.kind == "result") == (period.kind == "result")
            factor *= KIND_MATCH if same else 1 / KIND_MATCH
        if self.years is not None:
            factor *= PERIOD_MATCH if period.overlaps(*self.years) else 1 / PERIOD_MATCH
        return factor


def _sentence_score(sentence: str, query_weights: dict[str, float]) -> float:
    tokens = set(tokenize(sentence))
    score = sum(w for t, w in query_weights.items() if t in tokens)
    return score * (1.1 if numbers_in(sentence) else 1.0)  # facts carry numbers


def query_weights(question: str, index: Words | None) -> dict[str, float]:
    """Informative query words: idf from the index (unknown words count as rare)."""
    weights = {}
    for t in dict.fromkeys(tokenize(question)):
        idf = index.idf(t) if index is not None and index.knows(t) else 0.0
        weights[t] = idf if idf > 0 else (1.0 if index is not None and not index.knows(t) else 0.5)
    return weights


def coverage(text: str, weights: dict[str, float]) -> float:
    """Share of the question's informative weight whose words occur in ``text`` (0..1)."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    tokens = set(tokenize(text))
    return sum(w for t, w in weights.items() if t in tokens) / total


def off_topic(question: str, passage: Passage, weights: dict[str, float]) -> bool:
    """Whether the rarest word of what a (Chinese) question is about — its topic, 国防 of
    "国防预算增长多少" — is in neither the passage nor its title: the passage is about
    something else (中央预算内投资) even if it shares the other words."""
    parsed = parse(question)
    words = [t for t in tokenize(parsed.slot(parsed.topic)) if weights.get(t, 0.0) > 0]
    if not words:
        return False
    rarest = max(words, key=lambda t: weights[t])
    return rarest not in set(tokenize(passage.text + passage.title))


def _bare_title(sentence: str, title: str) -> bool:
    """A title line without a figure of its own ("2021年政府工作报告") says which document, not
    what it says."""
    return sentence.strip() == title and not has_figure(sentence)


def about_sentence(sentence: str, passage: Located) -> bool:
    """Whether a passage is about the places an answer sentence names (any, when it names
    none): the citation check's test that a figure is of the place it is said of."""
    return about(places_in(sentence), passage)


@lru_cache(maxsize=4096)
def place_words(title: str, region: str | None) -> frozenset[str]:
    """Index tokens of the document's region and of the place names in its title."""
    import jieba.posseg as pseg

    names = [w.word for w in pseg.cut(normalize(title)) if w.flag == "ns"]
    return frozenset(t for name in [*names, region or ""] for t in tokenize(name))


_CLAUSE = re.compile(r"[^,，;；:：]+[,，;；:：]?")


def best_clauses(
    text: str, start: int, end: int, weights: dict[str, float], max_chars: int
) -> tuple[int, int]:
    """Within an over-long sentence ``text[start:end]``, the best-scoring run of clauses that
    fits in ``max_chars`` (a 300-character list of targets becomes the clause that matters)."""
    clauses = [m.span() for m in _CLAUSE.finditer(text, start, end)]
    if len(clauses) < 2:
        return start, end
    scores = [_sentence_score(text[s:e], weights) for s, e in clauses]
    lo = hi = max(range(len(clauses)), key=lambda i: scores[i])
    while True:
        options = [i for i in (lo - 1, hi + 1) if 0 <= i < len(clauses)]
        options = [
            i
            for i in options
            if max(clauses[hi][1], clauses[i][1]) - min(clauses[lo][0], clauses[i][0]) <= max_chars
        ]
        if not options:
            break
        i = max(options, key=lambda i: scores[i])
        lo, hi = min(lo, i), max(hi, i)
    return strip_span(text, clauses[lo][0], clauses[hi][1])


def about(places: list[str], hit: Located) -> bool:
    """Whether a hit is about one of the places a question names (no place named: any hit is):
    a figure of 城阳区 does not answer a question about 龙港市."""
    if not places:
        return True
    text = fold(f"{hit.title} {hit.region or ''} {hit.text}")
    return any(name in text for p in places for name in place_names(p))


def select_excerpts(
    hits: list[SearchHit],
    weights: dict[str, float],
    settings: AnswerSettings,
    asked: Asked | None = None,
) -> list[Scored]:
    """The best sentence window of each hit, most relevant first, at most ``context_passages``.

    Words of the question that name the document's place (its region, places in its title) say
    which document, not which sentence: within that document they count for little. A sentence
    of the kind and period asked (``asked``: the target for 2019, the result of 2021) is
    preferred; the period of each is read by ``rag.periods`` (the report of 2022 says 2021's
    result under "一、2021年工作回顾").
    """
    excerpts: list[Scored] = []
    for rank, hit in enumerate(hits):
        spans = split_sentences(hit.text, 0, len(hit.text))
        if not spans:
            continue
        places = place_words(hit.title, hit.region)
        local = {t: w * (TITLE_WORD_WEIGHT if t in places else 1.0) for t, w in weights.items()}
        clock = Clock.of(hit.date, hit.title)
        parts = headings(hit.text)
        scores = [
            0.0
            if looks_like_instruction(hit.text[s:e])
            or HEADING.match(hit.text[s:e])
            or _bare_title(hit.text[s:e], hit.title)
            else _sentence_score(hit.text[s:e], local)
            * (
                asked.factor(clock.read(hit.text[s:e], heading_at(parts, s) or hit.section))
                if asked
                else 1.0
            )
            for s, e in spans
        ]
        best = max(range(len(spans)), key=lambda i: scores[i])
        lo = hi = best
        while hi - lo + 1 < settings.excerpt_sentences:
            left = scores[lo - 1] if lo > 0 else -1.0
            right = scores[hi + 1] if hi + 1 < len(spans) else -1.0
            if max(left, right) < NEIGHBOUR_SHARE * scores[best] or max(left, right) <= 0:
                break
            if right >= left:
                hi += 1
            else:
                lo -= 1
        if scores[best] <= 0 and (
            rank > 0 or looks_like_instruction(hit.text[spans[best][0] : spans[best][1]])
        ):
            continue
        start, end = spans[lo][0], spans[hi][1]
        if end - start > settings.excerpt_chars:
            start, end = best_clauses(hit.text, *spans[best], local, settings.excerpt_chars)
        excerpts.append(Scored(hit, hit.start + start, hit.start + end, max(scores[lo : hi + 1])))
    # The most relevant excerpts first: a small model reads the head of its prompt best. The
    # same sentence from two overlapping chunks is given once; excerpts far weaker than the
    # best only lengthen the prompt (its length is most of the latency on a CPU).
    excerpts.sort(key=lambda x: -x.score)
    unique = {(x.hit.doc_id, x.start, x.end): x for x in reversed(excerpts)}
    kept = sorted(unique.values(), key=lambda x: -x.score)
    floor = settings.min_excerpt_share * kept[0].score if kept else 0.0
    chosen = [x for x in kept if x.score >= floor][: settings.context_passages]
    # Excerpts of one document together (documents in order of their best excerpt), so the
    # prompt heads them with its title once.
    first = {x.hit.doc_id: i for i, x in reversed(list(enumerate(chosen)))}
    return sorted(chosen, key=lambda x: first[x.hit.doc_id])


def to_passages(excerpts: list[Scored]) -> list[Passage]:
    out = []
    for n, x in enumerate(excerpts, start=1):
        h = x.hit
        out.append(
            Passage(
                n=n,
                doc_id=h.doc_id,
                source=h.source,
                title=h.title,
                date=h.date,
                region=h.region,
                start=x.start,
                end=x.end,
                text=h.text[x.start - h.start : x.end - h.start],
                score=round(x.score, 4),
                kb=h.kb,
            )
        )
    return out


def format_passages(passages: list[Passage], hints: dict[int, list[Fact]] | None = None) -> str:
    """Numbered passages under their document's title, date and region; a passage's facts that the question
    names follow it spelled out ("集体访人次下降52%"), so a small model need not pair
    "分别下降7%和52%" itself."""
    lines = []
    for i, p in enumerate(passages):
        if i == 0 or passages[i - 1].doc_id != p.doc_id:
            meta = ",".join(v for v in (p.date, p.region) if v)
            lines.append(f"《{p.title}》" + (f"({meta})" if meta else ""))
        lines.append(f"[{p.n}] {strip_markers(p.text)}")
        if hints and hints.get(p.n):
            lines.append("(" + ";".join(fact_phrase(f) for f in hints[p.n]) + ")")
    return "\n".join(lines)


def fact_phrase(f: Fact) -> str:
    verb = CHANGE_WORDS["zh"].get(f.direction or "", "")
    return f"{f.indicator}{verb}{f.figure}"


def fact_hints(passages: list[Passage], facts: list[Fact], query: str) -> dict[int, list[Fact]]:
    """For each passage, its facts whose indicator the question names."""
    q = fold(query)
    known = {c for _, _, c in taxonomy().find(q)}
    named = [
        f for f in facts if (len(f.indicator) >= 2 and f.indicator in q) or f.canonical in known
    ]
    out: dict[int, list[Fact]] = {}
    for p in passages:
        inside = [f for f in named if f.doc_id == p.doc_id and p.start <= f.start < p.end]
        if inside:
            out[p.n] = inside
    return out


def missing_entities(question: str, index: Words | None) -> list[str]:
    """Place and organization names in the question that no indexed chunk mentions."""
    if index is None:
        return []
    import jieba.posseg as pseg

    names = [
        w.word for w in pseg.cut(normalize(question)) if w.flag in ("ns", "nt") and len(w.word) >= 2
    ]
    return [n for n in names if not any(index.knows(t) for t in tokenize(n))]


def extractive_answer(passages: list[Passage], lang: str) -> str:
    """The best excerpts themselves, each cited: the top one, plus others nearly as good from
    other documents (a question about several places gets each place's sentence)."""
    best = passages[0].score
    chosen = [passages[0]]
    for p in passages[1:]:
        if p.score >= 0.6 * best and p.doc_id not in {c.doc_id for c in chosen} and len(chosen) < 3:
            chosen.append(p)
    lines = []
    regions = [p.region for p in chosen]
    for p in chosen:
        where = source_label(p, by_region=len(set(regions)) == len(regions), lang=lang)
        if where and len(chosen) == 1 and p.region != "全国" and not (p.region is None and p.date):
            # one place's document answers: the place is the question's own (a dated document
            # of no place, one of a series of reports, still says which it is)
            where = ""
        text = strip_markers(p.text)
        body = text.rstrip("。！？!?；;")
        lines.append(f"{where}{body}[{p.n}]{text[len(body) :]}")
    return "\n".join(lines)


_TITLE_NOISE = re.compile(r"中华人民共和国|国务院|中國|[《》“”]")


def source_label(p: Passage, by_region: bool, lang: str = "zh") -> str:
    """Where a figure is from, as a lead: its place ("龙港市:") when the passages are of
    different places, else its document: "2019年政府工作报告:" (a national report's figures
    are told apart by year, not by the place "全国")."""
    colon = ":" if lang == "zh" else ": "
    if by_region and p.region and p.region != "全国":
        return f"{p.region}{colon}"
    title = _TITLE_NOISE.sub("", fold(p.title)).strip()
    if not title:
        return ""
    year = year_of(p.date)
    if year is not None and str(year) not in title:
        title = f"{year}年{title}" if lang == "zh" else f"{title} ({year})"
    return f"{title[:30]}{colon}"
