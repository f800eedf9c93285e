"""The shared types: what the library returns, the API serves and the client parses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


def year_of(date: str | None) -> int | None:
    """The year of an ISO date or a bare year (``2015-01-13`` → 2015), else None."""
    return int(date[:4]) if date and date[:4].isdigit() else None


class Document(BaseModel):
    """A loaded source file: its original text (offsets index this) and what was found about it."""

    doc_id: str
    source: str
    title: str
    text: str
    date: str | None = None
    region: str | None = None
    content_hash: str

    @property
    def year(self) -> int | None:
        return year_of(self.date)


class Fact(BaseModel):
    """An indicator statement found in a document ("信访总量同比下降15.1%"): one figure of one
    indicator, with the offsets of its sentence (``original_text[start:end]`` holds the figure)."""

    indicator: str  # as reported, e.g. 集体访人次 (simplified script)
    canonical: str | None = None  # the taxonomy's name (rag/data/indicators.toml), if known
    family: str | None = None  # a wider name it belongs to (信访), if any
    value: float
    unit: str = ""
    qualifier: str = ""  # 左右, 以上, 以内 … as written after the figure
    direction: Literal["down", "up"] | None = None  # a change (下降/增长) or a level (None)
    # a goal (预期目标, 左右, 力争), money or work arranged (拟, 安排) or an outcome
    kind: Literal["target", "plan", "result"] = "result"
    # the years the statement speaks of ("2018", "2016–2020"; rag/periods.py): the report of
    # 2019 reviews 2018
    period: str | None = None
    doc_id: str
    source: str = ""
    title: str = ""
    region: str | None = None
    year: int | None = None  # the document's year
    kb: str | None = None  # the knowledge base the document is in
    start: int
    end: int
    # Filled in when a comparison answer uses the fact:
    entity: str | None = None  # what is compared (a region, or a year)
    quote: str | None = None
    marker: int | None = None  # the n of the [n] citing it
    implausible: bool = False  # e.g. a decline above 100%

    @property
    def figure(self) -> str:
        return f"{self.value:g}{self.unit}{self.qualifier}"

    @property
    def key(self) -> tuple[str, int, str, float]:
        """What makes two facts the same statement (overlapping chunks carry a sentence twice)."""
        return (self.doc_id, self.start, self.indicator, self.value)


class Chunk(BaseModel):
    """A span of a document: ``document.text[start:end] == text``."""

    doc_id: str
    index: int
    text: str
    start: int
    end: int
    # Stored with the chunk as it is (the store does not read it): the ingest pipeline puts the
    # chunk's facts here (``rag.facts.attach_facts``).
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Filters(BaseModel):
    """Metadata filters, applied on the dense and the lexical side alike (an unknown key is an
    error, not a filter silently left out)."""

    model_config = ConfigDict(extra="forbid")

    # A list names at least one document (Chroma refuses an empty ``$in``).
    doc_id: str | Annotated[list[str], Field(min_length=1)] | None = None
    region: str | None = None
    year_from: int | None = Field(None, ge=0, le=9999)
    year_to: int | None = Field(None, ge=0, le=9999)

    def matches(self, meta: dict[str, object]) -> bool:
        ids = [self.doc_id] if isinstance(self.doc_id, str) else self.doc_id
        year = meta.get("year")
        return (
            (ids is None or meta.get("doc_id") in ids)
            and (self.region is None or meta.get("region") == self.region)
            and (self.year_from is None or (isinstance(year, int) and year >= self.year_from))
            and (self.year_to is None or (isinstance(year, int) and year <= self.year_to))
        )


class Located(BaseModel):
    """Text of a document with where it is: ``original_text[start:end] == text``."""

    text: str
    doc_id: str
    source: str
    title: str
    date: str | None = None
    region: str | None = None
    start: int
    end: int
    section: str | None = Field(
        None,
        description="the heading of the part of the document the text begins in (or the "
        "clause, such as 2014年已经过去, that opened its paragraphs with their year)",
    )
    kb: str | None = Field(None, description="the knowledge base the document is in")


class SearchHit(Located):
    score: float
    dense_score: float | None = None
    bm25_score: float | None = None


class SearchResponse(BaseModel):
    hits: list[SearchHit]


class DocumentInfo(BaseModel):
    doc_id: str
    source: str
    title: str
    date: str | None = None
    region: str | None = None
    chunks: int
    chars: int
    content_hash: str


class DocumentText(DocumentInfo):
    """A committed document with its full original text (offsets index this)."""

    text: str


class KBInfo(BaseModel):
    """A knowledge base: its name and how many documents and chunks it holds."""

    name: str
    documents: int
    chunks: int


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    chunks: int
    embedding_dim: int


IngestStatus = Literal["added", "replaced", "unchanged", "failed", "removed"]


class IngestResult(BaseModel):
    doc_id: str | None
    source: str
    status: IngestStatus
    chunks: int = 0
    message: str | None = None


class IngestSummary(BaseModel):
    documents: list[IngestResult] = Field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: IngestStatus) -> int:
        return sum(1 for d in self.documents if d.status == status)

    @property
    def failed(self) -> bool:
        return any(d.status == "failed" for d in self.documents)

    @property
    def changed(self) -> bool:
        return any(d.status in ("added", "replaced", "removed") for d in self.documents)


class Passage(Located):
    """A numbered excerpt given to the model: ``[n]`` in the answer refers to it."""

    n: int
    score: float


class Citation(BaseModel):
    """A marker of the answer resolved to its passage: ``quote == original_text[start:end]``."""

    marker: int
    doc_id: str
    source: str
    title: str
    start: int
    end: int
    quote: str
    verified: bool
    kb: str | None = Field(None, description="the knowledge base the cited document is in")


class Turn(BaseModel):
    """One earlier turn of a conversation: what the user asked, or what the assistant answered."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str


