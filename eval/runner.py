"""Run a question set through a target (the library in-process, or a service over HTTP)."""

from __future__ import annotations

import importlib.metadata
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from eval import metrics as M
from eval.datasets import Conversation, Dataset, Sample
from rag.retrieval import SearchMode
from rag.schemas import Answer, IngestSummary, SearchHit, Turn

RETRIEVAL_DEPTH = 10  # hits fetched per question: recall@1/@5 and MRR@10


class Target(Protocol):
    """What the harness needs of the system under test."""

    def search(self, question: str, top_k: int, mode: SearchMode) -> list[SearchHit]: ...

    def answer(
        self, question: str, backend: str | None, history: Sequence[Turn] = ()
    ) -> Answer: ...


class ConversationTarget(Protocol):
    """What replaying a conversation needs: an answer given the earlier turns."""

    def answer(self, question: str, backend: str | None, history: Sequence[Turn]) -> Answer: ...


class RetrievalScores(BaseModel):
    mode: str
    n: int
    recall_at_1: float
    recall_at_5: float
    any_at_5: float
    mrr: float
    passage_hit_at_1: float | None = None  # reading sets: the gold passage itself
    passage_hit_at_5: float | None = None
    latency_p50_ms: float
    latency_p95_ms: float
    by_type: dict[str, dict[str, float]] = Field(default_factory=dict)


class QuestionResult(BaseModel):
    id: str
    type: str
    question: str
    mode: str
    rank: int | None
    found_all_at_5: bool
    top_docs: list[str]
    ms: float


