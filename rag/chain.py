"""The answer chain: retrieve → select sentences → prompt → generate → cite → verify.

Prompt length dominates latency on a CPU, so the prompt holds only the sentences that matter:
from each of the best passages, the sentence(s) sharing the most informative words with the
question, numbered ``[1]..[n]`` and headed by their document's title, date and region.
Generation is an LCEL pipeline (prompt | chat model | parser) streamed token by token; when the
model fails or exceeds its time budget, the extractive answer (the best sentences themselves,
cited) replaces it, flagged ``fallback``.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import prompts
from rag.chunking import split_sentences
from rag.citations import number_in, numbers_in, resolve
from rag.compare import CHANGE_WORDS, Written, format_facts, write
from rag.config import AnswerSettings
from rag.facts import Comparison, compare, parse_question, taxonomy
from rag.lexical import LexicalIndex, tokenize
from rag.retrieval import HybridRetriever
from rag.schemas import (
    Answer,
    ChatEvent,
    CitationsEvent,
    DoneEvent,
    Fact,
    FactsEvent,
    Filters,
    Passage,
    PassagesEvent,
    SearchHit,
    TokenEvent,
)
from rag.text import fold, looks_like_instruction, normalize, strip_span

_CJK = re.compile(r"[\u3400-\u9fff]")
_MARKERS = re.compile(r"[\[【]\s*\d[\d,，、\s]*[\]】]")
# Citation-like markers inside a document's own text ("…5400户[9]", "据国务院【1】通报"): data, not
# citations. Taken out wherever passage text is shown as ours (the prompt, the extractive answer),
# so a document can neither forge a citation nor have a model copy one.
_TEXT_MARKERS = re.compile(r"[\[【]\s*\d{1,2}(?:\s*[,，、]\s*\d{1,2})*\s*[\]】]")
_CONTENT = re.compile(r"[\w\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
# What a model says when the passages do not hold the answer.
_MODEL_REFUSAL = re.compile(
    r"资料中没有|没有相关信息|无法回答|未提及|没有提供|未提供|无法确定|不包含|"
    r"do(es)? not contain|cannot answer|can't answer|not mentioned|no information|not provided",
    re.IGNORECASE,
)


# Share of the question's informative words found in the best excerpt (and its title): above
# STRONG the passages answer it (a model refusal is overruled); below WEAK they do not.
STRONG_EVIDENCE = 0.6
WEAK_EVIDENCE = 0.25
# Within a document, question words found in its title weigh this much (see select_excerpts).
TITLE_WORD_WEIGHT = 0.2
# A neighbouring sentence joins an excerpt when it scores at least this share of the best one.
NEIGHBOUR_SHARE = 0.5


def language(question: str) -> str:
    """``en`` for a question written in Latin letters without Chinese, else ``zh``."""
    return "en" if _LATIN.search(question) and not _CJK.search(question) else "zh"


def refusal(lang: str) -> str:
    return prompts.load(f"refusal_{lang}")


# -- sentence selection ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    hit: SearchHit
    start: int  # offsets into the document
    end: int
    score: float


def _sentence_score(sentence: str, query_weights: dict[str, float]) -> float:
    tokens = set(tokenize(sentence))
    score = sum(w for t, w in query_weights.items() if t in tokens)
    return score * (1.1 if numbers_in(sentence) else 1.0)  # facts carry numbers


def query_weights(question: str, index: LexicalIndex | None) -> dict[str, float]:
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


def select_excerpts(
    hits: list[SearchHit], weights: dict[str, float], settings: AnswerSettings
) -> list[Scored]:
    """The best sentence window of each hit, most relevant first, at most ``context_passages``.

    Words of the question that name the document's place (its region, places in its title) say
    which document, not which sentence: within that document they count for little.
    """
    excerpts: list[Scored] = []
    for rank, hit in enumerate(hits):
        spans = split_sentences(hit.text, 0, len(hit.text))
        if not spans:
            continue
        places = place_words(hit.title, hit.region)
        local = {t: w * (TITLE_WORD_WEIGHT if t in places else 1.0) for t, w in weights.items()}
        scores = [
            0.0 if looks_like_instruction(hit.text[s:e]) else _sentence_score(hit.text[s:e], local)
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
        lines.append(f"[{p.n}] {_TEXT_MARKERS.sub('', p.text)}")
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


def missing_entities(question: str, index: LexicalIndex | None) -> list[str]:
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
    for p in chosen:
        where = f"{p.region}:" if p.region and len(chosen) > 1 else ""
        text = _TEXT_MARKERS.sub("", p.text)
        body = text.rstrip("。！？!?；;")
        lines.append(f"{where}{body}[{p.n}]{text[len(body) :]}")
    return "\n".join(lines)


# -- the chain ------------------------------------------------------------------------------------


class AnswerChain:
    def __init__(
        self,
        retriever: HybridRetriever,
        settings: AnswerSettings,
        timeout_s: float,
        remove_unverified: bool = False,
        facts: Callable[[], list[Fact]] | None = None,
    ) -> None:
        self.retriever = retriever
        self.facts = facts
        self.settings = settings
        self.timeout_s = timeout_s
        self.remove_unverified = remove_unverified or settings.remove_unverified
        self._prompts = {
            lang: ChatPromptTemplate.from_messages(
                [
                    ("system", prompts.load(f"answer_system_{lang}")),
                    ("human", prompts.load(f"answer_user_{lang}")),
                ]
            )
            for lang in ("zh", "en")
        }
        self._compare_prompts = {
            lang: ChatPromptTemplate.from_messages(
                [
                    ("system", prompts.load(f"compare_system_{lang}")),
                    ("human", prompts.load("compare_user")),
                ]
            )
            for lang in ("zh", "en")
        }

    def comparison(self, question: str, filters: Filters | None = None) -> Comparison | None:
        """The ranked facts answering a comparison question, or None for any other question."""
        query = parse_question(question)
        if query is None or self.facts is None:
            return None
        return compare(query, self.facts(), filters)

    def generation(self, model: BaseChatModel, lang: str) -> Any:
        """The LCEL pipeline for one language: prompt | model (its text: ``stream_text``)."""
        return self._prompts[lang] | model

    def translate(self, question: str, model: BaseChatModel) -> str:
        """An English question in Chinese, for retrieval over Chinese text (the answer stays
        English)."""
        system = prompts.load("translate_query")
        terms = taxonomy().glossary(question)
        if terms:  # the documents' own words for the indicators the question names
            system += "\n" + prompts.load("translate_glossary").format(
                terms="; ".join(f"{en} = {zh}" for en, zh in terms.items())
            )
        chain = (
            ChatPromptTemplate.from_messages([("system", "{system}"), ("human", "{q}")])
            | model
            | StrOutputParser()
        )
        return str(chain.invoke({"system": system, "q": question})).strip() or question

    def stream(
        self,
        question: str,
        model: BaseChatModel | None,
        backend: str,
        top_k: int | None = None,
        filters: Filters | None = None,
    ) -> Iterator[ChatEvent]:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        lang = language(question)
        ranked = self.comparison(question, filters)
        if ranked is not None:
            yield from self._compare(write(ranked, lang), model, lang, timings, t0, question)
            return
        query = question
        if lang == "en":
            # The documents' own words for the indicators the question names (petition →
            # 信访), then the model's translation of the rest, for retrieval over Chinese text.
            terms = " ".join(taxonomy().glossary(question).values())
            query = f"{question}\n{terms}"
            if model is not None:
                with contextlib.suppress(Exception):  # retrieval goes on without it
                    query = f"{query}\n{self.translate(question, model)}"
                timings["translate_ms"] = _ms(t0)
        hits = self.retriever.search(query, top_k=top_k or self.settings.top_k, filters=filters)
        index = self.retriever.lexical_index()
        weights = query_weights(query, index)
        passages = to_passages(select_excerpts(hits, weights, self.settings))
        timings["retrieval_ms"] = _ms(t0)
        yield PassagesEvent(passages=passages)

        missing = missing_entities(question, index) if lang == "zh" else []
        if not passages or missing:
            yield from self._finish(refusal(lang), passages, True, False, timings, t0, question)
            return
        if model is None:
            weak = coverage(passages[0].text + passages[0].title, weights) < WEAK_EVIDENCE
            text = refusal(lang) if weak and lang == "zh" else extractive_answer(passages, lang)
            yield from self._finish(
                text, passages, weak and lang == "zh", False, timings, t0, question
            )
            return

        hints = fact_hints(passages, self.facts(), query) if self.facts else None
        inputs = {"passages": format_passages(passages, hints), "question": question}
        text, fallback = yield from self._tokens(self.generation(model, lang), inputs, timings, t0)
        if hasattr(model, "count_tokens"):
            timings["prompt_tokens"] = float(
                model.count_tokens(self._prompts[lang].format(**inputs))
            )
        refused = bool(_MODEL_REFUSAL.search(text)) and not re.search(r"\[\d+\]", text)
        strong = coverage(passages[0].text + passages[0].title, weights) >= STRONG_EVIDENCE
        given = set(numbers_in(question))
        invented = [
            n
            for n in numbers_in(text)
            if n not in given and not any(number_in(n, p.text) for p in passages)
        ]
        empty = not _CONTENT.search(_MARKERS.sub("", text))
        # The model failed, said nothing but markers, refused what the evidence plainly answers,
        # or wrote a figure that is in no passage: the extractive answer replaces it, flagged.
        if fallback or empty or (refused and strong) or invented:
            yield from self._finish(
                extractive_answer(passages, lang), passages, False, True, timings, t0, question
            )
            return
        yield from self._finish(
            refusal(lang) if refused else text, passages, refused, False, timings, t0, question
        )

    def _compare(
        self,
        written: Written,
        model: BaseChatModel | None,
        lang: str,
        timings: dict[str, float],
        t0: float,
        question: str,
    ) -> Iterator[ChatEvent]:
        """A comparison answer: the computed ranking, written by the template; a model may
        rewrite the lead sentence, kept only if it states the winner's figure with its marker
        and no figure of its own."""
        timings["retrieval_ms"] = _ms(t0)
        yield PassagesEvent(passages=written.passages)
        lead, fallback = written.lead, False
        if model is not None:
            inputs = {
                "question": question,
                "facts": format_facts(written, lang),
                "lead": written.lead,
            }
            text, fallback = yield from self._tokens(
                self._compare_prompts[lang] | model, inputs, timings, t0
            )
            text = re.split(r"(?<=[。.!！])\s|\n", text, maxsplit=1)[0]
            winner = written.facts[0]
            allowed = [f.figure for f in written.facts] + numbers_in(question)
            names = {n for f in written.facts for n in (f.entity or "", f.indicator) if n}
            rest = re.sub("|".join(map(re.escape, sorted(names, key=len, reverse=True))), "", text)
            if (
                not fallback
                and not (lang == "en" and _CJK.search(rest))  # English, but for the names
                and number_in(winner.figure, text)
                and f"[{winner.marker}]" in text
                and all(any(number_in(n, a) for a in allowed) for n in numbers_in(text))
            ):
                lead = text
            else:
                fallback = True
        yield from self._finish(
            f"{lead}\n{written.body}",
            written.passages,
            False,
            fallback,
            timings,
            t0,
            question,
            facts=written.facts,
        )

    def _tokens(
        self, pipeline: Any, inputs: dict[str, str], timings: dict[str, float], t0: float
    ) -> Generator[TokenEvent, None, tuple[str, bool]]:
        """Stream the model's tokens as events; returns (text, failed). Past the time budget
        or on an error the generation is abandoned: failed, and the caller falls back."""
        pieces: list[str] = []
        t_gen = time.perf_counter()
        try:
            for token in _with_deadline(stream_text(pipeline, inputs), t_gen + self.timeout_s):
                if not pieces:
                    timings["first_token_ms"] = _ms(t0)
                pieces.append(token)
                yield TokenEvent(text=token)
            failed = False
        except Exception:
            failed = True
        timings["generation_ms"] = _ms(t_gen)
        return "".join(pieces).strip(), failed

    def _finish(
        self,
        text: str,
        passages: list[Passage],
        refused: bool,
        fallback: bool,
        timings: dict[str, float],
        t0: float,
        question: str,
        facts: list[Fact] | None = None,
    ) -> Iterator[ChatEvent]:
        answer, citations = (
            (text, [])
            if refused
            else resolve(text, passages, self.remove_unverified, question=question)
        )
        yield CitationsEvent(answer=answer, citations=citations, refused=refused, fallback=fallback)
        if facts:
            yield FactsEvent(facts=facts)
        timings["total_ms"] = _ms(t0)
        yield DoneEvent(timings=timings)


def collect(events: Iterator[ChatEvent], backend: str) -> Answer:
    """The ``Answer`` a stream of events adds up to."""
    answer = Answer(answer="", backend=backend)
    for e in events:
        if isinstance(e, PassagesEvent):
            answer.passages = e.passages
        elif isinstance(e, CitationsEvent):
            answer.answer, answer.citations = e.answer, e.citations
            answer.refused, answer.fallback = e.refused, e.fallback
        elif isinstance(e, DoneEvent):
            answer.timings = e.timings
        elif isinstance(e, FactsEvent):
            answer.facts = e.facts
    return answer


class GenerationTimeout(TimeoutError):
    pass


def stream_text(pipeline: Any, inputs: dict[str, str]) -> Iterator[str]:
    """The text a ``prompt | model`` pipeline streams. No output parser after the model: closing
    a parser's stream makes LangChain drain the parser's input, i.e. run the model to its end,
    so a generation stopped early (client gone, deadline passed) would go on unseen."""
    for chunk in pipeline.stream(inputs):
        if chunk.text:
            yield chunk.text


def _with_deadline(tokens: Iterator[str], deadline: float) -> Iterator[str]:
    """Tokens from a worker thread; past ``deadline`` the generation is abandoned (and stopped
    at its next token), so a stuck model cannot hold the answer hostage."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        try:
            for t in tokens:
                if stop.is_set():
                    break
                q.put(("token", t))
            q.put(("end", None))
        except Exception as exc:
            q.put(("error", exc))
        finally:
            close = getattr(tokens, "close", None)
            if close:
                close()

    threading.Thread(target=work, daemon=True, name="llm-generation").start()
    try:
        while True:
            try:
                kind, value = q.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                raise GenerationTimeout("the model exceeded its time budget") from None
            if kind == "token":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
