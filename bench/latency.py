"""Answer latency per stage, before and after a change, in one run.

    python bench/latency.py [--root OLD_CHECKOUT --root .] [--dataset seeds|crud]
                            [--backends local,extractive] [--lookup 0,3] [--limit N]

For each ``--root`` (a checkout of this project; default: this one) a process of its own answers
the dev set with that checkout's code and virtual environment (``<root>/.venv`` when it has one,
so an older checkout runs with the llama.cpp build it installed), on that checkout's index of the
dataset; the questions, their order and the machine are the same. Per root and backend, and for
the local model per prompt lookup setting (``--lookup``: RAG_LLM__LOOKUP_TOKENS values, where the
checkout has it): accuracy, fallbacks, p50/p95 of retrieval, prompt tokens, first token and
total, decode speed (answer tokens per second after the first token) and, where the checkout
counts them, the draft acceptance rate and tokens per model step. Every answer is compared with
the first root's answer to the same question, and with its own root's first run (another lookup
setting): how many are the same text. A table by question type follows (prompt tokens, first
token and total of the local model).

Datasets: ``seeds`` (the seed dev set) or ``crud`` (the news dev split, 100 questions over 3,177
articles of ../shared/data/crud_news). Run it on an idle machine: the figures are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
STAGES = ["retrieval_ms", "prompt_tokens", "first_token_ms", "total_ms"]


# -- the worker: one checkout's code, in its own process ------------------------------------------


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Answer the dev set with the code of the checkout this process imports (``BENCH_ROOT``)."""
    from eval.datasets import load_dataset
    from eval.runner import ingest_corpus, score_answers
    from eval.targets import LocalTarget, eval_settings
    from rag.service import RAGService

    ds = load_dataset(args.dataset)
    settings = eval_settings(args.dataset)
    service = RAGService(settings)
    ingest_corpus(service, ds)
    samples = ds.select(args.limit, sample=False)
    LocalTarget(service).answer(samples[0].question, "extractive")  # warm: embedder, index, jieba
    runs = []
    for backend in args.backends.split(","):
        lookups: list[int | None] = [None]
        if (
            backend == "local"
            and args.lookup
            and "lookup_tokens" in type(settings.llm).model_fields
        ):
            lookups = [int(x) for x in args.lookup.split(",")]
        for lookup in lookups:
            s = settings
            if lookup is not None:
                s = settings.model_copy(
                    update={"llm": settings.llm.model_copy(update={"lookup_tokens": lookup})}
                )
            run = RAGService(s, embedder=service.embedder)
            model = run.chat_model(backend) if backend != "extractive" else None  # loaded now
            before = _counts(model)
            scores, details = score_answers(ds, samples, LocalTarget(run), backend)
            after = _counts(model)
            runs.append(
                {
                    "backend": backend,
                    "lookup": lookup,
                    "scores": scores.model_dump(),
                    "answers": [
                        {
                            "id": d["id"],
                            "type": d["type"],
                            "answer": d["answer"],
                            "correct": d["correct"],
                            "fallback": d["fallback"],
                            "timings": d["timings"],
                            "answer_tokens": model.count_tokens(d["answer"])
                            if model is not None and hasattr(model, "count_tokens")
                            else None,
                        }
                        for d in details
                    ],
                    "decoding": {k: after[k] - before[k] for k in after} if after else None,
                }
            )
    return {"python": sys.executable, "runs": runs}


def _counts(model: Any) -> dict[str, int]:
    stats = getattr(model, "stats", None)
    if stats is None:
        return {}
    keys = ("prompt_tokens", "prefilled", "restored", "generated", "steps", "drafted", "accepted")
    return {k: int(getattr(stats, k)) for k in keys}


# -- the summary ---------------------------------------------------------------------------------


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    answers = run["answers"]
    out: dict[str, Any] = {
        "accuracy": run["scores"]["accuracy"],
        "fallback_rate": run["scores"]["fallback_rate"],
    }
    for stage in STAGES:
        values = [a["timings"][stage] for a in answers if stage in a["timings"]]
        out[stage] = (
            {"p50": _pct(values, 50), "p95": _pct(values, 95), "n": len(values)} if values else None
        )
    # decode speed: the answer's tokens after the first, over the time after the first token
    tokens = seconds = 0.0
    for a in answers:
        t = a["timings"]
        if a["answer_tokens"] and not a["fallback"] and "first_token_ms" in t:
            prefill = t["first_token_ms"] - t.get("retrieval_ms", 0.0)
            decode = t.get("generation_ms", 0.0) - prefill
            if decode > 0 and a["answer_tokens"] > 1:
                tokens += a["answer_tokens"] - 1
                seconds += decode / 1000
    out["decode_tokens_per_s"] = round(tokens / seconds, 1) if seconds else None
    d = run.get("decoding")
    if d:
        out["acceptance"] = round(d["accepted"] / d["drafted"], 3) if d["drafted"] else None
        out["tokens_per_step"] = round(d["generated"] / d["steps"], 2) if d["steps"] else None
        out["prompt_tokens_computed"] = round(d["prefilled"] / max(d["prompt_tokens"], 1), 3)
    return out


