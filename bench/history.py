"""What the conversation's history is worth: the development conversations replayed twice in one
run, each turn answered with the earlier turns as history and answered as asked (no history,
what the service did before follow-ups were resolved).

    python bench/history.py [--backend extractive|local] [--json-out PATH]

Both runs use the same indexes (the seeds' and the government reports', as ``rag eval`` builds
them) and the harness's own scoring (``eval.runner.score_conversations``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import default_json, write_json
from eval.datasets import load_conversations, load_dataset
from eval.runner import ingest_corpus, score_conversations
from eval.targets import LocalTarget, eval_settings
from rag.schemas import Answer, Turn
from rag.service import RAGService


class AsAsked(LocalTarget):
    """The library, each turn answered without the turns before it."""

    def answer(self, question: str, backend: str | None, history: Sequence[Turn] = ()) -> Answer:
        return super().answer(question, backend)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", default="extractive", choices=["extractive", "local", "openai"])
    ap.add_argument("--json-out", type=Path, default=default_json("history"))
    args = ap.parse_args()
    conversations = load_conversations("conversations")
    services = {}
    for corpus in sorted({c.corpus for c in conversations}):
        services[corpus] = RAGService(eval_settings(corpus))
        ingest_corpus(services[corpus], load_dataset(corpus))
    table = Table("history", "first turns", "follow-ups", "conversations", "refusals")
    result = {}
    for label, target in (("sent", LocalTarget), ("ignored", AsAsked)):
        targets = {c: target(s) for c, s in services.items()}
        scores, _ = score_conversations(conversations, targets, args.backend)  # type: ignore[arg-type]
        result[label] = scores.model_dump()
        table.add_row(
            label,
            f"{scores.first_turn_accuracy:.3f}",
            f"{scores.followup_accuracy:.3f}",
            f"{scores.conversation_accuracy:.3f}",
            f"{scores.refusal_accuracy:.3f}" if scores.refusal_accuracy is not None else "—",
        )
    table.title = f"{len(conversations)} conversations, {args.backend}"
    Console().print(table)
    Console().print(f"results: {write_json(args.json_out, result)}")


if __name__ == "__main__":
    main()
