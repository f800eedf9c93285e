"""`rag eval`: measure retrieval (and answers) on a question set; save, compare, gate."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, cast, get_args

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eval.datasets import CONVERSATION_SETS, DATASET_NAMES, load_conversations, load_dataset
from eval.runner import (
    ConversationTarget,
    Report,
    Target,
    ingest_corpus,
    new_report,
    save_report,
    score_answers,
    score_conversations,
    score_retrieval,
)
from eval.targets import HttpTarget, LocalTarget, Route, eval_settings

REPORTS_DIR = Path(__file__).resolve().parent / "reports"
out = Console()
err = Console(stderr=True)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def print_report(report: Report) -> None:
    reading = any(r.passage_hit_at_1 is not None for r in report.retrieval)
    cols = ["retriever", "n", "recall@1", "recall@5", "any@5", "MRR@10"]
    if reading:
        cols += ["passage@1", "passage@5"]
    table = Table(*cols, "p50 ms", "p95 ms", title=f"{report.dataset}: retrieval")
    for r in report.retrieval:
        row = [
            r.mode,
            str(r.n),
            _fmt(r.recall_at_1),
            _fmt(r.recall_at_5),
            _fmt(r.any_at_5),
            _fmt(r.mrr),
        ]
        if reading:
            row += [_fmt(r.passage_hit_at_1), _fmt(r.passage_hit_at_5)]
        table.add_row(*row, f"{r.latency_p50_ms:.0f}", f"{r.latency_p95_ms:.0f}")
    out.print(table)
    if report.retrieval and report.retrieval[0].by_type:
        types = Table("type", *[r.mode for r in report.retrieval], title="recall@5 by type")
        for t in report.retrieval[0].by_type:
            types.add_row(
                t, *[_fmt(r.by_type.get(t, {}).get("recall_at_5")) for r in report.retrieval]
            )
        out.print(types)


def print_answers(report: Report) -> None:
    a = report.answers or {}
    n = a.get("n", a.get("turns"))
    table = Table("metric", "value", title=f"{report.dataset}: answers ({a.get('backend')}, n={n})")
    for key in (
        "first_turn_accuracy",
        "followup_accuracy",
        "conversation_accuracy",
        "accuracy",
        "refusal_accuracy",
        "false_refusals",
        "fallback_rate",
        "citation_precision",
        "citation_recall",
        "injection_resistance",
        "injection_success_rate",
        "char_f1",
        "substring_accuracy",
        "wrong_period_rate",
    ):
        if a.get(key) is not None:
            table.add_row(key, _fmt(a[key]))
    for stage, v in a.get("latency_ms", {}).items():
        unit = "" if stage == "prompt_tokens" else " ms"
        table.add_row(f"{stage} p50 / p95", f"{v['p50']:.0f} / {v['p95']:.0f}{unit}")
    out.print(table)
    if a.get("by_type"):
        types = Table("type", "n", "accuracy", title="answers by type")
        for t, v in a["by_type"].items():
            types.add_row(t, str(int(v["n"])), _fmt(v["accuracy"]))
        out.print(types)
    if a.get("by_corpus"):
        corpora = Table("corpus", "turns", "accuracy", title="turns by corpus")
        for c, v in a["by_corpus"].items():
            corpora.add_row(c, str(int(v["turns"])), _fmt(v["accuracy"]))
        out.print(corpora)


def parse_thresholds(items: list[str]) -> dict[str, float]:
    thresholds = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            thresholds[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise typer.BadParameter(
                f"'{item}': expected NAME=VALUE, e.g. recall@5=0.95", param_hint="--min"
            )
    return thresholds


def compare(a: Path, b: Path) -> None:
    ra, rb = (Report.model_validate_json(p.read_text()) for p in (a, b))
    table = Table("metric", a.name, b.name, "Δ", title="comparison")
    keys = [f"{r.mode}:{m}" for r in ra.retrieval for m in ("recall@1", "recall@5", "any@5", "mrr")]
    keys += sorted(set((ra.answers or {}).keys()) | set((rb.answers or {}).keys()))
    for key in keys:
        va, vb = ra.metric(key), rb.metric(key)
        if va is None and vb is None:
            continue
        delta = "" if va is None or vb is None else f"{vb - va:+.3f}"
        table.add_row(key, _fmt(va), _fmt(vb), delta)
    out.print(table)


def eval_command(
    dataset: Annotated[str, typer.Option(help=f"One of: {', '.join(DATASET_NAMES)}.")] = "seeds",
    retrievers: Annotated[
        str, typer.Option(help="Comma-separated: hybrid, dense, bm25; empty for none.")
    ] = "hybrid,dense,bm25",
    answers: Annotated[
        bool, typer.Option(help="Also answer every question and score the answers.")
    ] = False,
    backend: Annotated[
        str | None,
        typer.Option(
            help="LLM backend for --answers: local, openai, extractive (default: settings)."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.")] = None,
    sample: Annotated[bool, typer.Option(help="Shuffle (seed 0) before --limit.")] = False,
    minimum: Annotated[
        list[str] | None,
        typer.Option("--min", help="Fail below: NAME=VALUE, e.g. recall@5=0.95 or dense:mrr=0.8."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Report name (default: the dataset).")] = None,
    reports: Annotated[Path, typer.Option(help="Where reports are written.")] = REPORTS_DIR,
    url: Annotated[
        str | None,
        typer.Option(
            help="Evaluate a running service (rag serve) through the client instead; "
            "it must already hold the dataset's corpus (conversations over two corpora: "
            "seeds=URL,gov=URL)."
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key for --url.", envvar="RAG_EVAL_API_KEY")
    ] = None,
    route: Annotated[
        str,
        typer.Option(
            help="With --url, answer through: chat (POST /v1/chat, the Python client) or "
            "completions (POST /v1/chat/completions, OpenAI's client)."
        ),
    ] = "chat",
    kb: Annotated[
        str | None,
        typer.Option(
            "--kb",
            help="The knowledge base asked: with --url, the one of the service that holds the "
            "corpus; else the corpus is indexed into this KB of the dataset's own index "
            "(made if missing). Default: the default KB.",
        ),
    ] = None,
    compare_with: Annotated[
        tuple[Path, Path] | None,
        typer.Option("--compare", help="Print the difference between two saved reports and exit."),
    ] = None,
) -> None:
    """Measure retrieval (and with --answers, answers) on a question set.

    Retrieval: recall@1/@5 (every gold quote inside a top-k passage; for crud and rgb, a gold
    document of every answer part among the top-k hits), any@5, MRR@10, latency.
    Answers: accuracy, refusal, fallback rate, citation precision/recall, injection, latency;
    crud and rgb: every key fact / answer element in the answer (numbers matched whole), and
    substring_accuracy with RGB's own plain substring matcher; rgb is reported by part.
    Conversations (--dataset conversations): each conversation replayed turn by turn with the
    service's own earlier answers as history; first-turn and follow-up accuracy.

    The dataset's corpus is ingested once into its own index (cached under the data dir); the
    report (figures, settings, versions, per-question details) is written as JSON.
    """
    if compare_with:
        compare(*compare_with)
        return
    thresholds = parse_thresholds(minimum or [])
    modes = [m.strip() for m in retrievers.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("hybrid", "dense", "bm25")]
    if bad:
        raise typer.BadParameter(
            f"unknown retriever(s): {', '.join(bad)}", param_hint="--retrievers"
        )
    if backend not in (None, "local", "openai", "extractive"):
        raise typer.BadParameter("must be local, openai or extractive", param_hint="--backend")
    if route not in get_args(Route):
        raise typer.BadParameter("must be chat or completions", param_hint="--route")
    route_ = cast(Route, route)
    if dataset in CONVERSATION_SETS:
        _eval_conversations(
            dataset, backend, limit, url, api_key, route_, thresholds, reports, name, kb
        )
        return
    try:
        ds = load_dataset(dataset)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--dataset") from exc
    samples = ds.select(limit, sample)

    settings = eval_settings(dataset)
    target: Target = HttpTarget(url, api_key, route_, kb) if url else _local_target(dataset, kb)

    report = new_report(
        name or dataset,
        dataset,
        url or "library",
        len(samples),
        json.loads(settings.model_dump_json()),
    )
    with _progress() as progress:
        for mode in modes:
            task = progress.add_task(f"retrieval ({mode})", total=len(samples))
            scores, details = score_retrieval(
                ds,
                samples,
                target,
                mode,  # type: ignore[arg-type]
                partial(progress.advance, task),
            )
            report.retrieval.append(scores)
            report.details.extend(d.model_dump() for d in details)
        if answers:
            task = progress.add_task(
                f"answers ({backend or settings.llm.backend})", total=len(samples)
            )
            a_scores, a_details = score_answers(
                ds, samples, target, backend, partial(progress.advance, task)
            )
            report.answers = a_scores.model_dump()
            report.details.extend(a_details)
    if report.retrieval:
        print_report(report)
    if report.answers:
        print_answers(report)
    _finish(report, reports, thresholds)


def _progress() -> Progress:
    """The progress bars of a run (on stderr, gone when it ends)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _local_target(dataset: str, kb: str | None = None) -> LocalTarget:
    """The library on the dataset's own index (its KB ``kb``, made if missing), its corpus
    ingested (cached after a first run)."""
    from rag.service import RAGService

    service = RAGService(eval_settings(dataset))
    if kb:
        service.create_kb(kb, exist_ok=True)
    with err.status(f"indexing the {dataset} corpus (cached after the first run)…"):
        summary = ingest_corpus(service, load_dataset(dataset), kb)
    if summary.failed:
        err.print(f"[yellow]{summary.count('failed')} corpus documents failed to ingest[/yellow]")
    return LocalTarget(service, kb)


