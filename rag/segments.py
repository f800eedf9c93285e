"""What a knowledge base has committed, derived from the store and kept on disk in segments: the
lexical index, the facts and the catalog of documents, grown with the corpus instead of rebuilt.

A *piece* is a file written once: a lexical segment (``rag.lexical.Segment``) of some documents'
chunks, their manifest records (the catalog) and their facts. The chunks' tokens were computed at
ingest and stored with them, so a piece is built without tokenizing anything, and pieces are
merged from their postings. Beside the pieces, ``state.json`` names those of the current state,
the store version it stands for, and the documents of each piece that no longer count (deleted,
or replaced by a newer version in a later piece).

When the store's version moves (an ingest or a delete, here or through another replica), the next
reader catches up from the manifest alone: the ids of the committed documents (a listing without
metadata) show what was added or deleted, the records committed since the last catch-up what was
replaced; only those documents' chunks are read, into a new piece, and deletions are marks. The
state is written back, so the other processes using the data dir (workers, replicas) open the
same pieces memory-mapped and take over the state instead of building their own. Pieces are
merged in the background when there are many, or when many of a piece's documents are gone; a
reader never waits for a merge, it keeps the state it has until the merged one is published.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rag.facts import facts_from_chunks
from rag.lexical import Arrays, LexicalIndex, Pack, Part, Segment, tokenize
from rag.schemas import DocumentInfo, Fact, year_of
from rag.store import ChromaStore, Committed, StoredChunk
from rag.text import index_text

STATE = "state.json"
# Records committed this long before the newest one seen are read again at each catch-up: a
# commit stamped a moment before another may become visible after it, and replicas' clocks differ.
MARGIN_NS = 60 * 10**9
# A large catch-up (a first start on an existing index) is written as pieces of about this many
# chunks: memory holds one piece's token counts at a time (about 100 MB); merges join them.
PIECE_CHUNKS = 32768
MAX_PIECES = 8  # past this many, the smaller pieces are merged
DEAD_SHARE = 0.3  # a piece with this share of its rows gone is rewritten
# Unlisted piece folders younger than this are kept: another process may be about to list them.
ORPHAN_GRACE_S = 600.0


@dataclass(frozen=True)
class Entry:
    """A document in a piece: its manifest record and its rows there."""

    info: DocumentInfo
    first: int
    rows: int


class Piece:
    """A piece file, opened: its lexical segment, documents and facts, all in one ``Pack`` (one
    memory map, shared by the processes that open it; a piece merged away elsewhere and
    deleted stays readable while open)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pack = Pack(path)
        self.segment = Segment(self.pack)
        self.entries = [
            Entry(DocumentInfo.model_validate(d["info"]), d["first"], d["rows"])
            for d in json.loads(self.pack.bytes("docs"))
        ]
        self._facts: list[Fact] | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.path.name

    def fact_records(self) -> list[dict[str, Any]]:
        """The facts as stored (for a merge)."""
        return list(json.loads(self.pack.bytes("facts")))

    def facts(self, kb: str | None) -> list[Fact]:
        """The facts of every document of the piece, gone or not (read on first use), each
        completed from its document's record (whose strings they share)."""
        with self._lock:
            if self._facts is None:
                docs = {e.info.doc_id: e.info for e in self.entries}
                self._facts = [
                    Fact.model_validate({**f, **_about(docs[f["doc_id"]]), "kb": kb})
                    for f in self.fact_records()
                ]
            return self._facts

    def dead_rows(self, gone: frozenset[str]) -> np.ndarray | None:
        """The mask of the rows of documents ``gone`` (None when none is)."""
        if not gone:
            return None
        mask = np.zeros(self.segment.size, dtype=bool)
        for e in self.entries:
            if e.info.doc_id in gone:
                mask[e.first : e.first + e.rows] = True
        return mask

    # -- writing ---------------------------------------------------------------------------------

    @classmethod
    def write(
        cls, path: Path, docs: Iterable[tuple[DocumentInfo, list[StoredChunk]]]
    ) -> Piece | None:
        """A piece of these documents and their chunks, read one document at a time (None when
        there is none)."""
        entries: list[dict[str, Any]] = []
        facts: list[dict[str, Any]] = []

        def rows() -> Iterator[tuple[str, list[str]]]:
            first = 0
            for info, chunks in docs:
                entries.append({"info": info.model_dump(), "first": first, "rows": len(chunks)})
                first += len(chunks)
                facts.extend(_fact_records(chunks))
                for c in chunks:
                    yield c.id, _tokens(info, c)

        lexical = Segment.arrays(rows())
        return cls._save(path, lexical, entries, facts) if entries else None

    @classmethod
    def merge(cls, path: Path, parts: Sequence[tuple[Piece, frozenset[str]]]) -> Piece:
        """One piece of the documents of ``parts`` that are not ``gone``, from their postings."""
        entries: list[dict[str, Any]] = []
        facts: list[dict[str, Any]] = []
        row = 0
        for piece, gone in parts:
            for e in piece.entries:
                if e.info.doc_id not in gone:
                    entries.append({"info": e.info.model_dump(), "first": row, "rows": e.rows})
                    row += e.rows
            facts += [f for f in piece.fact_records() if f["doc_id"] not in gone]
        lexical = Segment.merged([(p.segment, _keep(p, gone)) for p, gone in parts])
        return cls._save(path, lexical, entries, facts)

    @classmethod
    def _save(
        cls, path: Path, lexical: Arrays, entries: list[dict[str, Any]], facts: list[dict[str, Any]]
    ) -> Piece:
        arrays = lexical.arrays | {"docs": _json_bytes(entries), "facts": _json_bytes(facts)}
        Pack.write(path, arrays, {"lexical": lexical.meta})
        return cls(path)


