"""The answer chain: retrieve → select excerpts → prompt → generate → cite → verify.

``AnswerChain.stream`` reads top to bottom. A comparison question is answered from the
computed ranking of indicator facts (``rag/facts``, written by ``rag/compare.py``). Any other
question: retrieve (an English question also in Chinese), select the excerpts that answer it
(``rag/excerpts.py``), refuse when there is nothing to answer from, else answer — extractively
without a model, or by a model streamed under its deadline (``rag/generation.py``), whose text
is replaced by the extractive answer when it cannot stand. Every answer's markers are then
resolved to their passages and verified (``rag/citations.py``).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import prompts
from rag.answerable import answers
from rag.citations import has_figure, number_in, numbers_in, resolve
from rag.compare import Written, format_facts, write
from rag.config import AnswerSettings
from rag.conversation import Resolved, accept_rewrite
from rag.excerpts import (
    STRONG_EVIDENCE,
    WEAK_EVIDENCE,
    Asked,
    Scored,
    about,
    about_sentence,
    coverage,
    extractive_answer,
    fact_hints,
    format_passages,
    missing_entities,
    off_topic,
    query_weights,
    select_excerpts,
    to_passages,
)
from rag.facts import Comparison, asked_kind, compare, parse_question, taxonomy
from rag.generation import generate, judge, ms_since, pointed_first
from rag.periods import time_scope
from rag.retrieval import Retriever
from rag.schemas import (
    ChatEvent,
    Citation,
    CitationsEvent,
    DocumentInfo,
    DoneEvent,
    Fact,
    FactsEvent,
    Filters,
    Passage,
    PassagesEvent,
    TokenEvent,
    Turn,
    year_of,
)
from rag.slots import english_places, pinyin_index, place_names, places_in
from rag.text import fold

_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_LANGS = ("zh", "en")
# A place named in a question scopes the search to the documents about it, when they are few.
_PLACE_DOCS = 100
# A question that asks for a figure (the answer must hold a number).
_ASKS_FIGURE = re.compile(r"多少|几(?:个|项|倍|成)|how (?:much|many|fast)|what (?:\w+ )?rate", re.I)
# How a question names the kind of report it asks about ("政府工作报告").
_REPORT_NAME = re.compile(r"(?:政府)?工作报告|报告")


def language(question: str) -> str:
    """``en`` for a question written in Latin letters without Chinese, else ``zh``."""
    return "en" if _LATIN.search(question) and not _CJK.search(question) else "zh"


def refusal(lang: str) -> str:
    return prompts.load(f"refusal_{lang}")


def _template(system: str, human: str) -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages([("system", system), ("human", human)])


@dataclass(frozen=True)
class Draft:
    """The text an answer settles on, before its markers are resolved, and how it came about."""

    text: str
    passages: list[Passage]
    refused: bool = False
    fallback: bool = False
    facts: list[Fact] | None = None
    note: str = ""  # said after the cited text: the years a range asked about lacks


class AnswerChain:
    def __init__(
        self,
        retriever: Retriever,
        settings: AnswerSettings,
        timeout_s: float,
        facts: Callable[[], list[Fact]] | None = None,
        catalog: Callable[[], list[DocumentInfo]] | None = None,
    ) -> None:
        self.retriever = retriever
        self.facts = facts
        self.catalog = catalog
        self._places: tuple[list[DocumentInfo], dict[str, str]] | None = None
        self.settings = settings
        self.timeout_s = timeout_s
        self._prompts = {
            lang: _template(
                prompts.load(f"answer_system_{lang}"), prompts.load(f"answer_user_{lang}")
            )
            for lang in _LANGS
        }
        self._compare_prompts = {
            lang: _template(prompts.load(f"compare_system_{lang}"), prompts.load("compare_user"))
            for lang in _LANGS
        }

    def stream(
        self,
        question: str,
        model: BaseChatModel | None,
        top_k: int | None = None,
        filters: Filters | None = None,
    ) -> Iterator[ChatEvent]:
        """Events: passages, token…, citations, facts (comparison answers), done."""
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        lang = language(question)

        absent = self.missing_reports(question, lang)
        if absent is not None:  # a report the corpus does not hold: said plainly, not guessed
            timings["retrieval_ms"] = ms_since(t0)
            yield PassagesEvent(passages=[])
            yield from self._finish(Draft(absent, [], refused=True), question, timings, t0)
            return

        ranked = self.comparison(question, filters)
        if ranked is not None:
            written = write(ranked, lang)
            timings["retrieval_ms"] = ms_since(t0)
            yield PassagesEvent(passages=written.passages)
            draft = yield from self._comparison_answer(written, model, lang, question, timings, t0)
            draft = replace(draft, note=self.gaps(ranked.query.reports, lang))
            yield from self._finish(draft, question, timings, t0)
            return

        query = self.retrieval_query(question, lang, model, timings, t0)
        query, scoped, places = self.scope(question, query, filters)
        hits = self.retriever.search(query, top_k=top_k or self.settings.top_k, filters=scoped)
        index = self.retriever.lexical_index()
        weights = query_weights(query, index)
        kind = asked_kind(question)
        asked = Asked(kind, time_scope(question).period(kind))
        excerpts = select_excerpts(hits, weights, self.settings, asked)
        passages = to_passages(
            [x for x in excerpts if about(places, x.hit) and _answers(question, x, lang)]
        )
        timings["retrieval_ms"] = ms_since(t0)
        yield PassagesEvent(passages=passages)

        # an English question's own words are in no Chinese passage: its evidence is in the
        # documents' words searched for it (the glossary's, the model's translation)
        said = (
            weights if lang == "zh" else {t: w for t, w in weights.items() if not _LATIN.search(t)}
        )
        evidence = coverage(passages[0].text + passages[0].title, said) if passages else 0.0
        missing = missing_entities(question, index) if lang == "zh" else []
        if not passages or missing:
            draft = Draft(refusal(lang), passages, refused=True)
        elif model is None:
            # too few of the question's words, or a figure asked and the best passage has none
            # or is about something else (the rarest word of the question's topic is not in it)
            weak = lang == "zh" and (
                evidence < WEAK_EVIDENCE
                or (
                    bool(_ASKS_FIGURE.search(question))
                    and (
                        not has_figure(passages[0].text)
                        or off_topic(question, passages[0], weights)
                    )
                )
            )
            draft = Draft(
                refusal(lang) if weak else extractive_answer(passages, lang), passages, refused=weak
            )
        else:
            hints = fact_hints(passages, self.facts(), query) if self.facts else None
            inputs = {"passages": format_passages(passages, hints), "question": question}
            generated = yield from generate(
                self._prompts[lang] | model, inputs, self.timeout_s, timings, t0
            )
            if hasattr(model, "count_tokens"):
                prompt = self._prompts[lang].format(**inputs)
                timings["prompt_tokens"] = float(model.count_tokens(prompt))
            verdict = judge(generated, passages, question, evidence >= STRONG_EVIDENCE)
            if verdict == "fallback":
                answer = extractive_answer(pointed_first(generated, passages), lang)
                draft = Draft(answer, passages, fallback=True)
            elif verdict == "refusal":
                draft = Draft(refusal(lang), passages, refused=True)
            else:
                draft = Draft(generated.text, passages)
        yield from self._finish(draft, question, timings, t0)

    # -- the steps -------------------------------------------------------------------------------

    def comparison(self, question: str, filters: Filters | None = None) -> Comparison | None:
        """The ranked facts answering a comparison question, or None for any other question."""
        query = parse_question(question)
        if query is None or self.facts is None:
            return None
        recent = time_scope(question).recent
        if recent and not query.over_years:  # "最近三年": the last three years the corpus holds
            query = replace(query, reports=frozenset(self.years()[-recent:]))
        facts = self.facts()
        names = [n for p in places_in(question) for n in place_names(p)]
        if names:  # "延吉和二道区相比…": only the places named
            facts = [f for f in facts if any(n in f"{f.region or ''} {f.title}" for n in names)]
        return compare(query, facts, filters)

    def years(self) -> list[int]:
        """The years of the committed documents, in order."""
        docs = self.catalog() if self.catalog else []
        return sorted({y for d in docs if (y := year_of(d.date)) is not None})

    def missing_reports(self, question: str, lang: str) -> str | None:
        """The refusal of a question about reports of years the corpus holds no document of
        ("2020年政府工作报告…" where 2020 is missing), naming the nearest years it holds; None
        when it holds at least one of the reports named (or the question names none)."""
        named = time_scope(question).reports
        held = self.years()
        if not named or not held or any(y in held for y in named):
            return None
        nearby: list[int] = []
        for y in named:
            below = [h for h in held if h < y]
            above = [h for h in held if h > y]
            nearby += ([below[-1]] if below else []) + ([above[0]] if above else [])
        sep, unit = ("、", "年") if lang == "zh" else (", ", "")
        what = _REPORT_NAME.search(fold(question))
        return prompts.load(f"missing_reports_{lang}").format(
            missing=sep.join(f"{y}{unit}" for y in named),
            nearby=sep.join(f"{y}{unit}" for y in sorted(set(nearby))),
            what=(what.group(0) if what else "报告") if lang == "zh" else "report",
        )

    def gaps(self, reports: Iterable[int], lang: str) -> str:
        """What a comparison over named reports says of the years among them the corpus lacks."""
        held = set(self.years())
        absent = sorted(y for y in reports if y not in held)
        if not absent or not held:
            return ""
        if lang == "zh":
            return f"注意:资料中没有{'、'.join(f'{y}年' for y in absent)}的报告。"
        return f"Note: the documents include no report of {', '.join(map(str, absent))}."

    def scope(
        self, question: str, query: str, filters: Filters | None
    ) -> tuple[str, Filters | None, list[str]]:
        """What a question's own words say about which documents to search, as filters, the
        query that is left to find the passage within them, and the places it names:

        - a question about the reports of some years ("2019年政府工作报告…", "据2022年…报告",
          "2003年、2005年和2007年的政府工作报告") is asked of the documents of those years, when
          the index holds any;
        - a question that names a place (龙港市, 兰州城关区) is asked of the documents about
          it, when the index holds any (at most ``_PLACE_DOCS``), without the place's name: it
          says which document, not which passage.

        The caller's own filters stand: a scope that would contradict them is not applied."""
        docs = self.catalog() if self.catalog else []
        base = filters or Filters()
        reports = set(time_scope(question).reports)
        of_years = [
            d.doc_id
            for d in docs
            if year_of(d.date) in reports
            and base.matches({**d.model_dump(), "year": year_of(d.date)})
        ]
        if of_years and len(of_years) <= _PLACE_DOCS:
            base = base.model_copy(update={"doc_id": of_years})
        places = places_in(question) or places_in(query)  # an English one: its translation
        names = [n for p in places for n in place_names(p)]
        about_place = [
            d.doc_id
            for d in docs
            if base.matches({**d.model_dump(), "year": year_of(d.date)})
            and any(n in f"{d.region or ''} {d.title}" for n in names)
        ]
        if about_place and len(about_place) <= _PLACE_DOCS:
            wanted = (
                base.doc_id
                if base.doc_id is None or isinstance(base.doc_id, list)
                else [base.doc_id]
            )
            ids = [i for i in about_place if wanted is None or i in wanted]
            if ids:
                base = base.model_copy(update={"doc_id": ids})
                folded = fold(query)
                for p in sorted(places, key=len, reverse=True):
                    folded = folded.replace(p, " ")
                query = folded.strip() or query
        return query, (base if base != Filters() else filters), places

    def retrieval_query(
        self,
        question: str,
        lang: str,
        model: BaseChatModel | None,
        timings: dict[str, float],
        t0: float,
    ) -> str:
        """What retrieval searches for: the question; an English one also in the documents' own
        words for the indicators it names (petition → 信访) and, with a model, its translation."""
        if lang != "en":
            return question
        terms = " ".join(self.glossary(question).values())
        query = f"{question}\n{terms}"
        if model is not None:
            with contextlib.suppress(Exception):  # retrieval goes on without it
                query = f"{query}\n{self.translate(question, model)}"
            timings["translate_ms"] = ms_since(t0)
        return query

    def glossary(self, english: str) -> dict[str, str]:
        """The documents' own words for what an English question names: indicators (the
        taxonomy: petition → 信访) and the corpus's places by their pinyin (Longgang → 龙港)."""
        return {**taxonomy().glossary(english), **english_places(english, self._pinyin())}

    def _pinyin(self) -> dict[str, str]:
        docs = self.catalog() if self.catalog else []
        if self._places is None or self._places[0] is not docs:
            places = {d.region for d in docs if d.region} | {
                p for d in docs for p in places_in(d.title)
            }
            self._places = (docs, pinyin_index(sorted(places)))
        return self._places[1]

    def translate(self, question: str, model: BaseChatModel) -> str:
        """An English question in Chinese, for retrieval over Chinese text (the answer stays
        English)."""
        system = prompts.load("translate_query")
        terms = self.glossary(question)
        if terms:  # the documents' own words for the indicators and places the question names
            system += "\n" + prompts.load("translate_glossary").format(
                terms="; ".join(f"{en} = {zh}" for en, zh in terms.items())
            )
        chain = _template("{system}", "{q}") | model | StrOutputParser()
        return str(chain.invoke({"system": system, "q": question})).strip() or question

    def rewrite_followup(
        self, resolved: Resolved, history: Sequence[Turn], model: BaseChatModel
    ) -> str | None:
        """A model's rewrite of a follow-up, when it keeps what the deterministic resolution
        inherited and adds no figure (``accept_rewrite``); None otherwise or on failure."""
        asked = "\n".join(f"- {t.content}" for t in history if t.role == "user")
        chain = (
            _template(prompts.load("rewrite_followup"), prompts.load("rewrite_followup_user"))
            | model
            | StrOutputParser()
        )
        inputs = {
            "history": asked,
            "question": resolved.question,
            "standalone": resolved.standalone,
        }
        try:
            text = str(chain.invoke(inputs)).strip().splitlines()[0]
        except Exception:  # the deterministic question stands (an empty reply too)
            return None
        return text if accept_rewrite(text, resolved, history) else None

    def _comparison_answer(
        self,
        written: Written,
        model: BaseChatModel | None,
        lang: str,
        question: str,
        timings: dict[str, float],
        t0: float,
    ) -> Generator[TokenEvent, None, Draft]:
        """The computed ranking as the template wrote it; a model may rewrite the lead sentence,
        kept only if it states the winner's figure with its marker and no figure of its own."""
        lead, fallback = written.lead, False
        if model is not None and written.rank:  # a series' lead is the template's
            inputs = {"question": question, "facts": format_facts(written, lang), "lead": lead}
            generated = yield from generate(
                self._compare_prompts[lang] | model, inputs, self.timeout_s, timings, t0
            )
            text = re.split(r"(?<=[。.!！])\s|\n", generated.text, maxsplit=1)[0]
            if not generated.failed and _lead_stands(text, written, lang, question):
                lead = text
            else:
                fallback = True
        return Draft(
            f"{lead}\n{written.body}", written.passages, fallback=fallback, facts=written.facts
        )

    def _finish(
        self, draft: Draft, question: str, timings: dict[str, float], t0: float
    ) -> Iterator[ChatEvent]:
        citations: list[Citation] = []
        if draft.refused:
            answer = draft.text
        else:
            answer, citations = resolve(
                draft.text,
                draft.passages,
                self.settings.remove_unverified,
                question=question,
                about=about_sentence,
            )
            answer = f"{answer}\n{draft.note}" if draft.note else answer
        yield CitationsEvent(
            answer=answer, citations=citations, refused=draft.refused, fallback=draft.fallback
        )
        if draft.facts:
            yield FactsEvent(facts=draft.facts)
        timings["total_ms"] = ms_since(t0)
        yield DoneEvent(timings=timings)


def _answers(question: str, excerpt: Scored, lang: str) -> bool:
    """Whether an excerpt states what a Chinese question asks, of its subject and period
    (``rag/answerable.py``); an English question's excerpts are not checked."""
    if lang != "zh":
        return True
    hit = excerpt.hit
    text = hit.text[excerpt.start - hit.start : excerpt.end - hit.start]
    context = f"{hit.title} {hit.region or ''} {hit.section or ''}\n{hit.text}"
    return answers(question, text, context, year_of(hit.date))


def _lead_stands(text: str, written: Written, lang: str, question: str) -> bool:
    """A model's lead sentence names the computed winner's figure with its marker, adds no
    figure of its own, and (for an English question) is English but for the names."""
    winner = written.facts[0]
    allowed = [f.figure for f in written.facts] + numbers_in(question)
    names = {n for f in written.facts for n in (f.entity or "", f.indicator) if n}
    rest = re.sub("|".join(map(re.escape, sorted(names, key=len, reverse=True))), "", text)
    return (
        not (lang == "en" and _CJK.search(rest))
        and number_in(winner.figure, text)
        and f"[{winner.marker}]" in text
        and all(any(number_in(n, a) for a in allowed) for n in numbers_in(text))
    )
