"""Prompt lookup on and off, interleaved, so that a slow minute of the machine falls on both.

    python bench/lookup_ab.py [--lookup 0,3] [--passes 3] [--dataset seeds]

``bench/latency.py`` answers the dev set once per lookup setting, one setting after the other;
on a shared 2-core machine the medians of two such passes move by a few tenths of a second. Here
each setting answers the whole dev set ``--passes`` times, the settings taking turns in the order
A B B A A B …, each with its own model (so one setting's KV cache never serves the other), and a
question's time is its median over its passes. Prints and writes first token and total p50 /
mean per setting, and whether every answer is the same text in every pass and setting.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import default_json, write_json
from eval.datasets import load_dataset
from eval.runner import ingest_corpus
from eval.targets import LocalTarget, eval_settings
from rag.service import RAGService


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lookup", default="0,3", help="two RAG_LLM__LOOKUP_TOKENS values")
    p.add_argument("--passes", type=int, default=3, help="passes over the dev set per setting")
    p.add_argument("--dataset", default="seeds", choices=["seeds", "crud"])
    args = p.parse_args()
    a, b = (int(x) for x in args.lookup.split(","))

    ds = load_dataset(args.dataset)
    settings = eval_settings(args.dataset)
    base = RAGService(settings)
    ingest_corpus(base, ds)
    questions = ds.select(None, sample=False)
    targets = {}
    for k in (a, b):
        llm = settings.llm.model_copy(update={"lookup_tokens": k})
        service = RAGService(settings.model_copy(update={"llm": llm}), embedder=base.embedder)
        service.chat_model("local")  # loaded before the clock starts
        targets[k] = LocalTarget(service)
    order = [(a, b) if i % 2 == 0 else (b, a) for i in range(args.passes)]
    times: dict[int, dict[str, list[tuple[float | None, float]]]] = {a: {}, b: {}}
    answers: dict[str, set[str]] = {}
    for i, pair in enumerate(order):
        for k in pair:
            for q in questions:
                r = targets[k].answer(q.question, "local")
                times[k].setdefault(q.id, []).append(
                    (r.timings.get("first_token_ms"), r.timings["total_ms"])
                )
                answers.setdefault(q.id, set()).add(r.answer)
            print(f"pass {i + 1}/{args.passes}, lookup {k}: done", flush=True)

    summary: dict[str, Any] = {}
    for k, per_question in times.items():
        first = [
            statistics.median(fs)
            for v in per_question.values()
            if (fs := [f for f, _ in v if f is not None])
        ]
        total = [statistics.median(t for _, t in v) for v in per_question.values()]
        summary[str(k)] = {
            "first_token_p50_ms": round(statistics.median(first)),
            "first_token_mean_ms": round(statistics.mean(first)),
            "total_p50_ms": round(statistics.median(total)),
            "total_mean_ms": round(statistics.mean(total)),
        }
        print(f"lookup {k}: {summary[str(k)]}")
    same = sum(len(v) == 1 for v in answers.values())
    print(f"same answer in every pass and setting: {same} / {len(answers)}")
    out = write_json(
        default_json(f"lookup-ab-{args.dataset}"),
        {
            "when": datetime.now(UTC).isoformat(),
            "dataset": args.dataset,
            "passes": args.passes,
            "order": order,
            "summary": summary,
            "same_answers": same,
            "questions": len(answers),
            "times_ms": {str(k): v for k, v in times.items()},
        },
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