def _keep(piece: Piece, gone: frozenset[str]) -> np.ndarray | None:
    dead = piece.dead_rows(gone)
    return None if dead is None else ~dead


def _json_bytes(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, ensure_ascii=False).encode(), dtype=np.uint8)


def _tokens(info: DocumentInfo, chunk: StoredChunk) -> list[str]:
    """A chunk's tokens as stored at ingest; tokenized here only for an index written before
    tokens were stored (re-ingesting it stores them)."""
    stored = chunk.metadata.get("tokens")
    if isinstance(stored, str):
        return stored.split()
    return tokenize(index_text(info.title, info.region, chunk.text))


# What a fact says of its document: kept once, in the document's record
_DOCUMENT_FIELDS = {"source", "title", "region", "year", "kb"}


def _about(info: DocumentInfo) -> dict[str, Any]:
    return {
        "source": info.source,
        "title": info.title,
        "region": info.region,
        "year": year_of(info.date),
    }


def _fact_records(chunks: list[StoredChunk]) -> list[dict[str, Any]]:
    """The facts of a document's chunks, each once (overlapping chunks carry a sentence twice),
    without what the document's record says."""
    seen: set[tuple[str, int, str, float]] = set()
    out = []
    for f in facts_from_chunks(chunks):
        if f.key not in seen:
            seen.add(f.key)
            out.append(
                f.model_dump(exclude=_DOCUMENT_FIELDS, exclude_none=True, exclude_defaults=True)
            )
    return out


