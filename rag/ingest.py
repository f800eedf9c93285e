"""The ingest pipeline: load → clean → chunk → embed → write, idempotent and atomic per document.

A document's content hash (its bytes plus the pipeline's settings) decides: unchanged documents
are skipped, changed ones replaced, and with ``prune`` the ones no longer among the inputs removed.
A document that fails leaves the index as it was; the others still go in.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.chunking import chunk_document
from rag.config import ChunkingSettings, IngestLimits
from rag.embeddings import Embedder
from rag.facts import attach_facts
from rag.lexical import join_tokens, tokenize
from rag.loaders import SUPPORTED_SUFFIXES, Loaded, LoadError, load_bytes
from rag.periods import heading_at, headings
from rag.schemas import Chunk, Document, DocumentInfo, IngestResult, IngestStatus, IngestSummary
from rag.store import ChromaStore
from rag.text import guess_date, guess_region, guess_title, index_text

# Bump when cleaning, chunking or metadata extraction change: every document is then re-indexed.
# 3: indicator facts stored with the chunks; 4: one unit vocabulary; 5: facts with their period
# and kind (rag/periods.py), chunks with their section heading; 6: boilerplate removed by span
# within a line (a one-line article keeps its text); 7: each chunk's BM25 tokens stored with it
PIPELINE_VERSION = 7


class Progress(Protocol):
    """Chunk counts: the total grows as documents are read, a group at a time; and the files'
    results as they are decided (a group's when it is committed)."""

    def add_total(self, chunks: int) -> None: ...
    def advance(self, chunks: int) -> None: ...
    def finished(self, results: Sequence[IngestResult]) -> None: ...


def make_doc_id(source: str) -> str:
    """``source`` without its extension, made URL-safe (``reports/2019.txt`` → ``reports_2019``)."""
    stem = source.rsplit(".", 1)[0] if "." in Path(source).name else source
    return re.sub(r"[^\w.-]+", "_", stem).strip("_.") or "document"


def content_hash(data: bytes, chunking: ChunkingSettings) -> str:
    h = hashlib.sha256(f"v{PIPELINE_VERSION}|{chunking.model_dump_json()}|".encode())
    h.update(data)
    return h.hexdigest()


def build_document(source: str, loaded: Loaded, digest: str) -> Document:
    title = loaded.title or guess_title(loaded.text) or source
    return Document(
        doc_id=make_doc_id(source),
        source=source,
        title=title,
        text=loaded.text,
        date=guess_date(loaded.text, title, source),
        region=guess_region(loaded.text, title),
        content_hash=digest,
    )


@dataclass
class _Input:
    source: str
    data: bytes | None = None
    path: Path | None = None
    stat: tuple[int, int] | None = None  # (size, mtime_ns) when read, to detect changes


@dataclass
class _Prepared:
    doc: Document
    chunks: list[Chunk]
    input: _Input
    status: IngestStatus


def discover(paths: Sequence[Path]) -> tuple[list[_Input], list[IngestResult]]:
    """Files to ingest under ``paths`` (folders recursively), and the paths that cannot be."""
    inputs: list[_Input] = []
    failures: list[IngestResult] = []
    for root in paths:
        if not root.exists():
            failures.append(
                IngestResult(
                    doc_id=None,
                    source=str(root),
                    status="failed",
                    message="no such file or directory",
                )
            )
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root)
                if (
                    p.is_file()
                    and p.suffix.lower() in SUPPORTED_SUFFIXES
                    and not any(part.startswith(".") for part in rel.parts)
                ):
                    inputs.append(_Input(source=rel.as_posix(), path=p))
        else:
            inputs.append(_Input(source=root.name, path=root))
    return inputs, failures


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _changed(item: _Input) -> bool:
    """Whether the file was modified (or removed) since it was read."""
    if item.path is None:
        return False
    try:
        return _stat(item.path) != item.stat
    except OSError:
        return True


# Characters one embedding batch may hold: attention memory grows with the batch times the
# square of its length, so long passages go fewer at a time (32 of 64 characters, 4 of 500).
# On this CPU a batch of 4 long passages embeds as fast per passage as one of 32, and the
# process's peak drops by about half a GB (docs/results.md, Ingest).
BATCH_CHARS = 2048


