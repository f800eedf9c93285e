from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rag import cli
from rag.config import Settings
from rag.service import RAGService

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded: RAGService) -> Path:
    """The CLI on its own data dir, reusing the already loaded embedder (load time only)."""
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))

    def service() -> RAGService:
        return RAGService(Settings(), embedder=seeded.embedder)

    monkeypatch.setattr(cli, "_service", service)
    return tmp_path / "data"


def test_ingest_search_docs_roundtrip(data_dir: Path, seeds_dir: Path) -> None:
    first = runner.invoke(cli.app, ["ingest", str(seeds_dir)])
    assert first.exit_code == 0, first.output
    assert "5 added" in first.output

    again = runner.invoke(cli.app, ["ingest", str(seeds_dir)])
    assert again.exit_code == 0
    assert "Nothing changed: 5 documents unchanged." in again.output

    res = runner.invoke(cli.app, ["search", "延吉市集体访人次下降了多少", "--json", "-k", "3"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)["hits"]
    assert len(hits) == 3
    assert {"text", "doc_id", "title", "source", "start", "end", "score"} <= set(hits[0])
    assert "同比分別下降7%和52%" in hits[0]["text"]

    human = runner.invoke(cli.app, ["search", "延吉市集體訪", "-k", "1"])
    assert "000_941dbc5847c0e16b" in human.output and "同比分別下降7%和52%" in human.output

    docs = json.loads(runner.invoke(cli.app, ["docs", "--json"]).output)["documents"]
    assert len(docs) == 5 and all(d["chunks"] > 0 for d in docs)


def test_kb_commands_and_kb_options(data_dir: Path, tmp_path: Path) -> None:
    doc = tmp_path / "qinghe.txt"
    doc.write_text("青禾市2031年信访总量同比下降了37.5%。", encoding="utf-8")
    missing = runner.invoke(cli.app, ["ingest", "--kb", "team", str(doc)])
    assert missing.exit_code == 1 and "no knowledge base 'team'" in missing.output
    assert "rag kb create team" in missing.output

    assert runner.invoke(cli.app, ["kb", "create", "team"]).exit_code == 0
    again = runner.invoke(cli.app, ["kb", "create", "team"])
    assert again.exit_code == 1 and "exists already" in again.output
    bad = runner.invoke(cli.app, ["kb", "create", "a/b"])
    assert bad.exit_code == 1 and "not valid" in bad.output
    assert runner.invoke(cli.app, ["ingest", "--kb", "team", str(doc)]).exit_code == 0

    kbs = json.loads(runner.invoke(cli.app, ["kb", "list", "--json"]).output)["kbs"]
    assert kbs == [
        {"name": "documents", "documents": 0, "chunks": 0},
        {"name": "team", "documents": 1, "chunks": 1},
    ]
    docs = json.loads(runner.invoke(cli.app, ["docs", "--kb", "team", "--json"]).output)
    assert [d["doc_id"] for d in docs["documents"]] == ["qinghe"]
    hits = json.loads(
        runner.invoke(cli.app, ["search", "青禾市信访", "--kb", "team", "--json"]).output
    )["hits"]
    assert hits[0]["kb"] == "team"
    asked = runner.invoke(
        cli.app,
        [
            "query",
            "青禾市信访总量下降了多少?",
            "--kb",
            "team",
            "--kb",
            "documents",
            "--backend",
            "extractive",
            "--json",
        ],
    )
    assert asked.exit_code == 0, asked.output
    assert json.loads(asked.output)["citations"][0]["kb"] == "team"

    assert runner.invoke(cli.app, ["kb", "delete", "team"], input="n\n").exit_code == 1
    assert runner.invoke(cli.app, ["kb", "delete", "team", "--yes"]).exit_code == 0
    listed = json.loads(runner.invoke(cli.app, ["kb", "list", "--json"]).output)["kbs"]
    assert [k["name"] for k in listed] == ["documents"]
    default = runner.invoke(cli.app, ["kb", "delete", "documents", "--yes"])
    assert default.exit_code == 1 and "cannot be deleted" in default.output


def test_failures_are_one_line_per_file_and_exit_nonzero(data_dir: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("庚市2018年新增就业1000人。", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    res = runner.invoke(cli.app, ["ingest", str(good), str(empty), str(tmp_path / "nope.txt")])
    assert res.exit_code == 1
    lines = [line for line in res.stderr.splitlines() if line.startswith("✗")]
    assert lines == [
        f"✗ {tmp_path / 'nope.txt'}: no such file or directory",
        "✗ empty.txt: empty file",
    ]
    assert "1 added" in res.stdout and "2 failed" in res.stdout


def test_search_rejects_unknown_mode(data_dir: Path) -> None:
    res = runner.invoke(cli.app, ["search", "x", "--mode", "fuzzy"])
    assert res.exit_code == 2
    assert "hybrid, dense or bm25" in res.output


def test_models_lists_the_bundled_embedder(seeded: RAGService) -> None:
    res = runner.invoke(cli.app, ["models", "--json"])
    assert res.exit_code == 0
    names = [m["name"] for m in json.loads(res.output) if m["complete"]]
    assert any(n.startswith("multilingual-e5-small") for n in names)


@pytest.mark.parametrize(
    "command", [[], ["ingest"], ["search"], ["docs"], ["models"], ["query"], ["chat"]]
)
def test_help_explains_each_command(command: list[str]) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "rag.cli", *command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Usage" in res.stdout and len(res.stdout.splitlines()) > 5
    if command == ["chat"]:
        assert all(c in res.stdout for c in ("/reset", "/quit", "--backend", "--top-k"))


def test_search_top_k_defaults_to_the_settings(
    seeded: RAGService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without -k, `rag search` leaves top_k to the service: RAG_ANSWER__TOP_K (5)."""
    asked: list[int | None] = []

    class Service:
        def search(self, query: str, top_k: int | None = None, **_: object) -> list[object]:
            asked.append(top_k)
            return []

    monkeypatch.setattr(cli, "_service", Service)
    assert runner.invoke(cli.app, ["search", "信访", "--json"]).exit_code == 0
    assert runner.invoke(cli.app, ["search", "信访", "--json", "-k", "3"]).exit_code == 0
    assert asked == [None, 3]
    assert len(seeded.search("信访")) == seeded.settings.answer.top_k == 5


def test_eval_is_listed_and_its_help_is_the_harness_own() -> None:
    """`rag eval` is loaded lazily (tests/test_layering.py): `rag --help` lists it with the
    harness's summary, and `rag eval --help` is the harness command's help, every option in it."""
    import inspect

    from eval.cli import eval_app, eval_command

    summary = inspect.getdoc(eval_command).split("\n\n")[0]  # type: ignore[union-attr]
    assert inspect.getdoc(cli.eval_placeholder) == summary
    listing = runner.invoke(cli.app, ["--help"])
    assert listing.exit_code == 0 and "eval" in listing.output
    assert summary.split("(")[0].strip() in listing.output

    command = typer.main.get_command(eval_app)
    res = runner.invoke(cli.app, ["eval", "--help"], prog_name="rag")
    assert res.exit_code == 0, res.output
    alone = runner.invoke(eval_app, ["--help"], prog_name="rag eval")
    assert res.output == alone.output
    for param in command.params:
        for opt in param.opts:
            assert opt in res.output, opt


def _chat_service(seeded: RAGService, **conversation: object) -> RAGService:
    """A service on the seeded index (read only), with its own conversation settings and no
    OpenAI-compatible server configured."""
    settings = seeded.settings.model_copy(
        update={
            "conversation": seeded.settings.conversation.model_copy(update=conversation),
            "llm": seeded.settings.llm.model_copy(update={"base_url": None}),
        }
    )
    return RAGService(settings, embedder=seeded.embedder, store=seeded.store)


CHAT_SESSION = "延吉市城市低保标准调整到了多少?\n农村呢?\n/reset\n农村呢?\n/quit\n"
RESET_LINE = "Conversation reset: the next question starts afresh."


def test_chat_resolves_follow_ups_and_forgets_them_on_reset(
    seeded: RAGService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_service", lambda: _chat_service(seeded))
    res = runner.invoke(cli.app, ["chat", "--backend", "extractive"], input=CHAT_SESSION)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "/quit" in lines[0] and "/reset" in lines[0]  # the greeting says how
    assert lines.count(RESET_LINE) == 1
    reset = lines.index(RESET_LINE)
    arrows = [i for i, line in enumerate(lines) if line.startswith("→ ")]
    assert len(arrows) == 1 and arrows[0] < reset  # the first question stands alone
    (second,) = arrows
    assert "550" in "\n".join(lines[1:second])
    assert "延吉市农村低保标准" in lines[second]
    assert "4400" in "\n".join(lines[second + 1 : reset])
    assert any(line.startswith("[1] ✓") for line in lines[second + 1 : reset])  # citations
    after = lines[reset + 1 :]
    assert after and not any("延吉" in line for line in after if line.startswith("→"))


def test_chat_keeps_only_max_turns_and_survives_errors(
    seeded: RAGService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With RAG_CONVERSATION__MAX_TURNS=0 no earlier turn is kept: the follow-up is answered as
    typed. A backend that cannot run is reported, and the loop goes on to the next line."""
    monkeypatch.setattr(cli, "_service", lambda: _chat_service(seeded, max_turns=0))
    res = runner.invoke(
        cli.app,
        ["chat", "--backend", "extractive"],
        input="延吉市城市低保标准调整到了多少?\n农村呢?\n",
    )
    assert res.exit_code == 0, res.output
    assert "550" in res.stdout and not any(line.startswith("→") for line in res.stdout.splitlines())

    monkeypatch.setattr(cli, "_service", lambda: _chat_service(seeded))
    res = runner.invoke(
        cli.app, ["chat", "--backend", "openai"], input="延吉市城市低保标准调整到了多少?\n\n/help\n"
    )
    assert res.exit_code == 0, res.output
    assert "error: backend 'openai' is not available here" in res.stdout
    assert "/exit" in res.stdout  # /help, after the error


def test_chat_rejects_unknown_backend() -> None:
    res = runner.invoke(cli.app, ["chat", "--backend", "gpt"])
    assert res.exit_code == 2
    assert "local, openai or extractive" in res.output
