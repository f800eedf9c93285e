"""Generation: a model's tokens streamed under a deadline, and whether its text can stand.

A ``prompt | model`` pipeline streams token by token from a worker thread; past the time
budget, or on an error, the generation is abandoned and the caller falls back to the extractive
answer. ``judge`` decides, from the finished text, whether it stands, is a refusal, or must be
replaced (empty, a refusal of what the evidence plainly answers, a figure found in no passage).
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from rag.citations import MARKER, markers_in, number_in, numbers_in, strip_markers
from rag.errors import GenerationTimeout
from rag.schemas import Passage, TokenEvent

# What a model says when the passages do not hold the answer.
MODEL_REFUSAL = re.compile(
    r"资料中没有|没有相关信息|无法回答|未提及|没有提供|未提供|无法确定|不包含|"
    r"do(es)? not contain|cannot answer|can't answer|not mentioned|no information|not provided",
    re.IGNORECASE,
)
_CONTENT = re.compile(r"[\w\u3400-\u9fff]")


def is_refusal(text: str) -> bool:
    """The model says the passages do not answer (and cites nothing)."""
    return bool(MODEL_REFUSAL.search(text)) and not MARKER.search(text)


@dataclass(frozen=True)
class Generated:
    text: str
    failed: bool  # an error, or past the deadline: the caller falls back


def generate(
    pipeline: Any,
    inputs: dict[str, str],
    timeout_s: float,
    timings: dict[str, float],
    t0: float,
) -> Generator[TokenEvent, None, Generated]:
    """Stream the model's tokens as events; returns what it wrote. Past ``timeout_s`` or on an
    error the generation is abandoned (``failed``). Records ``first_token_ms`` (since ``t0``)
    and ``generation_ms`` in ``timings``."""
    pieces: list[str] = []
    t_gen = time.perf_counter()
    try:
        for token in with_deadline(stream_text(pipeline, inputs), t_gen + timeout_s):
            if not pieces:
                timings["first_token_ms"] = ms_since(t0)
            pieces.append(token)
            yield TokenEvent(text=token)
        failed = False
    except Exception:
        failed = True
    timings["generation_ms"] = ms_since(t_gen)
    return Generated("".join(pieces).strip(), failed)


Verdict = Literal["answer", "refusal", "fallback"]


def judge(
    generated: Generated, passages: list[Passage], question: str, strong_evidence: bool
) -> Verdict:
    """Whether a model's answer stands. It is replaced by the extractive answer (``fallback``)
    when the model failed, said nothing but markers, refused what the evidence plainly answers
    (``strong_evidence``), or wrote a figure that is in no passage nor in the question."""
    text = generated.text
    refused = is_refusal(text)
    given = set(numbers_in(question))
    invented = [
        n
        for n in numbers_in(text)
        if n not in given and not any(number_in(n, p.text) for p in passages)
    ]
    if generated.failed or _says_nothing(text) or (refused and strong_evidence) or invented:
        return "fallback"
    return "refusal" if refused else "answer"


def _says_nothing(text: str) -> bool:
    """A model's text holds no word or figure, only markers and punctuation ("[2]。")."""
    return not _CONTENT.search(strip_markers(text))


def pointed_first(generated: Generated, passages: list[Passage]) -> list[Passage]:
    """The passages for the extractive answer that replaces a model's: when the model wrote
    nothing but markers ("[2]"), it still chose the passage that answers, so that one leads."""
    if not _says_nothing(generated.text):
        return passages
    chosen = set(markers_in(generated.text))
    first = [p for p in passages if p.n in chosen]
    return first + [p for p in passages if p.n not in chosen] if first else passages


def stream_text(pipeline: Any, inputs: dict[str, str]) -> Iterator[str]:
    """The text a ``prompt | model`` pipeline streams. No output parser after the model: closing
    a parser's stream makes LangChain drain the parser's input, i.e. run the model to its end,
    so a generation stopped early (client gone, deadline passed) would go on unseen."""
    for chunk in pipeline.stream(inputs):
        if chunk.text:
            yield chunk.text


def with_deadline(tokens: Iterator[str], deadline: float) -> Iterator[str]:
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


def ms_since(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
