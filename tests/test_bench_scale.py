"""Smoke test of bench/scale.py on a tiny generated corpus (30 short Chinese documents): two steps,
ten queries, the JSON and the plot written, and a second run taking every vector from the cache."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

from bench import scale
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

CITIES = ["延吉", "龙港", "义乌", "昆山", "晋江", "佛山", "温州", "绍兴", "嘉兴", "台州"]
TOPICS = ["城市更新", "信访工作", "乡村振兴", "生态环境", "交通建设", "招商引资"]


def tiny_corpus(path: Path, docs: int = 30) -> None:
    rng = random.Random(7)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i in range(docs):
            city, topic = CITIES[i % len(CITIES)], TOPICS[i % len(TOPICS)]
            sentences = [
                f"{city}市{2015 + j % 8}年{topic}取得新进展，全年完成投资{rng.randint(10, 900)}亿元，"
                f"同比增长{rng.randint(1, 30)}%，新增就业岗位{rng.randint(100, 9000)}个。"
                for j in range(18)
            ]
            text = f"[ 2023-07-{i % 28 + 1:02d} 10：00 ] ，正文：" + "".join(sentences)
            f.write(json.dumps({"id": f"tiny_{i:03d}", "text": text}, ensure_ascii=False) + "\n")


def run_once(corpus: Path, tmp_path: Path, data: str, *extra: str) -> dict[str, Any]:
    path = scale.main(
        [
            "--corpus",
            str(corpus),
            "--steps",
            "20,60",
            "--queries",
            "10",
            "--raw-sample",
            "16",
            "--update-chunks",
            "10",
            "--update-queries",
            "3",
            "--data-dir",
            str(tmp_path / "bench" / data),
            "--results-dir",
            str(tmp_path / "results"),
            *extra,
        ]
    )
    assert path is not None
    assert path.parent == tmp_path / "results"
    assert list(path.parent.glob(f"{path.stem}*.png"))
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def test_scale_smoke(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl.gz"
    tiny_corpus(corpus)
    first = run_once(corpus, tmp_path, "scale")
    assert first["machine"]["cpus"] and first["raw_embedder"]["chunks_per_s"] > 0
    assert [s["step"] for s in first["steps"]] == [20, 60]
    for s in first["steps"]:
        assert s["chunks"] >= s["step"] and s["chunk_records"] == s["chunks"]
        assert s["disk"]["chroma_bytes"] > 0 and s["disk"]["lexical_bytes"] > 0
        assert s["memory"]["peak_rss_mib"] > 0 and s["bm25_build_s"] > 0
        assert s["queries"] == 10 and s["failed_documents"] == 0
        assert set(s["retrievers"]) == {"dense", "bm25", "hybrid"}
        for r in s["retrievers"].values():
            assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["max_ms"]
            assert 0 <= r["recall_at_10"] <= 1
        i = s["ingest"]
        # a fresh cache: every vector embedded here, so the fraction of raw is given
        assert i["embedded"] == s["new_chunks"] > 0 and i["cached"] == 0
        assert not i["vectors_from_cache"] and i["fraction_of_raw"] > 0
        assert i["model_chunks_per_s"] > 0 and i["other_ms_per_chunk"] > 0
    assert first["steps"][1]["chunks"] > first["steps"][0]["chunks"]
    assert first["steps"][1]["retrievers"]["bm25"]["recall_at_10"] >= 0.5
    assert Path(first["settings"]["embedding_cache"]).parent == tmp_path / "bench"
    # the update: more documents, then queries about them
    update = first["update"]
    assert update["chunks"] >= 10 and update["next_query_ms"] > 0
    # (the generated documents are near-duplicates: a clause may find a twin first)
    assert update["new_documents_found"] > 0 and update["queries"] == 4
    # a replica started on the grown index
    cold = first["cold_start"]
    assert cold["first_answer_s"] > 0 and cold["comparison_s"] > 0
    assert cold["recall_at_10"] >= 0.5 and cold["memory"]["rss_mib"] > 0

    # Second run, this checkout as a --root (its own process), on a new index beside the
    # first: the cache file beside it is the same, nothing is embedded again.
    both = run_once(corpus, tmp_path, "scale2", "--root", str(ROOT), "--no-cold-start")
    [second] = both["roots"]
    assert second["root"] == str(ROOT) and second["cold_start"] is None
    assert Path(second["settings"]["data_dir"]).parent == tmp_path / "bench" / "scale2"
    assert second["settings"]["embedding_cache"] == first["settings"]["embedding_cache"]
    assert [s["chunks"] for s in second["steps"]] == [s["chunks"] for s in first["steps"]]
    for s in second["steps"]:
        i = s["ingest"]
        assert i["embedded"] == 0 and i["cached"] == s["new_chunks"]
        assert i["vectors_from_cache"] and i["fraction_of_raw"] is None
        assert i["model_chunks_per_s"] is None and i["embed_seconds"] == 0


def test_fill_cache_then_run_embeds_nothing(tmp_path: Path) -> None:
    """--fill-cache embeds what the steps will ingest, grouped as ingest groups it, and writes no
    index or figures; the run after it takes every vector from the cache."""
    corpus = tmp_path / "docs.jsonl.gz"
    tiny_corpus(corpus)
    data_dir = tmp_path / "bench" / "s"
    fill = ["--corpus", str(corpus), "--steps", "20,40", "--data-dir", str(data_dir)]
    assert scale.main([*fill, "--fill-cache"]) is None
    assert not data_dir.exists()
    result = run_once(corpus, tmp_path, "s", "--steps", "20,40")
    assert [s["step"] for s in result["steps"]] == [20, 40]
    for s in result["steps"]:
        assert s["ingest"]["embedded"] == 0 and s["ingest"]["cached"] == s["new_chunks"] > 0


def test_steps_and_queries() -> None:
    assert scale.parse_steps("1000,10000,100000", 2000) == [1000, 2000]
    assert scale.parse_steps("1000,10000,100000", None) == [1000, 10000, 100000]
    assert scale.parse_steps("60,20", 100000) == [20, 60, 100000]
    q = scale.pick_query(
        "d1", "[ 2023-07-28 ] ，正文：短句。这是一个足够长的分句用来检索文档，其余", 0
    )
    assert q == "这是一个足够长的分句用来检索文档"
    assert scale.pick_query("d1", "x", 0) is None


def test_refuses_a_foreign_data_dir(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(SystemExit):
        scale.reset_data_dir(tmp_path)
    assert (tmp_path / "mine.txt").exists()
