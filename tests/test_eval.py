"""The harness gates CI: seed dev set, retrieval and the extractive backend, with thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval import datasets
from eval.cli import parse_thresholds
from eval.runner import doc_ranks
from rag import cli

runner = CliRunner()

GATES = [
    "recall@5=0.95",
    "mrr=0.85",
    "accuracy=0.85",
    "refusal_accuracy=1.0",
    "citation_precision=0.95",
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_seed_quality_gate(env: Path) -> None:
    args = [
        "eval",
        "--dataset",
        "seeds",
        "--answers",
        "--backend",
        "extractive",
        "--reports",
        str(env / "reports"),
    ]
    for g in GATES:
        args += ["--min", g]
    res = runner.invoke(cli.app, args)
    assert res.exit_code == 0, res.output
    (report,) = (env / "reports").glob("seeds-*.json")
    data = json.loads(report.read_text())
    modes = {r["mode"]: r for r in data["retrieval"]}
    assert set(modes) == {"hybrid", "dense", "bm25"}
    # fusion must not lose to either side
    assert modes["hybrid"]["recall_at_5"] >= max(
        modes["dense"]["recall_at_5"], modes["bm25"]["recall_at_5"]
    )
    assert data["answers"]["backend"] == "extractive"
    assert data["settings"]["llm"]["backend"] and data["versions"]["chromadb"]

    # a threshold that cannot be met fails the run, naming the figure
    failing = runner.invoke(
        cli.app,
        [
            "eval",
            "--dataset",
            "seeds",
            "--retrievers",
            "bm25",
            "--reports",
            str(env / "reports"),
            "--min",
            "bm25:recall@1=1.01",
        ],
    )
    assert failing.exit_code == 1
    assert "bm25:recall@1" in failing.stderr

    compared = runner.invoke(cli.app, ["eval", "--compare", str(report), str(report)])
    assert compared.exit_code == 0 and "hybrid:recall@5" in compared.output


def test_conversation_gate(env: Path) -> None:
    """The seeds conversations replayed with the extractive backend: follow-ups answered as
    well as opening questions, each turn's standalone question in the report."""
    args = ["eval", "--dataset", "conversations-seeds", "--backend", "extractive"]
    args += ["--reports", str(env / "reports")]
    args += ["--min", "first_turn_accuracy=0.8", "--min", "followup_accuracy=0.8"]
    res = runner.invoke(cli.app, args)
    assert res.exit_code == 0, res.output
    (report,) = (env / "reports").glob("conversations-seeds-*.json")
    data = json.loads(report.read_text())
    assert data["answers"]["backend"] == "extractive"
    follow_ups = [d for d in data["details"] if d["type"] == "followup"]
    assert follow_ups and all(d["standalone_question"] for d in follow_ups)
    assert any(d["standalone_question"] != d["question"] for d in follow_ups)
    # one service holds one corpus: all the conversations cannot go to one URL
    both = runner.invoke(cli.app, ["eval", "--dataset", "conversations", "--url", "http://x"])
    assert both.exit_code == 2 and "seeds=URL,gov=URL" in both.stderr


def test_threshold_syntax_errors_are_clear() -> None:
    assert parse_thresholds(["recall@5=0.9"]) == {"recall@5": 0.9}
    with pytest.raises(Exception, match="NAME=VALUE"):
        parse_thresholds(["recall@5"])


@pytest.mark.parametrize(("name", "folder"), [("gov", "gov_reports"), ("cmrc2018", "cmrc2018")])
def test_a_shared_data_set_that_is_missing_is_an_error(
    name: str, folder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "SHARED_DATA", tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{folder} not found"):
        datasets.load_dataset(name)


def test_news_and_rgb_sets_load_with_their_scoring_fields() -> None:
    """crud: one group of linked documents (any one is a hit), key facts as answer parts, the
    corpus read in place by the subset's ids; rgb: three parts over one pooled index, an
    integration question's gold documents grouped by answer part, rejection never string-checked."""
    crud = datasets.load_dataset("crud")
    assert len(crud.samples) == 100 and crud.kind == "documents"
    assert sum(bool(s.answer_parts) for s in crud.samples) == 97
    assert all(len(s.gold_docs) == 1 and s.gold_docs[0] for s in crud.samples)
    assert crud.corpus_ids is not None
    ids = set(crud.corpus_ids.read_text(encoding="utf-8").split())
    assert {d for s in crud.samples for d in s.gold_docs[0]} <= ids

    rgb = datasets.load_dataset("rgb")
    by_part = {p: [s for s in rgb.samples if s.type == p] for p in datasets.RGB_PARTS}
    assert {p: len(v) for p, v in by_part.items()} == {
        "noise": 40,
        "integration": 20,
        "rejection": 40,
    }
    assert all(s.unanswerable and not s.answer_parts for s in by_part["rejection"])
    assert all(not s.unanswerable and s.answer_parts for s in by_part["noise"])
    assert any(len(s.gold_docs) == 2 for s in by_part["integration"])
    assert len(rgb.extra_corpus) == 2


def test_document_gold_is_ranked_per_part() -> None:
    """crud/rgb retrieval: per answer part, the rank of the first hit from one of its documents
    (sources are paths; gold documents are file stems)."""
    sources = ["rgb/noise/docs/rgb_1_neg0.txt", "rgb_1_pos2.txt", "rgb_int_3_part1_pos0.txt"]
    groups = [["rgb_1_pos0", "rgb_1_pos2"], ["rgb_int_3_part1_pos0"], ["rgb_9_pos0"]]
    assert doc_ranks(sources, groups) == [2, 3, None]
