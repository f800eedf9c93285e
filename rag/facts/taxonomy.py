"""The indicator taxonomy (``rag/data/indicators.toml``): canonical names, their aliases in
simplified script and English, and the families they belong to (集体访人次 → 信访)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rag.text import fold

_TAXONOMY = Path(__file__).resolve().parents[1] / "data" / "indicators.toml"


@dataclass(frozen=True)
class Taxonomy:
    """Canonical indicator names, their aliases (simplified, and English) and families."""

    alias_to_canonical: dict[str, str]  # simplified alias → canonical
    family_of: dict[str, str]  # canonical → family
    totals: frozenset[str]  # canonical names that are a family's overall figure
    family_aliases: dict[str, str]  # alias (zh or en) of a family → family
    en_to_canonical: dict[str, str]

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Known aliases in ``text`` (folded): (start, end, canonical), longest first, no overlap."""
        found: list[tuple[int, int, str]] = []
        for alias in sorted(self.alias_to_canonical, key=len, reverse=True):
            for m in re.finditer(re.escape(alias), text, flags=re.IGNORECASE):
                if all(m.end() <= s or m.start() >= e for s, e, _ in found):
                    found.append((m.start(), m.end(), self.alias_to_canonical[alias]))
        return sorted(found)

    def glossary(self, english: str) -> dict[str, str]:
        """English terms of ``english`` the taxonomy knows, with their Chinese name (longest
        terms first, each word used once): a glossary for translating the question."""
        low = english.lower()
        out: dict[str, str] = {}
        terms = {**{a: f for a, f in self.family_aliases.items() if a.isascii()}}
        terms |= self.en_to_canonical
        for term in sorted(terms, key=len, reverse=True):
            m = re.search(rf"\b{re.escape(term.removesuffix('s'))}", low)  # either number
            if m:
                out[term] = terms[term]
                low = low[: m.start()] + " " * len(term) + low[m.end() :]
        return out


@lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    data = tomllib.loads(_TAXONOMY.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    family_of: dict[str, str] = {}
    totals: set[str] = set()
    en: dict[str, str] = {}
    for name, spec in data.get("indicator", {}).items():
        for a in [name, *spec.get("aliases", [])]:
            aliases[fold(a)] = name
        for a in spec.get("en", []):
            en[a.lower()] = name
        if spec.get("family"):
            family_of[name] = spec["family"]
        if spec.get("total"):
            totals.add(name)
    families: dict[str, str] = {}
    for name, spec in data.get("family", {}).items():
        for a in [name, *spec.get("aliases", []), *spec.get("en", [])]:
            families[fold(a).lower()] = name
    return Taxonomy(aliases, family_of, frozenset(totals), families, en)
