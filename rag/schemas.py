"""The shared types: what the library returns, the API serves and the client parses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field


class Document(BaseModel):
    """A loaded source file: its original text (offsets index this) and what was found about it."""

    doc_id: str
    source: str
    title: str
    text: str
    date: str | None = None
    region: str | None = None
    content_hash: str


class Fact(BaseModel):
    """An indicator statement found in a document ("信访总量同比下降15.1%"): one figure of one
    indicator, with the offsets of its sentence (``original_text[start:end]`` holds the figure)."""

    indicator: str  # as reported, e.g. 集体访人次 (simplified script)
    canonical: str | None = None  # the taxonomy's name (rag/data/indicators.toml), if known
    family: str | None = None  # a wider name it belongs to (信访), if any
    value: float
    unit: str = ""
    direction: Literal["down", "up"] | None = None  # a change (下降/增长) or a level (None)
    kind: Literal["target", "result"] = "result"  # a goal (预期目标, 左右, 以上) or an outcome
    period: str | None = None  # the year the sentence names, else the document's
    doc_id: str
    source: str = ""
    title: str = ""
    region: str | None = None
    year: int | None = None  # the document's year
    start: int
    end: int
    # Filled in when a comparison answer uses the fact:
    entity: str | None = None  # what is compared (a region, or a year)
    quote: str | None = None
    marker: int | None = None  # the n of the [n] citing it
    implausible: bool = False  # e.g. a decline above 100%

    @property
    def figure(self) -> str:
        return f"{self.value:g}{self.unit}"


class Chunk(BaseModel):
    """A span of a document: ``document.text[start:end] == text``."""

    doc_id: str
    index: int
    text: str
    start: int
    end: int
    facts: list[Fact] = Field(default_factory=list)  # facts whose sentence starts in the chunk


class Filters(BaseModel):
    """Metadata filters, applied on the dense and the lexical side alike."""

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

    def to_where(self) -> dict[str, object] | None:
        """The same filter as a Chroma ``where`` clause."""
        clauses: list[dict[str, object]] = []
        if isinstance(self.doc_id, str):
            clauses.append({"doc_id": self.doc_id})
        elif self.doc_id is not None:
            clauses.append({"doc_id": {"$in": list(self.doc_id)}})
        if self.region is not None:
            clauses.append({"region": self.region})
        if self.year_from is not None:
            clauses.append({"year": {"$gte": self.year_from}})
        if self.year_to is not None:
            clauses.append({"year": {"$lte": self.year_to}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


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


class Answer(BaseModel):
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    facts: list[Fact] | None = None
    refused: bool = False
    fallback: bool = False
    backend: str = ""
    timings: dict[str, float] = Field(default_factory=dict)


# Streaming events, in this order: passages, token…, citations, facts, done (error on failure).
class PassagesEvent(BaseModel):
    event: Literal["passages"] = "passages"
    passages: list[Passage]


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
