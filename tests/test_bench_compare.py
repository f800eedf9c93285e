"""Smoke test of bench/compare.py: the naive baseline on two seed questions (extractive path, no
LLM), its cached index, and the figures computed from checkpoint rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import compare
from eval import datasets
from eval import metrics as M
from eval.datasets import load_dataset
from rag.service import RAGService


def test_baseline_two_seed_questions(seeded: RAGService, tmp_path: Path) -> None:
    ds = load_dataset("seeds")
    samples = [s for s in ds.samples if s.id in ("dev-02", "dev-07")]
    base = compare.Baseline(ds, seeded.embedder, tmp_path / "baseline")
    assert base.chunks == len(compare.baseline_chunks(ds)) > 0
    assert max(len(c) for _, c in compare.baseline_chunks(ds)) <= compare.CHUNK_SIZE
    for s in samples:
        hits = base.search(s.question, 5)
        assert len(hits) == 5
        texts = [text for _, text in hits]
        assert M.all_found_within(texts, [e.quote for e in s.evidence], 5)
        # each chunk with the file it came from
        assert {e.doc for e in s.evidence} <= {source for source, _ in hits}
        a = base.answer(s.question, None, "extractive")
        assert a.answer == texts[0] and not a.refused and a.timings["total_ms"] > 0
    # built once: a second instance reuses the index
    again = compare.Baseline(ds, seeded.embedder, tmp_path / "baseline")
    assert again.collection.count() == base.chunks


def test_summaries_and_ratios() -> None:
    rows: list[dict[str, Any]] = [
        {"r1": True, "r5": True, "ms": 10.0},
        {"r1": False, "r5": True, "ms": 30.0},
        {"r1": None, "r5": None, "ms": 20.0},  # unanswerable: timed, not scored
    ]
    r = compare.summarize(rows, "retrieval")
    assert (r["n"], r["recall_at_1"], r["recall_at_5"], r["retrieval_p50_ms"]) == (
        2,
        0.5,
        1.0,
        20.0,
    )
    answers: list[dict[str, Any]] = [
        {
            "type": "noise",
            "unanswerable": False,
            "correct": True,
            "refused": False,
            "fallback": False,
            "verified": [True, False],
            "timings": {"total_ms": 100.0, "prompt_tokens": 50.0},
        },
        {
            "type": "rejection",
            "unanswerable": True,
            "correct": True,
            "refused": True,
            "fallback": False,
            "verified": [],
            "timings": {"total_ms": 300.0},
        },
        {  # nothing to check its answer against: timed, not scored
            "type": "noise",
            "unanswerable": False,
            "correct": None,
            "refused": False,
            "fallback": False,
            "verified": [],
            "timings": {"total_ms": 100.0},
        },
    ]
    a = compare.summarize(answers, "answer")
    assert a["accuracy"] == 1.0 and a["refusal_accuracy"] == 1.0
    assert a["by_type"] == {"noise": 1.0, "rejection": 1.0}
    assert a["citation_precision"] == 0.5 and a["prompt_tokens_p50"] == 50.0
    by_p = {"baseline": dict(a), "ours": dict(a, accuracy=0.5, answer_p50_ms=50.0)}
    compare.add_ratios(by_p)
    assert by_p["ours"]["accuracy_diff"] == -0.5
    assert by_p["ours"]["answer_p50_ratio"] == 0.5


def test_run_all_four_pipelines_and_resume(
    seeded: RAGService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole run on two seed questions (extractive): every pipeline gets both levels; a
    second run finds everything in the checkpoint and adds nothing."""
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    checkpoint = tmp_path / "checkpoint.jsonl"

    def run() -> dict[str, Any]:
        return compare.run(
            seeded.embedder,
            ["seeds"],
            list(compare.PIPELINES),
            2,
            "extractive",
            checkpoint,
            tmp_path / "data",
        )["seeds"]

    results = run()
    assert set(results) == set(compare.PIPELINES)
    for p in compare.PIPELINES:
        assert results[p]["retrieval"]["n"] == 2
        assert results[p]["answers"]["n"] == 2
        assert results[p]["retrieval"]["retrieval_p50_ms"] > 0
    assert results["ours"]["retrieval"]["recall_at_5"] == 1.0
    rows = checkpoint.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 2 * 2 * len(compare.PIPELINES)  # 2 levels x 2 questions x 4 pipelines
    assert run() == results
    assert checkpoint.read_text(encoding="utf-8").splitlines() == rows


def test_a_missing_data_set_stops_the_run_before_any_work(
    seeded: RAGService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ../shared/data, gov used to be indexed as an empty corpus and every question
    checkpointed as a miss; now the run stops, naming the folder, and writes no row."""
    monkeypatch.setattr(datasets, "SHARED_DATA", tmp_path / "nowhere")
    checkpoint = tmp_path / "checkpoint.jsonl"
    with pytest.raises(SystemExit, match="gov_reports not found"):
        compare.run(
            seeded.embedder,
            ["seeds", "gov"],
            list(compare.PIPELINES),
            2,
            "extractive",
            checkpoint,
            tmp_path / "data",
        )
    assert not checkpoint.exists()