class Report(BaseModel):
    name: str
    dataset: str
    when: str
    target: str
    questions: int
    retrieval: list[RetrievalScores] = Field(default_factory=list)
    answers: dict[str, Any] | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    details: list[dict[str, Any]] = Field(default_factory=list)

    def metric(self, key: str) -> float | None:
        """A figure by name for thresholds: ``recall@5`` (hybrid), ``dense:mrr``, ``accuracy`` …"""
        mode, _, name = key.rpartition(":")
        name = {"recall@1": "recall_at_1", "recall@5": "recall_at_5", "any@5": "any_at_5"}.get(
            name, name
        )
        for r in self.retrieval:
            value = getattr(r, name, None)
            if r.mode == (mode or "hybrid") and isinstance(value, int | float):
                return float(value)
        value = (self.answers or {}).get(name) if not mode else None
        if isinstance(value, int | float):
            return float(value)
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("rag-zh", "chromadb", "sentence-transformers", "torch", "langchain-core"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def ingest_corpus(service: Any, dataset: Dataset, kb: str | None = None) -> IngestSummary:
    """Index the dataset's corpus into the service (or its KB ``kb``; idempotent: a second run
    changes nothing)."""
    if dataset.corpus_kind == "files":
        return service.ingest([dataset.corpus, *dataset.extra_corpus], kb=kb)  # type: ignore[no-any-return]
    return service.ingest_bytes(list(dataset.corpus_files()), kb=kb)  # type: ignore[no-any-return]


def _gold(sample: Sample, dataset: Dataset) -> list[str]:
    if dataset.kind == "documents":
        return [d for group in sample.gold_docs for d in group]
    return sample.answers if dataset.kind == "reading" else [e.quote for e in sample.evidence]


def doc_ranks(sources: Sequence[str], groups: Sequence[Sequence[str]]) -> list[int | None]:
    """Per group of gold documents (file stems), the 1-based rank of the first of ``sources``
    from one of them."""
    stems = [Path(source).stem for source in sources]
    return [next((i for i, d in enumerate(stems, 1) if d in g), None) for g in groups]


def parts_within(ranks: Sequence[int | None], k: int) -> bool:
    """Every part's gold document (ranks from ``doc_ranks``) among the top ``k``."""
    return all(r is not None and r <= k for r in ranks)


def score_retrieval(
    dataset: Dataset,
    samples: Sequence[Sample],
    target: Target,
    mode: SearchMode,
    progress: Callable[[], None] | None = None,
) -> tuple[RetrievalScores, list[QuestionResult]]:
    results: list[QuestionResult] = []
    r1: list[float] = []
    r5: list[float] = []
    a5: list[float] = []
    rr: list[float] = []
    p1: list[float] = []
    p5: list[float] = []
    ms: list[float] = []
    by_type: dict[str, list[float]] = defaultdict(list)
    if samples:  # warm up (model loaded, lexical index opened) outside the timings
        target.search(samples[0].question, RETRIEVAL_DEPTH, mode)
    for s in samples:
        gold = _gold(s, dataset)
        t0 = time.perf_counter()
        hits = target.search(s.question, RETRIEVAL_DEPTH, mode)
        elapsed = (time.perf_counter() - t0) * 1000
        if progress:
            progress()
        if not gold:  # unanswerable: nothing to find
            continue
        texts = [h.text for h in hits]
        if dataset.kind == "documents":
            # each part's gold documents: one of them among the top-k hits
            ranks = doc_ranks([h.source for h in hits], s.gold_docs)
            found1, found5 = parts_within(ranks, 1), parts_within(ranks, 5)
            rank = min((r for r in ranks if r is not None), default=None)
            any5 = rank is not None and rank <= 5
        elif dataset.kind == "reading":
            # one gold answer (any of its variants) inside the top-k passages
            found1 = M.any_found_within(texts, gold, 1)
            found5 = M.any_found_within(texts, gold, 5)
            ids = [h.doc_id for h in hits]
            p1.append(float(s.passage_id in ids[:1]))
            p5.append(float(s.passage_id in ids[:5]))
        else:
            found1 = M.all_found_within(texts, gold, 1)
            found5 = M.all_found_within(texts, gold, 5)
        if dataset.kind != "documents":
            rank = M.first_rank(texts, gold)
            any5 = M.any_found_within(texts, gold, 5)
        r1.append(float(found1))
        r5.append(float(found5))
        a5.append(float(any5))
        rr.append(M.reciprocal_rank(rank))
        ms.append(elapsed)
        by_type[s.type].append(float(found5))
        results.append(
            QuestionResult(
                id=s.id,
                type=s.type,
                question=s.question,
                mode=mode,
                rank=rank,
                found_all_at_5=found5,
                top_docs=[h.doc_id for h in hits[:5]],
                ms=round(elapsed, 1),
            )
        )
    scores = RetrievalScores(
        mode=mode,
        n=len(r5),
        recall_at_1=M.mean(r1),
        recall_at_5=M.mean(r5),
        any_at_5=M.mean(a5),
        mrr=M.mean(rr),
        passage_hit_at_1=M.mean(p1) if p1 else None,
        passage_hit_at_5=M.mean(p5) if p5 else None,
        latency_p50_ms=M.percentile(ms, 50),
        latency_p95_ms=M.percentile(ms, 95),
        by_type={t: {"recall_at_5": M.mean(v), "n": len(v)} for t, v in sorted(by_type.items())},
    )
    return scores, results


def new_report(name: str, dataset: str, target: str, n: int, settings: dict[str, Any]) -> Report:
    return Report(
        name=name,
        dataset=dataset,
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        target=target,
        questions=n,
        settings=settings,
        versions=versions(),
    )


def save_report(report: Report, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = report.when.replace(":", "").replace("-", "").split("+")[0]
    path = folder / f"{report.name}-{stamp}.json"
    path.write_text(report.model_dump_json(indent=2))
    return path


def _percentiles(stages: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """p50 and p95 of each timing an answer reports (retrieval_ms, total_ms …)."""
    return {
        stage: {"p50": M.percentile(v, 50), "p95": M.percentile(v, 95)}
        for stage, v in sorted(stages.items())
    }


class AnswerScores(BaseModel):
    backend: str
    n: int
    accuracy: float  # answerable questions: every must-include string (or a gold answer) present
    refusal_accuracy: float | None  # unanswerable questions: refused
    false_refusals: float  # answerable questions refused
    fallback_rate: float
    citation_precision: float | None  # citations whose cited sentences' numbers check out
    citation_recall: float | None  # gold evidence quotes found inside a cited passage
    injection_resistance: float | None  # must-not-include strings absent
    injection_success_rate: float | None = None  # answers holding a must-not-include string
    # answer-part sets (news, RGB): the same verdict with RGB's own matcher, a plain substring
    # test (spaces removed, any case) that also finds "3%" inside "2.3%"
    substring_accuracy: float | None = None
    char_f1: float | None = None  # reading sets: against the gold span
    # answers to a question naming a year that cite a document of another year (gold evidence
    # documents excepted): a figure from the wrong report or period
    wrong_period_rate: float | None = None
    latency_ms: dict[str, dict[str, float]] = Field(default_factory=dict)
    by_type: dict[str, dict[str, float]] = Field(default_factory=dict)


def score_answers(
    dataset: Dataset,
    samples: Sequence[Sample],
    target: Target,
    backend: str | None,
    progress: Callable[[], None] | None = None,
) -> tuple[AnswerScores, list[dict[str, Any]]]:
    details: list[dict[str, Any]] = []
    acc: list[float] = []
    refusal_ok: list[float] = []
    false_ref: list[float] = []
    fallback: list[float] = []
    cit_p: list[float] = []
    cit_r: list[float] = []
    inject: list[float] = []
    f1: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    by_type: dict[str, list[float]] = defaultdict(list)
    used = backend or "default"
    wrong: list[float] = []
    substring: list[float] = []
    for s in samples:
        a, turns = (
            _replay(s, target, backend) if s.turns else (target.answer(s.question, backend), [])
        )
        used = a.backend or used
        if progress:
            progress()
        for stage, value in a.timings.items():
            stages[stage].append(value)
        fallback.append(float(a.fallback))
        cit_p.extend(float(c.verified) for c in a.citations)
        period = _wrong_period(s, a)
        if period is not None:
            wrong.append(float(period))
        if s.must_not_include:
            inject.append(float(not any(M.contains(a.answer, m) for m in s.must_not_include)))
        refused = _refused(a)
        ok: bool | None
        if s.unanswerable:
            ok = refused
            refusal_ok.append(float(ok))
        elif s.answer_parts:
            ok = not refused and M.parts_found(a.answer, s.answer_parts)
            substring.append(
                float(not refused and M.parts_found(a.answer, s.answer_parts, plain=True))
            )
            acc.append(float(ok))
            false_ref.append(float(refused))
        elif not (s.turns or s.must_include or s.answers):
            ok = None  # nothing to check the answer against: not scored
        else:
            if s.turns:  # a follow-up sample: right when every turn is
                ok = all(t["correct"] for t in turns)
            else:
                gold = s.must_include if s.must_include else s.answers
                ok = (not a.refused) and (
                    M.answer_correct(a.answer, gold)
                    if s.must_include
                    else any(M.contains(a.answer, g) for g in gold)
                )
            acc.append(float(ok))
            false_ref.append(float(a.refused))
            if s.answers:
                f1.append(max(M.char_f1(a.answer, g) for g in s.answers))
            quotes = [e.quote for e in s.evidence]
            if quotes:
                cit_r.append(
                    M.mean(
                        [float(any(M.contains(c.quote, q) for c in a.citations)) for q in quotes]
                    )
                )
        if ok is not None:
            by_type[s.type].append(float(ok))
        details.append(
            {
                "id": s.id,
                "type": s.type,
                "question": s.question,
                "answer": a.answer,
                "turns": turns,
                "correct": ok,
                "wrong_period": period,
                "refused": refused,
                "fallback": a.fallback,
                "injected": [m for m in s.must_not_include if M.contains(a.answer, m)],
                "citations": [c.model_dump() for c in a.citations],
                "timings": a.timings,
            }
        )
    scores = AnswerScores(
        backend=used,
        n=len(samples),
        accuracy=M.mean(acc),
        refusal_accuracy=M.mean(refusal_ok) if refusal_ok else None,
        false_refusals=M.mean(false_ref),
        fallback_rate=M.mean(fallback),
        citation_precision=M.mean(cit_p) if cit_p else None,
        citation_recall=M.mean(cit_r) if cit_r else None,
        injection_resistance=M.mean(inject) if inject else None,
        injection_success_rate=1.0 - M.mean(inject) if inject else None,
        char_f1=M.mean(f1) if f1 else None,
        substring_accuracy=M.mean(substring) if substring else None,
        wrong_period_rate=M.mean(wrong) if wrong else None,
        latency_ms=_percentiles(stages),
        by_type={t: {"accuracy": M.mean(v), "n": len(v)} for t, v in sorted(by_type.items())},
    )
    return scores, details


def _refused(answer: Answer) -> bool:
    """The service's refusal, or RGB's refusal sentence (``文档信息不足…``) in the answer text."""
    return answer.refused or "信息不足" in answer.answer


def _replay(
    sample: Sample, target: Target, backend: str | None
) -> tuple[Answer, list[dict[str, Any]]]:
    """A follow-up sample asked turn by turn, the service's own answers as history. Returns the
    last answer and each turn's answer and verdict."""
    history: list[Turn] = []
    turns: list[dict[str, Any]] = []
    for turn in sample.turns:
        a = target.answer(turn.question, backend, history)
        ok = (
            a.refused
            if turn.refuse
            else not a.refused and M.answer_correct(a.answer, turn.must_include)
        )
        turns.append(
            {
                "question": turn.question,
                "standalone_question": a.standalone_question,
                "answer": a.answer,
                "correct": ok,
            }
        )
        history += [Turn(role="user", content=turn.question)]
        history += [Turn(role="assistant", content=a.answer)]
    return a, turns


def _wrong_period(sample: Sample, answer: Answer) -> bool | None:
    """Whether an answer to a question that names a year cites a document of a year it did not
    ask about (documents of the gold evidence excepted); None when it does not apply (no year
    asked, refused, nothing cited)."""
    asked = M.asked_years(sample.question)
    if not asked or answer.refused or not answer.citations:
        return None
    gold = {e.doc for e in sample.evidence}
    years = [
        M.document_year(c.source, c.title)
        for c in answer.citations
        if c.source.rsplit("/", 1)[-1] not in gold
    ]
    return any(y is not None and y not in asked for y in years)


class ConversationScores(BaseModel):
    backend: str
    conversations: int
    turns: int
    first_turn_accuracy: float  # the opening questions
    followup_accuracy: float  # every later turn: its figures, or its refusal
    conversation_accuracy: float  # every turn of the conversation right
    refusal_accuracy: float | None  # turns whose right answer is a refusal: refused
    false_refusals: float  # answerable turns refused
    latency_ms: dict[str, dict[str, float]] = Field(default_factory=dict)
    by_corpus: dict[str, dict[str, float]] = Field(default_factory=dict)


def score_conversations(
    conversations: Sequence[Conversation],
    targets: dict[str, ConversationTarget],
    backend: str | None,
    progress: Callable[[], None] | None = None,
) -> tuple[ConversationScores, list[dict[str, Any]]]:
    """Replay each conversation turn by turn, sending its earlier questions and the service's own
    earlier answers as history; each turn is right when it holds every must-include string (or,
    for a turn that must be refused, when it is refused)."""
    first: list[float] = []
    later: list[float] = []
    whole: list[float] = []
    refusal_ok: list[float] = []
    false_ref: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    corpus_turns: dict[str, list[float]] = defaultdict(list)
    details: list[dict[str, Any]] = []
    used = backend or "default"
    for conv in conversations:
        history: list[Turn] = []
        right: list[bool] = []
        for i, turn in enumerate(conv.turns):
            a = targets[conv.corpus].answer(turn.question, backend, history)
            used = a.backend or used
            if turn.refuse:
                ok = a.refused
                refusal_ok.append(float(ok))
            else:
                ok = not a.refused and M.answer_correct(a.answer, turn.must_include)
                false_ref.append(float(a.refused))
            right.append(ok)
            (first if i == 0 else later).append(float(ok))
            corpus_turns[conv.corpus].append(float(ok))
            for stage, value in a.timings.items():
                stages[stage].append(value)
            details.append(
                {
                    "id": f"{conv.id}#{i + 1}",
                    "type": "first" if i == 0 else "followup",
                    "question": turn.question,
                    "standalone_question": a.standalone_question,
                    "answer": a.answer,
                    "correct": ok,
                    "refused": a.refused,
                    "fallback": a.fallback,
                    "timings": a.timings,
                }
            )
            history += [Turn(role="user", content=turn.question)]
            history += [Turn(role="assistant", content=a.answer)]
            if progress:
                progress()
        whole.append(float(all(right)))
    scores = ConversationScores(
        backend=used,
        conversations=len(conversations),
        turns=len(first) + len(later),
        first_turn_accuracy=M.mean(first),
        followup_accuracy=M.mean(later),
        conversation_accuracy=M.mean(whole),
        refusal_accuracy=M.mean(refusal_ok) if refusal_ok else None,
        false_refusals=M.mean(false_ref),
        latency_ms=_percentiles(stages),
        by_corpus={
            c: {"accuracy": M.mean(v), "turns": len(v)} for c, v in sorted(corpus_turns.items())
        },
    )
    return scores, details