def _pct(values: list[float], q: int) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1]


def python_of(root: Path) -> str:
    venv = root / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--root",
        type=Path,
        action="append",
        help="a checkout to measure (repeatable, in order; default: this one)",
    )
    ap.add_argument("--dataset", choices=["seeds", "crud"], default="seeds")
    ap.add_argument("--backends", default="local,extractive")
    ap.add_argument(
        "--lookup",
        default="",
        help="RAG_LLM__LOOKUP_TOKENS values to run the local model with, e.g. 0,3 (default: "
        "the checkout's own setting)",
    )
    ap.add_argument("--limit", type=int, default=None, help="the first N questions only")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        assert args.json_out is not None
        args.json_out.write_text(json.dumps(worker(args), ensure_ascii=False, default=str))
        return

    roots = [r.resolve() for r in (args.root or [ROOT])]
    results = []
    for root in roots:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "worker.json"
            cmd = [python_of(root), str(HERE), "--worker", "--json-out", str(out)]
            cmd += ["--dataset", args.dataset, "--backends", args.backends, "--lookup", args.lookup]
            if args.limit:
                cmd += ["--limit", str(args.limit)]
            env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
            env |= {"BENCH_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
            print(f"{root}: {cmd[0]}", file=sys.stderr)
            subprocess.run(cmd, cwd=root, env=env, check=True)
            results.append({"root": str(root), **json.loads(out.read_text())})
    report(args, results)


def report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    first: dict[str, dict[str, str]] = {}  # backend → question id → the first run's answer
    rows = []
    for r in results:
        mine: dict[str, dict[str, str]] = {}  # the same, within this root
        for run in r["runs"]:
            s = summarize(run)
            answers = {a["id"]: a["answer"] for a in run["answers"]}
            base = first.setdefault(run["backend"], answers)
            own = mine.setdefault(run["backend"], answers)
            s["same_answers"] = sum(answers.get(i) == a for i, a in base.items())
            s["same_in_root"] = sum(answers.get(i) == a for i, a in own.items())
            s["questions"] = len(answers)
            run["summary"] = s
            rows.append((Path(r["root"]).name or r["root"], run["backend"], run["lookup"], s))

    table = Table(
        "root",
        "backend",
        "lookup",
        "accuracy",
        "fallback",
        *[f"{s.removesuffix('_ms')} p50/p95" for s in STAGES],
        "decode tok/s",
        "acceptance",
        "tok/step",
        "same as first root",
        "same as root's first",
        title=f"{args.dataset} dev set: answer latency (ms; prompt in tokens)",
    )

    def cell(v: Any, fmt: str = ".0f") -> str:
        return "—" if v is None else format(v, fmt)

    for root, backend, lookup, s in rows:
        table.add_row(
            root,
            backend,
            cell(lookup, "d"),
            cell(s["accuracy"], ".3f"),
            cell(s["fallback_rate"], ".2f"),
            *[
                "—" if s[st] is None else f"{s[st]['p50']:.0f} / {s[st]['p95']:.0f}"
                for st in STAGES
            ],
            cell(s["decode_tokens_per_s"], ".1f"),
            cell(s.get("acceptance"), ".2f"),
            cell(s.get("tokens_per_step"), ".2f"),
            f"{s['same_answers']}/{s['questions']}",
            f"{s['same_in_root']}/{s['questions']}",
        )
    Console(width=200).print(table)
    Console(width=200).print(by_type(results))
    from bench._results import default_json, write_json

    path = write_json(
        args.json_out or default_json(f"latency-{args.dataset}"),
        {
            "when": datetime.now(UTC).isoformat(),
            "machine": platform.platform(),
            "cpu": _cpu(),
            "dataset": args.dataset,
            "results": results,
        },
        ensure_ascii=False,
        default=str,
    )
    print(f"written {path}")


def by_type(results: list[dict[str, Any]]) -> Any:
    """Prompt tokens and latency by question type: each root's first run of the local model."""
    from rich.table import Table

    table = Table(
        "root",
        "type",
        "questions",
        "prompt tokens p50",
        "first token p50",
        "total p50",
        title="the local model by question type (ms)",
    )
    for r in results:
        run = next((x for x in r["runs"] if x["backend"] == "local"), None)
        if run is None:
            continue
        kinds: dict[str, list[dict[str, Any]]] = {}
        for a in run["answers"]:
            kinds.setdefault(a.get("type") or "—", []).append(a["timings"])
        for kind, timings in sorted(kinds.items()):
            cells = []
            for stage in ("prompt_tokens", "first_token_ms", "total_ms"):
                values = [t[stage] for t in timings if stage in t]
                cells.append(f"{_pct(values, 50):.0f}" if values else "—")
            table.add_row(Path(r["root"]).name, kind, str(len(timings)), *cells)
    return table


def _cpu() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), None
    )


if __name__ == "__main__":
    if os.environ.get("BENCH_ROOT"):  # a worker: that checkout's code comes first
        sys.path.insert(0, os.environ["BENCH_ROOT"])
    else:
        sys.path.insert(0, str(ROOT))
    main()
