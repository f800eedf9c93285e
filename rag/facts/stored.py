"""How facts are stored with their chunks: JSON in the chunk's metadata, only what the chunk's
own metadata does not say (``rag.segments`` keeps every committed document's facts)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
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
