"""Citations you can check: parse ``[n]`` markers, drop the ones that point nowhere, renumber
them in order of first use, and verify each cited sentence: every number in it (with its unit)
must occur in one of the passages it cites."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.schemas import Citation, Passage
from rag.text import normalize
from rag.units import DATES, MEASURES, alternation

# The one citation-marker grammar: [1], [1,2], [1、2], 【1】 (and [1][2] as two markers). The chat
# page (api/static/app.js) uses the same pattern; a test keeps the two equal.
MARKER = re.compile(r"[\[【]\s*(\d{1,2}(?:\s*[,，、]\s*\d{1,2})*)\s*[\]】]")
# A sentence, with the markers that follow its closing punctuation ("…52%。[1]").
_SENTENCE = re.compile(rf"[^。！？!?\n]+[。！？!?]*(?:\s*{MARKER.pattern})*|\n")
_NUMBER = re.compile(rf"(\d+(?:[.,]\d+)*)\s*({alternation(MEASURES + DATES)})?")


def markers_in(text: str) -> list[int]:
    """The passage numbers the markers of ``text`` cite, in order, each once."""
    found = [int(n) for m in MARKER.finditer(text) for n in re.split(r"\s*[,，、]\s*", m.group(1))]
    return list(dict.fromkeys(found))


def strip_markers(text: str) -> str:
    """``text`` without citation markers (a document's own "[9]" is data, not a citation)."""
    return MARKER.sub("", text)


@dataclass(frozen=True)
class CheckedSentence:
    text: str
    markers: tuple[int, ...]
    numbers: tuple[str, ...]
    verified: bool


def numbers_in(text: str) -> list[str]:
    """Numbers with their units, normalized (``52%``, ``660.5亿元``, ``2016年``)."""
    plain = strip_markers(normalize(text))
    return [m.group(1).replace(",", "") + (m.group(2) or "") for m in _NUMBER.finditer(plain)]


def number_in(number: str, passage_text: str) -> bool:
    text = normalize(passage_text).replace(",", "")
    start = text.find(number)
    while start != -1:
        before = text[start - 1] if start else ""
        after = text[start + len(number) : start + len(number) + 1]
        if not (before.isdigit() or before == ".") and not (
            number[-1].isdigit() and after.isdigit()
        ):
            return True
        start = text.find(number, start + 1)
    return False


_YEAR_NUMBER = re.compile(r"((?:19|20)\d\d)年")


def has_figure(text: str) -> bool:
    """Whether a text states a figure: a number that is not a date ("2021年" is not one)."""
    return any(n[-1] not in DATES for n in numbers_in(text))


def _supports(passage: Passage, number: str) -> bool:
    """A number is in the passage; a year ("2018年") may also be the year its document (or the
    period its figure) speaks of, as an answer labels a figure by it."""
    if number_in(number, passage.text):
        return True
    year = _YEAR_NUMBER.fullmatch(number)
    dates = re.findall(r"(?:19|20)\d\d", passage.date or "")
    if year is None or not dates:
        return False
    return int(dates[0]) <= int(year.group(1)) <= int(dates[-1])


def renumber(answer: str, n_passages: int) -> tuple[str, list[int]]:
    """Drop markers outside 1..n_passages; renumber the rest 1..k by first use.

    Returns the rewritten text and, for each new number, the original passage number.
    """
    order: list[int] = []

    def sub(m: re.Match[str]) -> str:
        new = []
        for raw in re.split(r"\s*[,，、]\s*", m.group(1)):
            n = int(raw)
            if 1 <= n <= n_passages:
                if n not in order:
                    order.append(n)
                new.append(order.index(n) + 1)
        return "".join(f"[{k}]" for k in dict.fromkeys(new))

    return MARKER.sub(sub, answer), order


# Whether a passage is about what a sentence is about (the places it names): a figure of 龙港
# does not support a sentence about 二道区, even when the number is in the passage.
About = Callable[[str, Passage], bool]


def check_sentences(
    answer: str,
    cited: dict[int, Passage],
    given: frozenset[str] = frozenset(),
    about: About | None = None,
) -> list[CheckedSentence]:
    """Each sentence, its markers (new numbering) and whether its numbers are all supported by
    a cited passage (``about`` the sentence's subject, when given). Numbers ``given`` in the
    question (a year it asks about) are not claims and are not checked."""
    out = []
    for m in _SENTENCE.finditer(answer):
        text = m.group(0)
        if not text.strip():
            continue
        markers = tuple(markers_in(text))
        nums = tuple(n for n in numbers_in(text) if n not in given)
        passages = [
            cited[k]
            for k in markers
            if k in cited and (about is None or not nums or about(text, cited[k]))
        ]
        verified = all(any(_supports(p, n) for p in passages) for n in nums)
        out.append(CheckedSentence(text, markers, nums, verified and (bool(markers) or not nums)))
    return out


def attach_missing(
    answer: str, passages: list[Passage], given: frozenset[str] = frozenset()
) -> str:
    """A sentence that states numbers but cites nothing gets the passages that hold all of its
    numbers (a small model often forgets the markers; the check below still applies)."""
    out = []
    for m in _SENTENCE.finditer(answer):
        sentence = m.group(0)
        nums = [n for n in numbers_in(sentence) if n not in given]
        if nums and not MARKER.search(sentence):
            holders = [p.n for p in passages if all(number_in(n, p.text) for n in nums)]
            if holders:
                body = sentence.rstrip("。！？!?.")
                tail = sentence[len(body) :]
                sentence = body + "".join(f"[{n}]" for n in holders[:2]) + tail
        out.append(sentence)
    return "".join(out)


def resolve(
    answer: str,
    passages: list[Passage],
    remove_unverified: bool = False,
    question: str = "",
    about: About | None = None,
) -> tuple[str, list[Citation]]:
    """The answer with valid, renumbered markers, and its citations with ``verified`` flags."""
    given = frozenset(numbers_in(question))
    text, order = renumber(attach_missing(answer, passages, given), len(passages))
    cited = {new: passages[old - 1] for new, old in enumerate(order, start=1)}
    sentences = check_sentences(text, cited, given, about)
    if remove_unverified and any(not s.verified for s in sentences):
        text = "".join(s.text for s in sentences if s.verified).strip()
        kept = [cited[k].model_copy(update={"n": k}) for k in sorted(cited)]
        return resolve(text, kept, remove_unverified=False, question=question, about=about)
    citations = []
    for k, p in cited.items():
        using = [s for s in sentences if k in s.markers]
        citations.append(
            Citation(
                marker=k,
                doc_id=p.doc_id,
                source=p.source,
                title=p.title,
                start=p.start,
                end=p.end,
                quote=p.text,
                verified=bool(using) and all(s.verified for s in using),
                kb=p.kb,
            )
        )
    return text.strip(), citations
