"""Answer latency per stage on the seed dev set, for the local model and `extractive`, in one run.

    python bench/latency.py [--backends local,extractive] [--limit N]

Per backend: p50/p95 of retrieval (passages ready for a streaming client), prompt tokens, time to
first token, total; and answer accuracy beside it (the same questions, the same index).
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import default_json, write_json
from eval.datasets import load_dataset
from eval.runner import ingest_corpus, score_answers
from eval.targets import LocalTarget, eval_settings
from rag.service import RAGService

STAGES = ["retrieval_ms", "prompt_tokens", "first_token_ms", "total_ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backends", default="local,extractive")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json-out", type=Path, default=default_json("latency"))
    args = ap.parse_args()
    ds = load_dataset("seeds")
    service = RAGService(eval_settings("seeds"))
    ingest_corpus(service, ds)
    samples = ds.select(args.limit, sample=False)
    target = LocalTarget(service)
    target.answer(samples[0].question, "extractive")  # warm: embedder, index, jieba

    results = {}
    for backend in args.backends.split(","):
        if backend != "extractive":
            service.chat_model(backend)  # load outside the timings
        scores, _ = score_answers(ds, samples, target, backend)
        results[backend] = scores.model_dump()

    table = Table(
        "backend",
        "accuracy",
        "fallback",
        *[f"{s} p50/p95" for s in STAGES],
        title=f"seeds dev set, {len(samples)} questions",
    )
    for backend, r in results.items():
        cells = []
        for s in STAGES:
            v = r["latency_ms"].get(s)
            cells.append("—" if v is None else f"{v['p50']:.0f} / {v['p95']:.0f}")
        table.add_row(backend, f"{r['accuracy']:.3f}", f"{r['fallback_rate']:.2f}", *cells)
    Console().print(table)
    write_json(
        args.json_out,
        {
            "when": datetime.now(UTC).isoformat(),
            "machine": platform.platform(),
            "questions": len(samples),
            "results": results,
        },
        default=str,
    )
    Console().print(f"written {args.json_out}")


if __name__ == "__main__":
    main()
