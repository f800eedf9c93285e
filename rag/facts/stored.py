"""How facts are stored with their chunks (JSON in the chunk's metadata, only what the chunk's
own metadata does not say) and the table of all facts of an index, reloaded when it moves."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from rag.schemas import Fact


class ChunkRecord(Protocol):
    """A stored chunk as the store returns it: its text and its metadata."""

    @property
    def text(self) -> str: ...

    @property
    def metadata(self) -> Mapping[str, Any]: ...


# Stored with each chunk: what the chunk's metadata does not already say.
_STORED = {
    *("indicator", "canonical", "family", "value", "unit", "qualifier", "direction", "kind"),
    "period",
    *("start", "end"),
}


def dump_facts(facts: list[Fact]) -> str:
    return json.dumps(
        [f.model_dump(include=_STORED, exclude_none=True) for f in facts], ensure_ascii=False
    )


def facts_from_chunks(chunks: Iterable[ChunkRecord], kb: str | None = None) -> Iterator[Fact]:
    """The facts stored in chunks' metadata, completed from it (document, quote) and the
    knowledge base ``kb`` they are in."""
    for c in chunks:
        raw = c.metadata.get("facts")
        if not raw:
            continue
        m = c.metadata
        offset = int(m["start"])
        for d in json.loads(str(raw)):
            yield Fact(
                **d,
                doc_id=str(m["doc_id"]),
                source=str(m.get("source", "")),
                title=str(m.get("title", "")),
                region=m.get("region"),
                year=m.get("year"),
                kb=kb,
                quote=c.text[d["start"] - offset : d["end"] - offset],
            )


class FactTable:
    """All facts of the committed chunks, reloaded when the index version moves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._facts: list[Fact] = []

    def get(self, version: int, load: Callable[[], Iterable[Fact]]) -> list[Fact]:
        with self._lock:
            if version != self._version:
                seen: set[tuple[str, int, str, float]] = set()
                facts = []
                for f in load():
                    if f.key not in seen:  # overlapping chunks carry a sentence twice
                        seen.add(f.key)
                        facts.append(f)
                self._facts, self._version = facts, version
            return self._facts
