"""Cleaning: how much of each document the cleaner keeps, and whether any document is lost.

    python bench/cleaning.py                    # crud dev subset, RGB-zh dev docs, seeds, gov reports
    python bench/cleaning.py --json-out bench/results/cleaning.json

For every document of each corpus: its text as ingest loads it, then ``rag.text.content_spans``
(what chunking keeps). Per corpus: documents, documents lost (nothing left: ingest rejects them),
characters of the source and kept (whitespace not counted), and the removed characters split by
where they were: before the first kept text (a news header ``…，正文：``, a site's masthead), after
the last (a footer), or between.
Reads ``../shared`` in place (the crud subset from ``crud_news/docs.jsonl.gz`` by the dev ids).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import default_json, write_json
from rag.loaders import load_bytes
from rag.text import content_spans

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
_WS = re.compile(r"\s+")


def _chars(text: str) -> int:
    return len(_WS.sub("", text))


def crud_subset() -> Iterator[tuple[str, str]]:
    ids_file = SHARED / "eval" / "crud" / "subset_ids.txt"
    wanted = set(ids_file.read_text(encoding="utf-8").split())
    with gzip.open(SHARED / "data" / "crud_news" / "docs.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["id"] in wanted:
                yield row["id"], row["text"]


def folder(*paths: Path) -> Iterator[tuple[str, str]]:
    for path in paths:
        for file in sorted(path.rglob("*")):
            if file.is_file() and file.suffix in (".txt", ".md"):
                yield file.name, load_bytes(file.read_bytes(), file.suffix).text


CORPORA: dict[str, Callable[[], Iterator[tuple[str, str]]]] = {
    "crud dev subset": crud_subset,
    "rgb dev docs": lambda: folder(
        *(SHARED / "eval" / "rgb" / p / "docs" for p in ("noise", "integration", "rejection"))
    ),
    "seeds": lambda: folder(ROOT / "seeds"),
    "gov reports": lambda: folder(SHARED / "data" / "gov_reports"),
}


def measure(docs: Iterator[tuple[str, str]]) -> dict[str, object]:
    n = source = kept = head = tail = 0
    lost: list[str] = []
    for name, text in docs:
        n += 1
        spans = content_spans(text)
        total = _chars(text)
        source += total
        got = sum(_chars(text[s:e]) for s, e in spans)
        kept += got
        if not spans:
            lost.append(name)
            continue
        head += _chars(text[: spans[0][0]])
        tail += _chars(text[spans[-1][1] :])
    removed = source - kept
    return {
        "documents": n,
        "lost": len(lost),
        "lost_examples": lost[:10],
        "chars_source": source,
        "chars_kept": kept,
        "kept_share": kept / source if source else 1.0,
        "removed_head": head,
        "removed_tail": tail,
        "removed_inside": removed - head - tail,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json-out", type=Path, default=None, help="default: bench/results/")
    args = ap.parse_args(argv)
    results = {name: measure(docs()) for name, docs in CORPORA.items()}
    table = Table(
        "corpus",
        "docs",
        "lost",
        "chars kept",
        "removed: head",
        "tail",
        "inside",
        title="cleaning: characters kept of the source (whitespace not counted)",
    )
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['documents']:,}",
            str(r["lost"]),
            f"{r['kept_share']:.4f} ({r['chars_kept']:,} of {r['chars_source']:,})",
            f"{r['removed_head']:,}",
            f"{r['removed_tail']:,}",
            f"{r['removed_inside']:,}",
        )
    Console(width=120).print(table)
    for name, r in results.items():
        if r["lost"]:
            print(f"{name}: lost {r['lost_examples']}")
    path = write_json(args.json_out or default_json("cleaning"), results, ensure_ascii=False)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
