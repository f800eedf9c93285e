"""Ingest throughput: the raw embedder vs the whole pipeline, on the same chunks, in one run.

    python bench/ingest.py                      # seeds + five government work reports
    python bench/ingest.py PATH... --json-out bench/results/ingest.json

1. raw:      the embedder alone (RAG_EMBEDDING__BACKEND) on the very texts the pipeline embeds
             (same batch size, sorted by length as the pipeline does);
2. pipeline: load → clean → chunk → embed → write into a fresh Chroma index.
The model is loaded (and warmed) before either is timed. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import default_json, write_json
from rag.chunking import chunk_document
from rag.config import Settings
from rag.ingest import build_document, content_hash, discover
from rag.loaders import load_bytes
from rag.schemas import IngestSummary
from rag.service import RAGService
from rag.text import guess_region, index_text

ROOT = Path(__file__).resolve().parents[1]
GOV = ROOT.parent / "shared" / "data" / "gov_reports"
DEFAULT_INPUTS = [ROOT / "seeds", *(GOV / f"{y}.txt" for y in range(2015, 2020))]


def pipeline_texts(paths: list[Path], settings: Settings) -> list[str]:
    """The texts the pipeline embeds for these files (same cleaning, chunking, context)."""
    inputs, _ = discover(paths)
    texts = []
    for item in inputs:
        assert item.path is not None
        data = item.path.read_bytes()
        doc = build_document(
            item.source, load_bytes(data, item.path.suffix), content_hash(data, settings.chunking)
        )
        c = settings.chunking
        for chunk in chunk_document(
            doc.doc_id, doc.text, c.target_chars, c.max_chars, c.overlap_sentences
        ):
            texts.append(index_text(doc.title, doc.region, chunk.text))
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "paths", nargs="*", type=Path, default=[p for p in DEFAULT_INPUTS if p.exists()]
    )
    ap.add_argument("--json-out", type=Path, default=default_json("ingest"))
    ap.add_argument("--repeat", type=int, default=2, help="runs of each; the best is reported")
    args = ap.parse_args()

    settings = Settings()
    service = RAGService(settings)
    emb = service.embedder
    texts = pipeline_texts(args.paths, settings)
    emb.encode_passages(texts[:8])  # warm up: model loaded, kernels ready
    guess_region("延吉市", "延吉市")  # jieba dictionary loaded

    by_length = sorted(texts, key=len, reverse=True)

    def raw() -> float:
        t0 = time.perf_counter()
        emb.encoder.encode(by_length, emb.passage_prompt, emb.batch_size)
        return time.perf_counter() - t0

    def pipeline() -> tuple[float, IngestSummary]:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = RAGService(settings.model_copy(update={"data_dir": Path(tmp)}), embedder=emb)
            fresh.store  # noqa: B018 - open Chroma before timing
            t0 = time.perf_counter()
            summary = fresh.ingest(args.paths)
            return time.perf_counter() - t0, summary

    # Alternate the two, best of --repeat each: the machine's noise hits both alike.
    raw_runs, pipe_runs = [], []
    for _ in range(args.repeat):
        raw_runs.append(raw())
        seconds, summary = pipeline()
        pipe_runs.append(seconds)
    raw_s, pipe_s = min(raw_runs), min(pipe_runs)
    chunks = sum(d.chunks for d in summary.documents if d.status == "added")
    assert chunks == len(texts), (chunks, len(texts))

    chars = sum(map(len, texts))
    result = {
        "when": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "documents": len(summary.documents),
        "chunks": len(texts),
        "mean_chunk_chars": round(chars / len(texts), 1),
        "batch_size": settings.embedding.batch_size,
        "repeat": args.repeat,
        "raw_embedder": {
            "seconds": round(raw_s, 2),
            "chunks_per_s": round(len(texts) / raw_s, 2),
            "runs": [round(x, 2) for x in raw_runs],
        },
        "pipeline": {
            "seconds": round(pipe_s, 2),
            "chunks_per_s": round(chunks / pipe_s, 2),
            "runs": [round(x, 2) for x in pipe_runs],
        },
        "pipeline_fraction_of_raw": round(raw_s / pipe_s, 3),
    }
    table = Table(
        "",
        "seconds",
        "chunks/s",
        title=f"{len(texts)} chunks from "
        f"{len(summary.documents)} documents (mean {result['mean_chunk_chars']} chars)",
    )
    table.add_row("raw embedder", f"{raw_s:.1f}", f"{len(texts) / raw_s:.2f}")
    table.add_row("full pipeline", f"{pipe_s:.1f}", f"{chunks / pipe_s:.2f}")
    console = Console()
    console.print(table)
    console.print(f"pipeline = {result['pipeline_fraction_of_raw']:.1%} of raw embedder throughput")
    write_json(args.json_out, result)
    console.print(f"written {args.json_out}")


if __name__ == "__main__":
    main()