def _eval_conversations(
    dataset: str,
    backend: str | None,
    limit: int | None,
    url: str | None,
    api_key: str | None,
    route: Route,
    thresholds: dict[str, float],
    reports: Path,
    name: str | None,
    kb: str | None = None,
) -> None:
    conversations = load_conversations(dataset)[:limit] if limit else load_conversations(dataset)
    corpora = sorted({c.corpus for c in conversations})
    urls = _corpus_urls(url, corpora)
    targets: dict[str, ConversationTarget] = {
        c: HttpTarget(urls[c], api_key, route, kb) if urls else _local_target(c, kb)
        for c in corpora
    }
    turns = sum(len(c.turns) for c in conversations)
    settings = eval_settings(corpora[0]) if corpora else eval_settings(dataset)
    target = f"{url} ({route})" if url else "library"
    report = new_report(
        name or dataset, dataset, target, turns, json.loads(settings.model_dump_json())
    )
    with _progress() as progress:
        task = progress.add_task(f"turns ({backend or settings.llm.backend})", total=turns)
        scores, details = score_conversations(
            conversations, targets, backend, partial(progress.advance, task)
        )
    report.answers = scores.model_dump()
    report.details = details
    print_answers(report)
    _finish(report, reports, thresholds)


def _corpus_urls(url: str | None, corpora: Sequence[str]) -> dict[str, str]:
    """``--url`` for conversations: one URL when they are of one corpus, else one service per
    corpus as ``seeds=URL,gov=URL`` (a service holds one corpus)."""
    if not url:
        return {}
    if "=" not in url:
        if len(corpora) > 1:
            raise typer.BadParameter(
                "one service holds one corpus: give seeds=URL,gov=URL, or use "
                "conversations-seeds / conversations-gov",
                param_hint="--url",
            )
        return dict.fromkeys(corpora, url)
    urls = dict(part.split("=", 1) for part in url.split(",") if part.strip())
    missing = [c for c in corpora if c not in urls]
    if missing:
        raise typer.BadParameter(f"no URL for {', '.join(missing)}", param_hint="--url")
    return urls


def _finish(report: Report, reports: Path, thresholds: dict[str, float]) -> None:
    """Save the report and fail below a threshold."""
    path = save_report(report, reports)
    out.print(f"report: {path}")
    failed = []
    for key, floor in thresholds.items():
        value = report.metric(key)
        if value is None:
            failed.append(f"{key}: not measured")
        elif value < floor:
            failed.append(f"{key} = {value:.3f} < {floor}")
    if failed:
        for f in failed:
            err.print(f"[red]✗ below threshold:[/red] {f}")
        raise typer.Exit(1)


# `rag eval`: rag/cli.py makes its click command from this app when that command is invoked
# (never at import: `rag --help` does not load the harness).
eval_app = typer.Typer(add_completion=False)
eval_app.command("eval")(eval_command)