def encode_sorted(
    embedder: Embedder, texts: list[str], progress: Progress | None = None
) -> np.ndarray:
    """Embed passages in batches of similar length (less padding), longest first, at most
    ``embedder.batch_size`` and about ``BATCH_CHARS`` characters a batch, reporting progress per
    batch; the rows come back in the order of ``texts``."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    i = 0
    while i < len(order):
        longest = max(len(texts[order[i]]), 1)
        n = max(1, min(embedder.batch_size, BATCH_CHARS // longest))
        idx = order[i : i + n]
        out[idx] = embedder.encode_passages([texts[j] for j in idx], batch_size=n)
        if progress:
            progress.advance(len(idx))
        i += n
    return out


class Ingestor:
    def __init__(
        self,
        store: ChromaStore,
        embedder: Embedder,
        chunking: ChunkingSettings,
        group_chunks: int = 1024,
        limits: IngestLimits | None = None,
    ) -> None:
        self.store = store
        self.limits = limits or IngestLimits()
        # chunks read, embedded and committed together: bounds memory, keeps batches and writes
        # large, and is the most an interrupted ingest redoes
        self.group_chunks = group_chunks
        self.embedder = embedder
        self.chunking = chunking

    def ingest_paths(
        self, paths: Sequence[Path], prune: bool = False, progress: Progress | None = None
    ) -> IngestSummary:
        inputs, failures = discover(paths)
        return self._run(inputs, failures, prune, progress)

    def ingest_bytes(
        self, files: Iterable[tuple[str, bytes]], progress: Progress | None = None
    ) -> IngestSummary:
        """Ingest in-memory files (uploads, or a generator over a large corpus):
        ``(source name, content)`` pairs, consumed lazily."""
        return self._run((_Input(source=s, data=d) for s, d in files), [], False, progress)

    # ---------------------------------------------------------------------------------------------

    def _run(
        self,
        inputs: Iterable[_Input],
        failures: list[IngestResult],
        prune: bool,
        progress: Progress | None,
    ) -> IngestSummary:
        """Read, chunk, embed and commit the inputs a group at a time (about ``group_chunks`` chunks):
        memory stays bounded however large the corpus, and each group's documents are committed
        before the next is read, so an interrupted run resumes after the last committed group."""
        t0 = time.perf_counter()
        self.store.collect_garbage()
        committed = self.store.committed()
        results: list[IngestResult] = list(failures)
        seen: dict[str, str] = {}  # doc_id → source
        group: list[_Prepared] = []
        group_chunks = 0

        def decided(done: list[IngestResult]) -> None:
            results.extend(done)
            if progress:
                progress.finished(done)

        for item in inputs:
            result, prep = self._admit(item, committed, seen)
            if result is not None:
                decided([result])
                continue
            assert prep is not None
            if progress:
                progress.add_total(len(prep.chunks))
            if len(prep.chunks) > self.group_chunks:  # larger than a group on its own
                if group:
                    decided(self._embed_and_write(group, progress))
                    group, group_chunks = [], 0
                decided([self._embed_and_write_large(prep, progress)])
                continue
            group.append(prep)
            group_chunks += len(prep.chunks)
            if group_chunks >= self.group_chunks:
                decided(self._embed_and_write(group, progress))
                group, group_chunks = [], 0
        if group:
            decided(self._embed_and_write(group, progress))
        if prune:
            for doc_id, info in committed.items():
                if doc_id not in seen and self.store.delete_document(doc_id):
                    results.append(
                        IngestResult(
                            doc_id=doc_id, source=info.source, status="removed", chunks=info.chunks
                        )
                    )
        return IngestSummary(documents=results, seconds=time.perf_counter() - t0)

    def _admit(
        self, item: _Input, committed: Mapping[str, DocumentInfo], seen: dict[str, str]
    ) -> tuple[IngestResult | None, _Prepared | None]:
        """Either a result already decided (duplicate name, unreadable, unchanged) or the
        document prepared for embedding."""
        doc_id = make_doc_id(item.source)
        if doc_id in seen:
            message = f"same doc_id as {seen[doc_id]}; rename one"
            return IngestResult(
                doc_id=doc_id, source=item.source, status="failed", message=message
            ), None
        seen[doc_id] = item.source
        try:
            prep = self._prepare(item, committed)
        except LoadError as exc:
            return IngestResult(
                doc_id=doc_id, source=item.source, status="failed", message=str(exc)
            ), None
        if prep is None:
            unchanged = committed[doc_id].chunks
            return IngestResult(
                doc_id=doc_id, source=item.source, status="unchanged", chunks=unchanged
            ), None
        return None, prep

    def _prepare(self, item: _Input, committed: Mapping[str, DocumentInfo]) -> _Prepared | None:
        if item.path is not None:
            try:
                item.stat = _stat(item.path)
                item.data = item.path.read_bytes()
            except OSError as exc:
                raise LoadError(f"cannot read ({exc.strerror or exc})") from exc
        data = item.data or b""
        item.data = None  # the document keeps its text; the raw bytes need not stay in memory
        digest = content_hash(data, self.chunking)
        doc_id = make_doc_id(item.source)
        previous = committed.get(doc_id)
        if previous is not None and previous.content_hash == digest:
            return None
        loaded = load_bytes(data, Path(item.source).suffix, self.limits)
        doc = build_document(item.source, loaded, digest)
        chunks = chunk_document(
            doc.doc_id,
            doc.text,
            self.chunking.target_chars,
            self.chunking.max_chars,
            self.chunking.overlap_sentences,
        )
        if not chunks:
            raise LoadError("no content left after removing boilerplate")
        parts = headings(doc.text)
        for c in chunks:  # the period a passage speaks of depends on the part it is in
            section = heading_at(parts, c.start)
            if section:
                c.metadata["section"] = section
            # tokenized once, here: the lexical index is built from these, never re-tokenized
            c.metadata["tokens"] = join_tokens(tokenize(index_text(doc.title, doc.region, c.text)))
        attach_facts(doc, chunks)
        return _Prepared(doc, chunks, item, "replaced" if previous is not None else "added")

    def _embed_and_write_large(self, p: _Prepared, progress: Progress | None) -> IngestResult:
        """A document of more chunks than a group: embedded and written a group at a time,
        uncommitted, then committed at once; memory holds one group's vectors, not the file's.
        On any failure its written chunks are removed and its committed version stays."""
        result = IngestResult(
            doc_id=p.doc.doc_id, source=p.doc.source, status=p.status, chunks=len(p.chunks)
        )
        try:
            for i in range(0, len(p.chunks), self.group_chunks):
                part = p.chunks[i : i + self.group_chunks]
                texts = [index_text(p.doc.title, p.doc.region, c.text) for c in part]
                self.store.add_chunks(
                    [(p.doc, part, encode_sorted(self.embedder, texts, progress))]
                )
            if _changed(p.input):
                self.store.discard(p.doc)
                message = "file changed while it was being ingested; run again"
                return result.model_copy(update={"status": "failed", "message": message})
            self.store.commit_documents([(p.doc, len(p.chunks))])
        except OSError as exc:
            self.store.discard(p.doc)
            return result.model_copy(update={"status": "failed", "message": str(exc)})
        except BaseException:
            self.store.discard(p.doc)
            raise
        return result

    def _embed_and_write(
        self, group: list[_Prepared], progress: Progress | None
    ) -> list[IngestResult]:
        texts = [index_text(p.doc.title, p.doc.region, c.text) for p in group for c in p.chunks]
        vectors = encode_sorted(self.embedder, texts, progress)
        results = []
        ready = []
        pos = 0
        for p in group:
            vecs = vectors[pos : pos + len(p.chunks)]
            pos += len(p.chunks)
            result = IngestResult(
                doc_id=p.doc.doc_id, source=p.doc.source, status=p.status, chunks=len(p.chunks)
            )
            if _changed(p.input):
                message = "file changed while it was being ingested; run again"
                result = result.model_copy(update={"status": "failed", "message": message})
            else:
                ready.append((p.doc, p.chunks, vecs))
            results.append(result)
        try:
            self.store.write_documents(ready)
        except OSError as exc:
            failed = {"status": "failed", "message": str(exc)}
            return [r if r.status == "failed" else r.model_copy(update=failed) for r in results]
        return results
