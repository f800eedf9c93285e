"""Indicator facts: extracted at ingest, ranked in Python for comparison questions.

A comparison question ("哪个城市信访量下降最多?") needs one figure from each of several documents;
top-k retrieval and a small model get it wrong. So ingest extracts every indicator statement —
indicator, value, unit, direction (下降/增长), target or result, period, sentence offsets — and a
comparison question is answered from that table.

- ``taxonomy``: the indicator names and their aliases (``rag/data/indicators.toml``);
- ``patterns``: the regexes of indicator statements;
- ``extract``: extraction at ingest;
- ``stored``: the storage format with the chunks, and the table of an index's facts;
- ``query``: question parsing and ranking.
"""

from rag.facts.extract import attach_facts, extract_facts
from rag.facts.query import (
    Comparison,
    FactQuery,
    asked_kind,
    compare,
    entity_label,
    implausible,
    parse_question,
)
from rag.facts.stored import dump_facts, facts_from_chunks
from rag.facts.taxonomy import Taxonomy, taxonomy

__all__ = [
    "Comparison",
    "FactQuery",
    "Taxonomy",
    "asked_kind",
    "attach_facts",
    "compare",
    "dump_facts",
    "entity_label",
    "extract_facts",
    "facts_from_chunks",
    "implausible",
    "parse_question",
    "taxonomy",
]