class Answer(BaseModel):
    answer: str
    standalone_question: str | None = Field(
        None, description="the question answered: a follow-up with what it leaves out filled in"
    )
    citations: list[Citation] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    facts: list[Fact] | None = None
    refused: bool = False
    fallback: bool = False
    backend: str = ""
    timings: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def from_events(cls, events: Iterable[ChatEvent], backend: str) -> Answer:
        """The answer a stream of events adds up to."""
        answer = cls(answer="", backend=backend)
        for e in events:
            if isinstance(e, PassagesEvent):
                answer.passages = e.passages
                answer.standalone_question = e.standalone_question
            elif isinstance(e, CitationsEvent):
                answer.answer, answer.citations = e.answer, e.citations
                answer.refused, answer.fallback = e.refused, e.fallback
            elif isinstance(e, DoneEvent):
                answer.timings = e.timings
            elif isinstance(e, FactsEvent):
                answer.facts = e.facts
        return answer


# Streaming events, in this order: passages, token…, citations, facts, done (error on failure).
class PassagesEvent(BaseModel):
    event: Literal["passages"] = "passages"
    passages: list[Passage]
    standalone_question: str | None = None


class TokenEvent(BaseModel):
    event: Literal["token"] = "token"
    text: str


class CitationsEvent(BaseModel):
    event: Literal["citations"] = "citations"
    answer: str
    citations: list[Citation]
    refused: bool = False
    fallback: bool = False


class FactsEvent(BaseModel):
    event: Literal["facts"] = "facts"
    facts: list[Fact]


class DoneEvent(BaseModel):
    event: Literal["done"] = "done"
    timings: dict[str, float]


class ErrorEvent(BaseModel):
    event: Literal["error"] = "error"
    type: str
    message: str


ChatEvent = PassagesEvent | TokenEvent | CitationsEvent | FactsEvent | DoneEvent | ErrorEvent
