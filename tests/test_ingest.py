"""Ingest into a real Chroma with the real embedder: idempotent, incremental, atomic per document."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.chunking import chunk_document
from rag.config import Settings
from rag.schemas import IngestSummary
from rag.service import RAGService
from rag.store import ChromaStore, EmbeddingMismatchError
from rag.text import normalize

from .conftest import service_copy
from .test_text import BOILERPLATE

YANJI = "000_941dbc5847c0e16b"


def statuses(summary: IngestSummary) -> dict[str, str]:
    return {d.source: d.status for d in summary.documents}


def test_seeds_are_indexed_with_metadata(seeded: RAGService) -> None:
    docs = {d.doc_id: d for d in seeded.documents()}
    assert len(docs) == 5
    yanji = docs[YANJI]
    assert yanji.source == f"{YANJI}.txt"
    assert yanji.region == "延吉市"
    assert "延吉" in yanji.title
    assert docs["001_69232ea0bb8e6e45"].date == "2015-01-13"


def test_every_chunk_indexes_its_original_document(seeded: RAGService) -> None:
    texts = {d.doc_id: seeded.document(d.doc_id).text for d in seeded.documents()}
    n = 0
    for c in seeded.store.iter_chunks():
        m = c.metadata
        assert texts[m["doc_id"]][m["start"] : m["end"]] == c.text
        n += 1
    assert n == sum(d.chunks for d in seeded.documents())


def test_no_boilerplate_in_the_index(seeded: RAGService) -> None:
    index = normalize("\n".join(c.text for c in seeded.store.iter_chunks()))
    assert [b for b in BOILERPLATE if normalize(b) in index] == []


def test_second_run_changes_nothing(seeded: RAGService, seeds_dir: Path) -> None:
    version = seeded.store.version
    summary = seeded.ingest([seeds_dir])
    assert set(statuses(summary).values()) == {"unchanged"}
    assert not summary.changed
    assert seeded.store.version == version


def test_changed_document_is_replaced_and_removed_one_pruned(
    fresh: RAGService, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(
        "甲市2019年新增就业1万人。\n甲市森林覆盖率40%。", encoding="utf-8"
    )
    (folder / "b.txt").write_text("乙县2020年财政收入5亿元。", encoding="utf-8")
    assert statuses(fresh.ingest([folder])) == {"a.txt": "added", "b.txt": "added"}

    (folder / "a.txt").write_text("甲市2019年新增就业2万人。", encoding="utf-8")
    (folder / "b.txt").unlink()
    summary = fresh.ingest([folder], prune=True)
    assert statuses(summary) == {"a.txt": "replaced", "b.txt": "removed"}
    chunks = list(fresh.store.iter_chunks())
    assert [c.text for c in chunks] == ["甲市2019年新增就业2万人。"]
    # no chunk of the old version is left behind, committed or not
    assert fresh.store.count_chunks() == 1


def test_bad_files_fail_alone_and_lose_nothing(fresh: RAGService, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("丙市空气优良天数313天。", encoding="utf-8")
    assert statuses(fresh.ingest([folder])) == {"good.txt": "added"}
    before = [c.id for c in fresh.store.iter_chunks()]

    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
    (folder / "bad.txt").write_bytes(b"\xff\xfe\xfa\xfb" * 40 + b"\x81")
    (folder / "good.txt").write_bytes(b"\x00\x00broken")  # a good document turns bad
    (folder / "new.md").write_text("# 丁县\n丁县新增就业5000人。", encoding="utf-8")
    unknown = tmp_path / "table.xls"
    unknown.write_bytes(b"x")
    summary = fresh.ingest([folder, tmp_path / "missing", unknown])
    got = {d.source: (d.status, d.message) for d in summary.documents}
    assert got["new.md"][0] == "added"
    assert got["empty.txt"] == ("failed", "empty file")
    assert "binary" in (got["binary.txt"][1] or "")
    assert "undecodable" in (got["bad.txt"][1] or "")
    assert "binary" in (got["good.txt"][1] or "")
    assert "no such file" in (got[str(tmp_path / "missing")][1] or "")
    assert "unsupported file type" in (got["table.xls"][1] or "")
    assert summary.failed
    # the document that turned bad keeps its indexed version
    after = [c.id for c in fresh.store.iter_chunks() if c.metadata["doc_id"] == "good"]
    assert after == before


def test_file_changing_mid_ingest_fails_and_keeps_the_old_version(
    fresh: RAGService, tmp_path: Path
) -> None:
    path = tmp_path / "moving.txt"
    path.write_text("戊市来访下降50%。", encoding="utf-8")
    fresh.ingest([path])

    path.write_text("戊市来访下降60%。", encoding="utf-8")

    class Saboteur:  # progress callback that edits the file while it is being embedded
        def add_total(self, chunks: int) -> None: ...

        def advance(self, chunks: int) -> None:
            path.write_text("戊市来访下降70%,又改了。", encoding="utf-8")

        def finished(self, results: object) -> None: ...

    summary = fresh.ingest([path], progress=Saboteur())
    (result,) = summary.documents
    assert result.status == "failed" and "changed while" in (result.message or "")
    assert [c.text for c in fresh.store.iter_chunks()] == ["戊市来访下降50%。"]


def test_large_ingest_streams_in_committed_groups(seeded: RAGService, tmp_path: Path) -> None:
    """Documents are read lazily and each group is committed before the next is read: memory
    is bounded by the group, and a run interrupted mid-corpus resumes after its last group."""
    fresh = service_copy(seeded, tmp_path / "data", ingest_group_chunks=2)
    read: list[int] = []
    embedded_after: list[int] = []  # how many documents had been read at each embedding batch

    class Interrupted(Exception):
        pass

    def corpus(stop_at: int | None) -> Iterator[tuple[str, bytes]]:
        for i in range(7):
            if i == stop_at:
                raise Interrupted
            read.append(i)
            yield f"town{i}.txt", f"第{i}镇来访同比下降{i + 10}%。".encode()

    class Watch:
        def add_total(self, chunks: int) -> None: ...

        def advance(self, chunks: int) -> None:
            embedded_after.append(len(read))

        def finished(self, results: object) -> None: ...

    with pytest.raises(Interrupted):
        fresh.ingest_bytes(corpus(stop_at=5), progress=Watch())
    assert embedded_after[0] == 2  # the first group went in before the third document was read
    assert sorted(d.doc_id for d in fresh.documents()) == ["town0", "town1", "town2", "town3"]

    read.clear()
    summary = fresh.ingest_bytes(corpus(stop_at=None))
    assert [d.status for d in summary.documents] == ["unchanged"] * 4 + ["added"] * 3
    assert len(fresh.documents()) == 7


def test_interrupted_write_is_invisible_and_collected(fresh: RAGService, tmp_path: Path) -> None:
    """Chunks written without their commit (a crash mid-ingest) never count."""
    path = tmp_path / "x.txt"
    path.write_text("己市信访总量下降10%。", encoding="utf-8")
    fresh.ingest([path])
    store = fresh.store
    committed = [c.id for c in store.iter_chunks()]
    vec = fresh.embedder.encode_passages(["己市信访总量下降99%。"])
    store.chunks.add(
        ids=["x#deadbeef0000#0"],
        embeddings=vec,
        documents=["己市信访总量下降99%。"],
        metadatas=[
            {
                "doc_id": "x",
                "source": "x.txt",
                "title": "x",
                "start": 0,
                "end": 11,
                "chunk_index": 0,
                "content_hash": "deadbeef",
            }
        ],
    )
    assert [c.id for c in store.iter_chunks()] == committed
    assert all("99%" not in h.text for h in fresh.search("己市信访总量", top_k=5))
    assert store.collect_garbage() == 1
    assert store.count_chunks() == len(committed)


def test_opening_with_another_embedding_model_is_an_error(seeded: RAGService) -> None:
    class Other:
        name = "BAAI/bge-m3"
        dimension = 1024

    with pytest.raises(EmbeddingMismatchError, match="multilingual-e5-small"):
        ChromaStore(seeded.settings, Other())


def test_doc_ids_from_sources(tmp_path: Path, fresh: RAGService) -> None:
    folder = tmp_path / "nested"
    (folder / "reports").mkdir(parents=True)
    shutil.copy(
        Path(__file__).parents[1] / "seeds" / f"{YANJI}.txt", folder / "reports" / "y 1.txt"
    )
    summary = fresh.ingest([folder])
    (result,) = summary.documents
    assert (result.source, result.doc_id) == ("reports/y 1.txt", "reports_y_1")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAG_EMBEDDING__BATCH_SIZE", "8")
    monkeypatch.setenv("RAG_CHUNKING__TARGET_CHARS", "300")
    s = Settings()
    assert (s.data_dir, s.embedding.batch_size, s.chunking.target_chars) == (tmp_path, 8, 300)


def _long_text(version: int, sentences: int = 24) -> bytes:
    return (
        "长篇测试报告\n\n".encode()
        + "".join(
            f"第{i}段：长篇市第{version}版报告第{i}项工作进展顺利，受理来信{100 + i}件，"
            f"同比下降了{i % 40 + 1}%，各部门落实责任，推进矛盾纠纷化解，完善工作机制。\n"
            for i in range(sentences)
        ).encode()
    )


def test_a_document_larger_than_a_group_is_written_a_group_at_a_time(
    seeded: RAGService, tmp_path: Path
) -> None:
    """Its vectors are embedded and written a group at a time, uncommitted until the last: a
    reader meanwhile sees the committed version only, and a failure halfway leaves that
    version and no stray chunks."""
    fresh = service_copy(seeded, tmp_path / "data", ingest_group_chunks=2)
    assert fresh.ingest_bytes([("long.txt", _long_text(1))]).count("added") == 1
    (old,) = fresh.documents()
    assert old.chunks > 4  # several groups
    stored = fresh.store.count_chunks()
    batches: list[int] = []
    seen_meanwhile: list[tuple[str, int]] = []

    class Watch:
        def __init__(self, fail_at: int | None = None) -> None:
            self.fail_at = fail_at

        def add_total(self, chunks: int) -> None: ...

        def advance(self, chunks: int) -> None:
            batches.append(chunks)
            (doc,) = fresh.documents()
            seen_meanwhile.append((doc.content_hash, doc.chunks))
            if self.fail_at is not None and len(batches) == self.fail_at:
                raise RuntimeError("embedder failed halfway")

        def finished(self, results: object) -> None: ...

    with pytest.raises(RuntimeError, match="halfway"):
        fresh.ingest_bytes([("long.txt", _long_text(2))], progress=Watch(fail_at=3))
    assert fresh.documents() == [old] and fresh.store.count_chunks() == stored
    assert {h for h, _ in seen_meanwhile} == {old.content_hash}

    batches.clear()
    seen_meanwhile.clear()
    summary = fresh.ingest_bytes([("long.txt", _long_text(2))], progress=Watch())
    assert summary.documents[0].status == "replaced"
    assert max(batches) <= 2 and sum(batches) == summary.documents[0].chunks
    assert {h for h, _ in seen_meanwhile} == {old.content_hash}  # committed only at the end
    (new,) = fresh.documents()
    assert new.content_hash != old.content_hash
    assert fresh.store.count_chunks() == new.chunks  # the old version's chunks are gone
    hits = fresh.search("长篇市第2版报告第7项工作", top_k=1, mode="bm25")
    assert hits and "第2版" in hits[0].text


def test_a_write_in_flight_is_neither_garbage_nor_another_commits_to_remove(
    fresh: RAGService,
) -> None:
    """Two writers of one document (replicas, or concurrent uploads): chunks written but not yet
    committed survive another ingest's garbage collection and another version's commit, so the
    writer's own commit finds them all."""
    from rag.ingest import build_document, content_hash
    from rag.loaders import Loaded

    store = fresh.store

    def version(text: str) -> tuple[Any, list[Any], Any]:
        doc = build_document(
            "y.txt", Loaded(text), content_hash(text.encode(), fresh.settings.chunking)
        )
        chunks = chunk_document(doc.doc_id, doc.text, 400, 600, 1)
        return doc, chunks, fresh.embedder.encode_passages([c.text for c in chunks])

    first, second, third = (version(f"庚市{n}年信访总量下降{n}%。") for n in (2031, 2032, 2033))
    store.write_documents([first])
    store.add_chunks([second])  # writer A, in flight
    assert fresh.ingest_bytes([("other.txt", "辛市来访下降5%。".encode())]).count("added") == 1
    assert store.collect_garbage() == 0  # the ingest above collected nothing either
    store.write_documents([third])  # writer B commits another version meanwhile
    store.commit_documents([(second[0], len(second[1]))])  # writer A's commit
    (doc,) = [d for d in fresh.documents() if d.doc_id == "y"]
    assert doc.content_hash == second[0].content_hash
    assert [c.text for c in store.iter_chunks() if c.metadata["doc_id"] == "y"] == [
        c.text for c in second[1]
    ]
    # each commit removed the version it replaced, so nothing is left over
    assert store.collect_garbage(grace_s=0) == 0
    assert store.count_chunks() == len(second[1]) + 1  # and other.txt's one chunk