# -- the state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """The pieces that make up the committed documents at a store version."""

    generation: int = 0  # counts the states written: a writer publishes only over the one it read
    version: int = -1  # the store's index_version it stands for (-1: none yet)
    watermark: int = 0  # the newest commit stamp seen
    pieces: tuple[str, ...] = ()
    gone: Mapping[str, frozenset[str]] = field(default_factory=dict)  # piece → doc ids

    def to_json(self) -> str:
        return json.dumps(
            {
                "generation": self.generation,
                "version": self.version,
                "watermark": self.watermark,
                "pieces": list(self.pieces),
                "gone": {k: sorted(v) for k, v in self.gone.items() if v},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> State:
        d = json.loads(text)
        return cls(
            int(d["generation"]),
            int(d["version"]),
            int(d["watermark"]),
            tuple(d["pieces"]),
            {k: frozenset(v) for k, v in d.get("gone", {}).items()},
        )


class Snapshot:
    """The committed documents at one store version: lexical index, catalog and facts."""

    def __init__(self, state: State, pieces: Sequence[Piece], kb: str | None) -> None:
        self.state = state
        self.pieces = tuple(pieces)
        self.kb = kb

    @property
    def version(self) -> int:
        return self.state.version

    def gone(self, piece: Piece) -> frozenset[str]:
        return self.state.gone.get(piece.name, frozenset())

    @cached_property
    def where(self) -> dict[str, tuple[Piece, DocumentInfo]]:
        """The committed documents by id, each with the piece it is in."""
        out: dict[str, tuple[Piece, DocumentInfo]] = {}
        for p in self.pieces:
            gone = self.gone(p)
            out |= {e.info.doc_id: (p, e.info) for e in p.entries if e.info.doc_id not in gone}
        return out

    def holds(self, cid: str) -> bool:
        """Whether a chunk id (``doc_id#hash12#n``) is of a committed version."""
        doc_id, digest, n = cid.rsplit("#", 2)
        found = self.where.get(doc_id)
        return (
            found is not None and found[1].content_hash[:12] == digest and int(n) < found[1].chunks
        )

    @cached_property
    def lexical(self) -> LexicalIndex:
        parts = tuple(Part(p.segment, p.dead_rows(self.gone(p))) for p in self.pieces)
        return LexicalIndex(parts, self.version, self.holds)

    @cached_property
    def catalog(self) -> list[DocumentInfo]:
        """The committed documents, by source."""
        return sorted((info for _, info in self.where.values()), key=lambda d: d.source)

    @cached_property
    def _facts(self) -> list[Fact]:
        return [f for p in self.pieces for f in p.facts(self.kb) if f.doc_id not in self.gone(p)]

    def facts(self) -> list[Fact]:
        """Every indicator fact of the committed documents (each piece's read on first use)."""
        return self._facts


# -- keeping it current --------------------------------------------------------------------------


class Segments:
    """One knowledge base's pieces in one process: the current snapshot, caught up with the store
    when its version moves, written back for the other processes of the data dir, and merged in
    the background."""

    def __init__(self, folder: Path, store: ChromaStore, kb: str | None = None) -> None:
        self.folder = folder
        self.store = store
        self.kb = kb
        self._snap: Snapshot | None = None
        self._open: dict[str, Piece] = {}
        self._lock = threading.Lock()  # catch-ups and publishing, one at a time
        self._merging = threading.Lock()
        self.stats = {"catch_ups": 0, "chunks_read": 0, "merges": 0, "adopted": 0}

    # -- reading ---------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The committed documents at the store's current version: the snapshot held, or one
        caught up with what the store committed since (the new documents' chunks only)."""
        version = self.store.version
        snap = self._snap
        if snap is not None and snap.version == version:
            return snap
        with self._lock:
            snap = self._snap
            if snap is None or snap.version != version:
                snap = self._snap = self._catch_up(version)
                self._merge_if_due(snap)
        return snap

    def lexical_index(self) -> LexicalIndex:
        return self.snapshot().lexical

    @property
    def pieces(self) -> int:
        """The pieces of the state held (0 before the first read)."""
        snap = self._snap
        return len(snap.pieces) if snap is not None else 0

    def _snapshot_of(self, state: State) -> Snapshot:
        for name in state.pieces:
            if name not in self._open:
                self._open[name] = Piece(self.folder / name)
        pieces = [self._open[name] for name in state.pieces]
        for name in set(self._open) - set(state.pieces):  # still mapped while in use
            del self._open[name]
        return Snapshot(state, pieces, self.kb)

    def _read_state(self) -> State | None:
        try:
            return State.from_json((self.folder / STATE).read_text())
        except FileNotFoundError:
            return None

    def _adopt(self) -> Snapshot:
        """The snapshot of the state on disk (another process's, or ours), or an empty one."""
        for _ in range(3):  # a piece listed a moment ago may have been merged away since
            state = self._read_state() or _legacy_removed(self.folder)
            current = self._snap
            if current is not None and current.state.generation == state.generation:
                return current
            try:
                snap = self._snapshot_of(state)
            except FileNotFoundError:
                continue
            if state.pieces:
                self.stats["adopted"] += 1
            return snap
        return self._snapshot_of(State())  # rebuilt from the store

    def _catch_up(self, version: int) -> Snapshot:
        """A snapshot at ``version``: the state on disk, plus what the store committed since."""
        snap = None
        for _ in range(3):
            base = self._adopt()
            if base.version == version:
                return base
            state, new = self._delta(base, version)
            snap = self._snapshot_of(state)
            if self._publish(base.state.generation, state):
                return snap
            for piece in new:  # another process wrote its state meanwhile: start from that
                piece.path.unlink(missing_ok=True)
        assert snap is not None
        return snap  # kept in this process; the next catch-up starts from the disk again

    def _delta(self, base: Snapshot, version: int) -> tuple[State, list[Piece]]:
        """The state that adds to ``base`` what the store committed since: the documents added
        or replaced in new pieces, the ones deleted or replaced marked gone."""
        store = self.store
        self.stats["catch_ups"] += 1
        committed = store.committed_ids()
        recent = store.committed_since(max(0, base.state.watermark - MARGIN_NS))
        where = base.where
        changed: dict[str, Committed] = {
            d: c
            for d, c in recent.items()
            if d in committed
            and (d not in where or where[d][1].content_hash != c.info.content_hash)
        }
        unknown = sorted(d for d in committed if d not in where and d not in changed)
        changed |= store.committed_records(unknown)
        gone = {name: set(docs) for name, docs in base.state.gone.items()}
        for d in [d for d in where if d not in committed] + [d for d in changed if d in where]:
            gone.setdefault(where[d][0].name, set()).add(d)
        new = self._write_pieces([changed[d].info for d in sorted(changed)])  # a stable order
        stamps = [c.ns for c in changed.values()] + [c.ns for c in recent.values()]
        state = State(
            generation=base.state.generation + 1,
            version=version,
            watermark=max([base.state.watermark, *stamps]),
            pieces=base.state.pieces + tuple(p.name for p in new),
            gone={k: frozenset(v) for k, v in gone.items() if v},
        )
        return state, new

    def _write_pieces(self, docs: list[DocumentInfo]) -> list[Piece]:
        """New pieces of these documents' chunks, read from the store a page at a time, about
        ``PIECE_CHUNKS`` chunks each."""
        found = self.store.chunks_of(docs)
        pieces: list[Piece] = []
        while True:
            piece = Piece.write(self.folder / _new_name(), self._counted(found, PIECE_CHUNKS))
            if piece is None:
                return pieces
            self._open[piece.name] = piece
            pieces.append(piece)

    def _counted(
        self, found: Iterator[tuple[DocumentInfo, list[StoredChunk]]], limit: int
    ) -> Iterator[tuple[DocumentInfo, list[StoredChunk]]]:
        """Documents from ``found`` until they hold ``limit`` chunks (the last one whole)."""
        size = 0
        for info, chunks in found:
            self.stats["chunks_read"] += len(chunks)
            yield info, chunks
            size += len(chunks)
            if size >= limit:
                return

    def _publish(self, generation: int, state: State) -> bool:
        """Write ``state`` if the one on disk is still the one of ``generation``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.folder / "state.lock"):
            current = self._read_state()
            if (current.generation if current else 0) != generation:
                return False
            tmp = self.folder / f".state.{secrets.token_hex(4)}"
            tmp.write_text(state.to_json())
            os.replace(tmp, self.folder / STATE)
        return True

    # -- merging ---------------------------------------------------------------------------------

    def _merge_if_due(self, snap: Snapshot) -> None:
        if _to_merge(snap) and not self._merging.locked():
            threading.Thread(target=self._merge_all, name="rag-merge", daemon=True).start()

    def _merge_all(self) -> None:
        while self.merge():  # one merge can make the next one due
            pass

    def merge(self, everything: bool = False) -> bool:
        """Merge the pieces the policy picks (``_to_merge``), or all of them into one, and
        publish the result. False when nothing was due, a merge was under way, or the state
        moved meanwhile in a way that made this one moot. Readers go on with the snapshot they
        have while it runs."""
        if not self._merging.acquire(blocking=False):
            return False
        try:
            snap = self._snap
            if snap is None:
                return False
            picked = list(snap.pieces) if everything else _to_merge(snap)
            if not picked or (len(picked) == 1 and not snap.gone(picked[0])):
                return False
            merged = Piece.merge(self.folder / _new_name(), [(p, snap.gone(p)) for p in picked])
            if any(p._facts is not None for p in picked):  # read by the readers: ready for them
                merged.facts(self.kb)
            names = [p.name for p in picked]
            with self._lock:
                current = self._snap
                if current is None or not set(names) <= set(current.state.pieces):
                    merged.path.unlink(missing_ok=True)
                    return False
                # documents gone since the merge began are gone from the merged piece too
                since: set[str] = set()
                for p in picked:
                    since |= current.state.gone.get(p.name, frozenset()) - snap.gone(p)
                at = current.state.pieces.index(names[0])
                kept = [n for n in current.state.pieces if n not in names]
                gone = {k: v for k, v in current.state.gone.items() if k not in names}
                if since:
                    gone[merged.name] = frozenset(since)
                state = replace(
                    current.state,
                    generation=current.state.generation + 1,
                    pieces=(*kept[:at], merged.name, *kept[at:]),
                    gone=gone,
                )
                self._open[merged.name] = merged
                if not self._publish(current.state.generation, state):
                    merged.path.unlink(missing_ok=True)
                    return False
                self._snap = self._snapshot_of(state)
                self.stats["merges"] += 1
            self._remove_orphans(state, names)
            return True
        finally:
            self._merging.release()

    def _remove_orphans(self, state: State, merged_away: Sequence[str]) -> None:
        """Delete the pieces a merge replaced, and any other piece no state lists that is old
        enough not to be a catch-up's about to be published (one that lost the race)."""
        cutoff = time.time() - ORPHAN_GRACE_S
        for path in self.folder.glob("piece-*"):
            if path.name not in state.pieces and (
                path.name in merged_away or path.stat().st_mtime < cutoff
            ):
                path.unlink(missing_ok=True)


def _legacy_removed(folder: Path) -> State:
    """An empty state, after removing what an earlier version kept in the folder (one bm25s
    index rebuilt whenever the store moved)."""
    shutil.rmtree(folder / "bm25", ignore_errors=True)
    (folder / "meta.json").unlink(missing_ok=True)
    return State()


def _to_merge(snap: Snapshot) -> list[Piece]:
    """The pieces to merge: every piece but the largest when there are more than
    ``MAX_PIECES`` (all of them once the others hold a quarter of its rows), or a piece whose
    share of gone rows reached ``DEAD_SHARE``."""
    live = {p.name: p.segment.size for p in snap.pieces}
    dead = dict.fromkeys(live, 0)
    for p in snap.pieces:
        gone = snap.gone(p)
        if gone:
            dead[p.name] = sum(e.rows for e in p.entries if e.info.doc_id in gone)
            live[p.name] -= dead[p.name]
    if len(snap.pieces) > MAX_PIECES:
        largest = max(snap.pieces, key=lambda p: live[p.name])
        others = sum(live.values()) - live[largest.name]
        if others * 4 >= live[largest.name]:
            return list(snap.pieces)
        return [p for p in snap.pieces if p is not largest]
    return [p for p in snap.pieces if dead[p.name] and dead[p.name] >= DEAD_SHARE * p.segment.size]


def _new_name() -> str:
    return f"piece-{time.time_ns():x}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (and threads: each opens its own file)."""
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
