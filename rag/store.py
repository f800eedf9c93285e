"""Chroma, the source of truth: chunks with vectors, and a manifest of committed documents.

Two collections per index:
- ``<name>``: one record per chunk (original text, vector, metadata), ids ``doc_id#hash#i``;
- ``<name>.docs``: one record per document (its full original text and metadata). A document's
  chunks count only when their ``content_hash`` is the one committed here. Writing the manifest
  record is the commit point of an ingest, so a document is replaced atomically: readers never see
  half of a new version, and chunks of an interrupted write are garbage, collected later.

The chunk collection's metadata records the embedding model and dimension (opening the index with
another model is an error, not silent garbage) and an ``index_version`` bumped on every change,
which derived indexes (BM25) use to know when they are stale.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from rag.config import Settings
from rag.errors import EmbeddingMismatchError as EmbeddingMismatchError  # re-exported
from rag.errors import NotFound
from rag.errors import StoreError as StoreError
from rag.errors import StoreUnavailable as StoreUnavailable
from rag.schemas import Chunk, Document, DocumentInfo, Filters

# Uncommitted chunks younger than this are a write in flight, not garbage: longer than any one
# document takes to embed and write (RAG_LIMITS__MAX_CHARS bounds it: minutes on 2 cores).
GARBAGE_GRACE_S = 3600.0
# One vector for manifest records (Chroma stores a vector with every record).
_UNIT = [1.0]
_PAGE = 1000


class EmbedderIdentity(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...


class _Guarded:
    """Proxies a Chroma HTTP client or collection: a lost connection becomes ``StoreUnavailable``
    (a 503 in the API) instead of a bare transport error; collections it returns are guarded too."""

    def __init__(self, target: Any, url: str) -> None:
        self._target = target
        self._url = url

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            import httpx
            from chromadb.api.models.Collection import Collection

            try:
                out = attr(*args, **kwargs)
            except httpx.TransportError as exc:
                raise StoreUnavailable(
                    f"Chroma server at {self._url} is unreachable: {exc}"
                ) from exc
            return _Guarded(out, self._url) if isinstance(out, Collection) else out

        return call


@dataclass(frozen=True)
class StoredChunk:
    id: str
    text: str
    metadata: dict[str, Any]


def chunk_id(doc_id: str, content_hash: str, index: int) -> str:
    return f"{doc_id}#{content_hash[:12]}#{index}"


def doc_id_of(cid: str) -> str:
    """The document of a chunk id made by ``chunk_id`` (a doc_id may itself hold ``#``)."""
    return cid.rsplit("#", 2)[0]


def make_client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        from urllib.parse import urlparse

        url = urlparse(settings.chroma_url)
        try:
            client = chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except ValueError as exc:  # raised by its heartbeat when no server answers
            raise StoreUnavailable(
                f"Chroma server at {settings.chroma_url} is unreachable: {exc}"
            ) from exc
        return _Guarded(client, settings.chroma_url)
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


class ChromaStore:
    def __init__(
        self,
        settings: Settings,
        embedder: EmbedderIdentity,
        *,
        client: Any = None,
        create: bool = True,
    ) -> None:
        """Open (or, with ``create``, create) the index ``settings.collection``;
        ``embedder.dimension`` is read only to create it. ``client``: an open Chroma client to
        share (default: a new one from the settings). Without ``create``, an index that does not
        exist is ``NotFound``.

        The create is Chroma's get-or-create, one atomic call: replicas that start together
        against a fresh server all get the one collection (the metadata given is used only by
        the call that creates it; the model check below reads what is stored)."""
        from chromadb.errors import NotFoundError

        self.client = client if client is not None else make_client(settings)
        self.name = settings.collection
        try:
            self.chunks = self.client.get_collection(self.name, embedding_function=None)
        except NotFoundError:
            if not create:
                raise NotFound(f"no collection '{self.name}'") from None
            self.chunks = self.client.get_or_create_collection(
                self.name,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={
                    "embedding_model": embedder.name,
                    "embedding_dim": embedder.dimension,
                    # informational: the backends of one model share an index
                    "embedding_backend": str(getattr(embedder, "backend", "unknown")),
                    "index_version": 0,
                },
                embedding_function=None,
            )
        self.docs = self.client.get_or_create_collection(
            f"{self.name}.docs", embedding_function=None
        )
        meta = self.chunks.metadata or {}
        self.dimension = int(meta.get("embedding_dim", 0))
        if meta.get("embedding_model") != embedder.name:
            raise EmbeddingMismatchError(
                f"collection '{self.name}' was built with embedding model "
                f"'{meta.get('embedding_model')}' (dim {meta.get('embedding_dim')}), but the "
                f"settings ask for '{embedder.name}'; use that model, another RAG_COLLECTION, "
                "or another RAG_DATA_DIR"
            )

    # -- the collections -------------------------------------------------------------------------

    def alive(self) -> bool:
        """Whether the collection opened is still there (not deleted, nor deleted and created
        again under the same name, by this process or another sharing the Chroma server)."""
        from chromadb.errors import NotFoundError

        try:
            return bool(
                self.client.get_collection(self.name, embedding_function=None).id == self.chunks.id
            )
        except NotFoundError:
            return False

    def drop(self) -> None:
        """Delete both collections: the index and everything in it."""
        from chromadb.errors import NotFoundError

        for name in (f"{self.name}.docs", self.name):  # the manifest first: nothing is committed
            with contextlib.suppress(NotFoundError):
                self.client.delete_collection(name)

    # -- version ---------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        meta = self.client.get_collection(self.name, embedding_function=None).metadata or {}
        return int(meta.get("index_version", 0))

    def _bump_version(self) -> None:
        meta = dict(self.chunks.metadata or {})
        # Not just +1: two replicas writing at once would both set the same number, and a reader
        # that saw it between their commits would never notice the second one.
        meta["index_version"] = self.version + 1 + secrets.randbelow(1 << 20)
        self.chunks.modify(metadata=meta)

    # -- documents -------------------------------------------------------------------------------

    def committed(self) -> dict[str, DocumentInfo]:
        """Committed documents by doc_id."""
        out: dict[str, DocumentInfo] = {}
        for offset in range(0, max(self.docs.count(), 1), _PAGE):
            got = self.docs.get(include=["metadatas"], limit=_PAGE, offset=offset)
            for doc_id, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                out[doc_id] = DocumentInfo(doc_id=doc_id, **dict(meta))
        return out

    def committed_document(self, doc_id: str) -> DocumentInfo | None:
        """One committed document's record, reading only its manifest entry."""
        got = self.docs.get(ids=[doc_id], include=["metadatas"])
        metas = got["metadatas"] or []
        return DocumentInfo(doc_id=doc_id, **dict(metas[0])) if metas else None

    # What derived indexes read to follow the manifest without reading all of it: the ids of
    # the committed documents (a listing without metadata), and the records committed since a
    # time or named by id.

    def committed_ids(self) -> set[str]:
        """The ids of every committed document."""
        return set(self.docs.get(include=[])["ids"])

    def committed_since(self, ns: int) -> dict[str, Committed]:
        """The records committed at ``ns`` (``time.time_ns()`` of the writer) or later; records
        written before commits were stamped are not among them (``committed_records`` reads
        those by id)."""
        # ids first, then the records a page at a time: Chroma fetches the metadata of every
        # match of a ``where`` in one SQL statement, past SQLite's limit on variables (32,766)
        # after a large ingest
        ids = self.docs.get(where={"committed_ns": {"$gte": ns}}, include=[])["ids"]
        return self.committed_records(ids)

    def committed_records(self, doc_ids: Sequence[str]) -> dict[str, Committed]:
        """The committed records of these documents (those that are committed)."""
        out: dict[str, Committed] = {}
        for i in range(0, len(doc_ids), _PAGE):
            out |= _records(self.docs.get(ids=list(doc_ids[i : i + _PAGE]), include=["metadatas"]))
        return out

    def chunks_of(
        self, docs: Sequence[DocumentInfo]
    ) -> Iterator[tuple[DocumentInfo, list[StoredChunk]]]:
        """The chunks of committed versions, in order, read a page at a time; a version some of
        whose chunks are no longer stored (replaced or deleted since its record was read) is
        left out."""
        page: list[DocumentInfo] = []
        for doc in [*docs, None]:
            if doc is not None:
                page.append(doc)
                if sum(d.chunks for d in page) < _PAGE:
                    continue
            ids = [chunk_id(d.doc_id, d.content_hash, i) for d in page for i in range(d.chunks)]
            got = self.get_chunks(ids)
            for d in page:
                mine = [chunk_id(d.doc_id, d.content_hash, i) for i in range(d.chunks)]
                if all(cid in got for cid in mine):
                    yield d, [got[cid] for cid in mine]
            page = []

    def document_text(self, doc_id: str) -> str | None:
        got = self.docs.get(ids=[doc_id], include=["documents"])
        docs = got["documents"] or []
        return docs[0] if docs else None

    def write_documents(
        self, items: Sequence[tuple[Document, Sequence[Chunk], np.ndarray]]
    ) -> None:
        """Add the chunks of several documents, then commit them all; on failure the index is as
        it was. A few large writes, not one per document: each write to the engine costs time
        that grows with the collection, so per-document writes made a large ingest quadratic."""
        if not items:
            return
        try:
            self.add_chunks(items)
            self.commit_documents([(doc, len(chunks)) for doc, chunks, _ in items])
        except Exception:
            for doc, _, _ in items:
                self.discard(doc)
            raise

    def add_chunks(self, items: Sequence[tuple[Document, Sequence[Chunk], np.ndarray]]) -> None:
        """Write chunks without committing them: they count once ``commit_documents`` writes
        their documents' manifest records. A large document's chunks may come in several calls
        (the ingest embeds and writes it a group at a time)."""
        ids: list[str] = []
        vectors: list[np.ndarray] = []
        texts: list[str] = []
        metas: list[dict[str, Any]] = []
        for doc, chunks, vecs in items:
            if len(chunks) != len(vecs):
                raise StoreError(f"{doc.source}: {len(chunks)} chunks but {len(vecs)} vectors")
            if len(vecs) and vecs.shape[1] != self.dimension:
                raise EmbeddingMismatchError(
                    f"collection '{self.name}' holds {self.dimension}-d vectors, got "
                    f"{vecs.shape[1]}-d"
                )
            ids += [chunk_id(doc.doc_id, doc.content_hash, c.index) for c in chunks]
            vectors.append(vecs)
            texts += [c.text for c in chunks]
            metas += [self._chunk_meta(doc, c) for c in chunks]
        if not ids:
            return
        matrix = np.concatenate(vectors)
        step = self._max_batch
        for i in range(0, len(ids), step):
            self.chunks.upsert(
                ids=ids[i : i + step],
                embeddings=matrix[i : i + step],
                documents=texts[i : i + step],
                metadatas=metas[i : i + step],
            )

    def commit_documents(self, docs: Sequence[tuple[Document, int]]) -> None:
        """The commit point: the documents' manifest records (with their chunk counts), after
        which their chunks count and their earlier versions' chunks are removed."""
        if not docs:
            return
        previous = self._committed_hashes_of([d.doc_id for d, _ in docs])
        step = self._max_batch
        # When it was committed: readers of the manifest ask for what changed since (``since``).
        stamp = time.time_ns()
        for i in range(0, len(docs), step):
            part = docs[i : i + step]
            self.docs.upsert(
                ids=[doc.doc_id for doc, _ in part],
                embeddings=[_UNIT] * len(part),
                documents=[doc.text for doc, _ in part],
                metadatas=[
                    _clean_meta(_info(doc, n).model_dump(exclude={"doc_id"}))
                    | {"committed_ns": stamp}
                    for doc, n in part
                ],
            )
        # The versions these replaced, and only those: a newer version another writer has in
        # flight for the same document is not this commit's to remove.
        replaced = [
            {"$and": [{"doc_id": d.doc_id}, {"content_hash": previous[d.doc_id]}]}
            for d, _ in docs
            if previous.get(d.doc_id) not in (None, d.content_hash)
        ]
        for i in range(0, len(replaced), _PAGE):
            clauses = replaced[i : i + _PAGE]
            self.chunks.delete(where=clauses[0] if len(clauses) == 1 else {"$or": clauses})
        self._bump_version()

    def discard(self, doc: Document) -> None:
        """Remove the chunks written for this version of ``doc``, unless it is the committed
        one (another writer's version of the same document is left alone)."""
        if self._committed_hash(doc.doc_id) != doc.content_hash:
            self.chunks.delete(
                where={"$and": [{"doc_id": doc.doc_id}, {"content_hash": doc.content_hash}]}
            )

    @cached_property
    def _max_batch(self) -> int:
        return min(int(self.client.get_max_batch_size()), 4096)

    def delete_document(self, doc_id: str) -> bool:
        if not self.docs.get(ids=[doc_id], include=[])["ids"]:
            return False
        self.docs.delete(ids=[doc_id])  # uncommit first: its chunks stop counting at once
        self._delete_chunks(doc_id)
        self._bump_version()
        return True

    def collect_garbage(self, grace_s: float = GARBAGE_GRACE_S) -> int:
        """Delete chunks that belong to no committed version (left by an interrupted ingest)
        and were written more than ``grace_s`` ago: a version another writer (this process or
        another replica) is writing now is not garbage yet, however long its document takes."""
        committed = self._committed_hashes()
        cutoff = time.time() - grace_s
        stale = [
            c.id
            for c in self.iter_chunks(committed_only=False)
            if committed.get(c.metadata["doc_id"]) != c.metadata["content_hash"]
            and float(c.metadata.get("written_at", 0)) < cutoff
        ]
        for i in range(0, len(stale), _PAGE):
            self.chunks.delete(ids=stale[i : i + _PAGE])
        if stale:
            self._bump_version()
        return len(stale)

    def _committed_hashes_of(self, doc_ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(doc_ids), _PAGE):
            got = self.docs.get(ids=doc_ids[i : i + _PAGE], include=["metadatas"])
            for doc_id, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                out[doc_id] = str(meta["content_hash"])
        return out

    def _committed_hash(self, doc_id: str) -> str | None:
        return self._committed_hashes_of([doc_id]).get(doc_id)

    def _delete_chunks(self, doc_id: str) -> None:
        self.chunks.delete(where={"doc_id": doc_id})

    @staticmethod
    def _chunk_meta(doc: Document, c: Chunk) -> dict[str, Any]:
        return _clean_meta(
            {
                **c.metadata,
                "doc_id": doc.doc_id,
                "source": doc.source,
                "title": doc.title,
                "date": doc.date,
                "year": doc.year,
                "region": doc.region,
                "start": c.start,
                "end": c.end,
                "chunk_index": c.index,
                "content_hash": doc.content_hash,
                "written_at": int(time.time()),  # garbage only long after (collect_garbage)
            }
        )

    # -- chunks ----------------------------------------------------------------------------------

    def count_chunks(self) -> int:
        return int(self.chunks.count())

    def _committed_hashes(self) -> dict[str, str]:
        """Committed content hash by doc_id."""
        return {d: i.content_hash for d, i in self.committed().items()}

    def iter_chunks(self, committed_only: bool = True) -> Iterator[StoredChunk]:
        committed = self._committed_hashes()
        total = self.chunks.count()
        for offset in range(0, total, _PAGE):
            got = self.chunks.get(include=["documents", "metadatas"], limit=_PAGE, offset=offset)
            for cid, text, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
            ):
                if committed_only and committed.get(str(meta["doc_id"])) != meta["content_hash"]:
                    continue
                yield StoredChunk(cid, text, dict(meta))

    # The query path reads as little as it can: Chroma keeps metadata as one row per key, and
    # reading the documents and metadata of a query's candidates (about 60) cost more than the
    # nearest-neighbour search itself. Candidates go by id; text and metadata are read only for
    # the hits returned (or for the metadata a filter needs).

    def nearest(
        self, vector: np.ndarray, k: int, filters: Filters | None = None
    ) -> list[tuple[str, float]]:
        """Ids of the ``k`` nearest chunks, committed or not, with cosine similarity (higher is
        closer)."""
        res = self.chunks.query(
            query_embeddings=[vector],
            n_results=k,
            where=where_clause(filters) if filters else None,
            include=["distances"],
        )
        return [
            (cid, 1.0 - float(dist))
            for cid, dist in zip(res["ids"][0], (res["distances"] or [[]])[0], strict=True)
        ]

    def get_chunks(self, ids: list[str]) -> dict[str, StoredChunk]:
        """Chunks by id, committed or not (an id no longer stored is left out)."""
        if not ids:
            return {}
        got = self.chunks.get(ids=ids, include=["documents", "metadatas"])
        return {
            cid: StoredChunk(cid, text, dict(meta))
            for cid, text, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
            )
        }

    def get_metadata(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Chunk metadata by id, without the text."""
        if not ids:
            return {}
        got = self.chunks.get(ids=ids, include=["metadatas"])
        return {
            cid: dict(meta) for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=True)
        }


def where_clause(filters: Filters) -> dict[str, Any] | None:
    """The filters as a Chroma ``where`` clause (``Filters.matches`` is the same test in Python)."""
    clauses: list[dict[str, Any]] = []
    if isinstance(filters.doc_id, str):
        clauses.append({"doc_id": filters.doc_id})
    elif filters.doc_id is not None:
        clauses.append({"doc_id": {"$in": list(filters.doc_id)}})
    if filters.region is not None:
        clauses.append({"region": filters.region})
    if filters.year_from is not None:
        clauses.append({"year": {"$gte": filters.year_from}})
    if filters.year_to is not None:
        clauses.append({"year": {"$lte": filters.year_to}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


@dataclass(frozen=True)
class Committed:
    """A manifest record: the document's info and when it was committed (0: before stamps)."""

    info: DocumentInfo
    ns: int


def _records(got: Any) -> dict[str, Committed]:
    return {
        doc_id: Committed(
            DocumentInfo(doc_id=doc_id, **dict(meta)), int(meta.get("committed_ns", 0))
        )
        for doc_id, meta in zip(got["ids"], got["metadatas"] or [], strict=True)
    }


def _info(doc: Document, chunks: int) -> DocumentInfo:
    return DocumentInfo(
        doc_id=doc.doc_id,
        source=doc.source,
        title=doc.title,
        date=doc.date,
        region=doc.region,
        chunks=chunks,
        chars=len(doc.text),
        content_hash=doc.content_hash,
    )


def _clean_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Chroma metadata values cannot be None."""
    return {k: v for k, v in meta.items() if v is not None}
