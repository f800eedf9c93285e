"""What resolving a follow-up adds to an answer: ``rag.conversation.resolve`` timed on every turn
of the development conversations, with the history they come with and with longer ones.

    python bench/resolve.py [--repeat 20] [--json-out PATH]

Each turn is resolved cold (the parse cache cleared: no turn parsed by an earlier request)
against its conversation's earlier turns (as the harness replays them),
and again behind a history padded to 5 and to the default limit of 20 turns (each earlier user
turn is resolved in order, so the cost grows with the history). Also, beside it, the extractive
answer's own total on the seeds index: the resolution's share of what a user waits for.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import default_json, write_json
from eval import metrics as M
from eval.datasets import load_conversations, load_dataset
from eval.runner import ingest_corpus
from eval.targets import eval_settings
from rag.conversation import resolve, warm_up
from rag.schemas import Turn
from rag.service import RAGService
from rag.slots import parse


def _cases(pad: int, name: str = "conversations") -> list[tuple[str, list[Turn]]]:
    """(question, history) for every turn of the dev conversations, the history padded in front
    with earlier turns of other conversations to at least ``pad`` turns."""
    conversations = load_conversations(name)
    filler = [
        Turn(role=role, content=text)
        for c in conversations
        for t in c.turns
        for role, text in (("user", t.question), ("assistant", "、".join(t.must_include) or "—"))
    ]
    cases = []
    for c in conversations:
        history: list[Turn] = []
        for t in c.turns:
            padded = filler[: max(0, pad - len(history))] + history if pad else history
            cases.append((t.question, padded))
            history += [Turn(role="user", content=t.question)]
            history += [Turn(role="assistant", content="、".join(t.must_include) or "—")]
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20, help="times each turn is resolved")
    ap.add_argument("--json-out", type=Path, default=default_json("resolve"))
    args = ap.parse_args()
    warm_up()
    out = Console()
    table = Table(
        "history", "turns", "p50 ms", "p95 ms", "max ms", title="resolve(question, history)"
    )
    result: dict[str, object] = {"python": platform.python_version(), "repeat": args.repeat}
    for pad in (0, 5, 20):
        cases = _cases(pad)
        ms = []
        for question, history in cases:
            for _ in range(args.repeat):
                parse.cache_clear()  # cold: no turn parsed by an earlier request
                t0 = time.perf_counter()
                resolve(question, history)
                ms.append((time.perf_counter() - t0) * 1000)
        label = "as replayed" if pad == 0 else f"≥ {pad} turns"
        row = {"p50": M.percentile(ms, 50), "p95": M.percentile(ms, 95), "max": max(ms)}
        result[label] = {**row, "turns": len(cases)}
        table.add_row(
            label, str(len(cases)), f"{row['p50']:.2f}", f"{row['p95']:.2f}", f"{row['max']:.2f}"
        )
    service = RAGService(eval_settings("seeds"))
    ingest_corpus(service, load_dataset("seeds"))
    totals = []
    for question, history in _cases(0, "conversations-seeds"):
        a = service.answer(question, backend="extractive", history=history)
        totals.append(a.timings["total_ms"])
    result["extractive answer total_ms"] = {
        "p50": M.percentile(totals, 50),
        "p95": M.percentile(totals, 95),
        "turns": len(totals),
    }
    out.print(table)
    out.print(
        f"beside it, an extractive answer on the seeds index (total, with resolution): "
        f"p50 {M.percentile(totals, 50):.0f} ms, p95 {M.percentile(totals, 95):.0f} ms"
    )
    out.print(f"results: {write_json(args.json_out, result)}")


if __name__ == "__main__":
    main()
