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
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import prompts
from rag.citations import number_in, numbers_in, resolve
from rag.compare import Written, format_facts, write
from rag.config import AnswerSettings
from rag.conversation import Resolved, accept_rewrite
from rag.excerpts import (
    STRONG_EVIDENCE,
    WEAK_EVIDENCE,
    about,
    coverage,
    extractive_answer,
    fact_hints,
    format_passages,
    missing_entities,
    query_weights,
    select_excerpts,
    to_passages,
)
from rag.facts import Comparison, asked_kind, compare, parse_question, taxonomy
from rag.generation import generate, judge, ms_since
from rag.retrieval import HybridRetriever
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
from rag.slots import english_places, parse, pinyin_index, place_names, places_in
from rag.text import fold

_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_LANGS = ("zh", "en")
# A place named in a question scopes the search to the documents about it, when they are few.
_PLACE_DOCS = 100


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


class AnswerChain:
    def __init__(
        self,
        retriever: HybridRetriever,
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

        ranked = self.comparison(question, filters)
        if ranked is not None:
            written = write(ranked, lang)
            timings["retrieval_ms"] = ms_since(t0)
            yield PassagesEvent(passages=written.passages)
            draft = yield from self._comparison_answer(written, model, lang, question, timings, t0)
            yield from self._finish(draft, question, timings, t0)
            return

        query = self.retrieval_query(question, lang, model, timings, t0)
        query, scoped, places = self.scope(question, query, filters)
        hits = self.retriever.search(query, top_k=top_k or self.settings.top_k, filters=scoped)
        index = self.retriever.lexical_index()
        weights = query_weights(query, index)
        excerpts = select_excerpts(hits, weights, self.settings, asked_kind(question))
        passages = to_passages([x for x in excerpts if about(places, x.hit)])
        timings["retrieval_ms"] = ms_since(t0)
        yield PassagesEvent(passages=passages)

        evidence = coverage(passages[0].text + passages[0].title, weights) if passages else 0.0
        missing = missing_entities(question, index) if lang == "zh" else []
        if not passages or missing:
            draft = Draft(refusal(lang), passages, refused=True)
        elif model is None:
            weak = evidence < WEAK_EVIDENCE and lang == "zh"
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
                draft = Draft(extractive_answer(passages, lang), passages, fallback=True)
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
        return compare(query, self.facts(), filters)

    def scope(
        self, question: str, query: str, filters: Filters | None
    ) -> tuple[str, Filters | None, list[str]]:
        """What a question's own words say about which documents to search, as filters, the
        query that is left to find the passage within them, and the places it names:

        - a question about one year's report ("2019年政府工作报告…", "据2022年…报告") is asked
          of the documents of that year, when the index holds any;
        - a question that names a place (龙港市, 兰州城关区) is asked of the documents about
          it, when the index holds any (at most ``_PLACE_DOCS``), without the place's name: it
          says which document, not which passage.

        The caller's own filters stand: a scope that would contradict them is not applied."""
        docs = self.catalog() if self.catalog else []
        base = filters or Filters()
        year = parse(question).report_year
        if (
            year is not None
            and any(year_of(d.date) == year for d in docs)
            and (base.year_from or year) <= year <= (base.year_to or year)
        ):
            base = base.model_copy(update={"year_from": year, "year_to": year})
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
        if model is not None:
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
                draft.text, draft.passages, self.settings.remove_unverified, question=question
            )
        yield CitationsEvent(
            answer=answer, citations=citations, refused=draft.refused, fallback=draft.fallback
        )
        if draft.facts:
            yield FactsEvent(facts=draft.facts)
        timings["total_ms"] = ms_since(t0)
        yield DoneEvent(timings=timings)


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
