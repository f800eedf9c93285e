"""Knowledge bases: several document collections in one service, each an index of its own.

A knowledge base (KB) is a Chroma collection pair (chunks and manifest, ``rag.store``) with its
own lexical index, facts and catalog. The default KB is ``RAG_COLLECTION`` (``documents``), the
one every call that names no KB uses, in the collections it always had; KB ``a`` lives in
``documents.kb.a`` and ``documents.kb.a.docs`` (installations with another ``RAG_COLLECTION``
sharing the Chroma server do not see each other's KBs). Chroma is the registry: a KB exists when
its collection does, so a KB created or deleted through one replica is seen by every other.

KBs are opened on first use and kept in a least-recently-used set of at most
``RAG_KB__MAX_OPEN`` besides the default one; one past that, or idle for ``RAG_KB__IDLE_S``, is
released (its lexical index and facts freed) and opened again on its next use. Memory is bounded
by that setting, not by the number of KBs. A KB is checked to still be there on every use, so a
KB deleted (or deleted and created again) by another replica is a ``NotFound`` at once, never an
answer from what it held.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from rag.chain import AnswerChain
from rag.config import Settings
from rag.embeddings import Embedder
from rag.errors import BadInput, Conflict, NotFound
from rag.ingest import Ingestor
from rag.lexical import Vocabulary
from rag.retrieval import HybridRetriever, SearchMode
from rag.schemas import DocumentInfo, Fact, Filters, KBInfo, SearchHit
from rag.segments import Segments
from rag.store import ChromaStore, make_client

KB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$")
NAME_RULE = "1-64 letters, digits, '-' or '_', beginning and ending with a letter or digit"


def no_such_kb(name: str) -> NotFound:
    """The one error for a KB that does not exist and for one the caller may not see."""
    return NotFound(f"no knowledge base '{name}'")


def check_name(name: str) -> str:
    if not KB_NAME.fullmatch(name):
        raise BadInput(f"knowledge base name '{name[:80]}' is not valid ({NAME_RULE})")
    return name


class KnowledgeBase:
    """One KB: its store, ingestor, retriever, facts, catalog and answer chain."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        embedder: Embedder,
        store: ChromaStore,
        default_collection: str,
    ) -> None:
        self.name = name
        self.default_collection = default_collection
        self.settings = settings  # with ``collection`` this KB's
        self.embedder = embedder
        self.store = store
        self.used = time.monotonic()

    @cached_property
    def ingestor(self) -> Ingestor:
        s = self.settings
        return Ingestor(self.store, self.embedder, s.chunking, s.ingest_group_chunks, s.limits)

    @property
    def lexical_dir(self) -> Path:
        """Where the KB's pieces (lexical index, facts, catalog: ``rag.segments``) are kept in
        this data dir. Another KB than the default one keys it by its collection's id too: a KB
        deleted and made again under the same name (through any replica) never meets the
        pieces of the old one."""
        folder = self.settings.collection
        if self.settings.collection != self.default_collection:
            folder += f"@{self.store.chunks.id}"
        return self.settings.data_dir / "lexical" / folder

    @cached_property
    def segments(self) -> Segments:
        return Segments(self.lexical_dir, self.store, self.name)

    @property
    def has_segments(self) -> bool:
        """Whether the KB's pieces were opened in this process (a search or answer asked)."""
        return "segments" in self.__dict__

    @cached_property
    def retriever(self) -> HybridRetriever:
        return HybridRetriever(
            store=self.store,
            embedder=self.embedder,
            lexical=self.segments.lexical_index,
            top_k=self.settings.answer.top_k,
            kb=self.name,
        )

    @cached_property
    def chain(self) -> AnswerChain:
        return answer_chain(self.retriever, self.settings, self.facts, self.catalog)

    def facts(self) -> list[Fact]:
        """Every indicator fact of the committed documents (current with the store)."""
        return self.segments.snapshot().facts()

    def documents(self) -> list[DocumentInfo]:
        return sorted(self.store.committed().values(), key=lambda d: d.source)

    def catalog(self) -> list[DocumentInfo]:
        """The committed documents (current with the store; the answer chain scopes a question
        to a year's or a place's documents with it)."""
        return self.segments.snapshot().catalog

    def info(self) -> KBInfo:
        return KBInfo(
            name=self.name, documents=int(self.store.docs.count()), chunks=self.store.count_chunks()
        )


def answer_chain(
    retriever: HybridRetriever | Spanning,
    settings: Settings,
    facts: Callable[[], list[Fact]],
    catalog: Callable[[], list[DocumentInfo]],
) -> AnswerChain:
    return AnswerChain(retriever, settings.answer, settings.llm.timeout_s, facts, catalog)


@dataclass(frozen=True)
class Spanning:
    """Several KBs searched as one: each KB's best hits, merged by score (hybrid scores are
    reciprocal-rank sums, so the KBs' rankings interleave); words weighed over all of them."""

    kbs: tuple[KnowledgeBase, ...]

    def search(
        self,
        query: str,
        top_k: int | None = None,
        mode: SearchMode | None = None,
        filters: Filters | dict[str, Any] | None = None,
    ) -> list[SearchHit]:
        k = top_k or self.kbs[0].retriever.top_k
        hits = [h for kb in self.kbs for h in kb.retriever.search(query, k, mode, filters)]
        return sorted(hits, key=lambda h: -h.score)[:k]

    def lexical_index(self) -> Vocabulary:
        return Vocabulary(tuple(kb.retriever.lexical_index() for kb in self.kbs))

    def facts(self) -> list[Fact]:
        return [f for kb in self.kbs for f in kb.facts()]

    def catalog(self) -> list[DocumentInfo]:
        return [d for kb in self.kbs for d in kb.catalog()]

    @cached_property
    def chain(self) -> AnswerChain:
        return answer_chain(self, self.kbs[0].settings, self.facts, self.catalog)


class KnowledgeBases:
    """The KBs of one installation: opened on first use, the least recently used released."""

    def __init__(
        self,
        settings: Settings,
        embedder: Callable[[], Embedder],
        store: ChromaStore | None = None,
    ) -> None:
        self.settings = settings
        self.default = settings.collection
        self._embedder = embedder
        self._default_store = store
        self._open: OrderedDict[str, KnowledgeBase] = OrderedDict()
        self._lock = threading.RLock()
        self._opening: dict[str, threading.Lock] = {}  # one per KB name asked for
        self.opens = 0  # KBs opened (first use, or again after a release): a churn signal
        self._client: Any = store.client if store is not None else None

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_client(self.settings)
            return self._client

    def collection(self, name: str) -> str:
        return self.default if name == self.default else f"{self.default}.kb.{name}"

    def _settings(self, name: str) -> Settings:
        return self.settings.model_copy(update={"collection": self.collection(name)})

    def _open_kb(self, name: str, create: bool) -> KnowledgeBase:
        with self._lock:  # KBs of different names open at once
            self.opens += 1
        settings = self._settings(name)
        embedder = self._embedder()
        if name == self.default and self._default_store is not None:
            store = self._default_store
        else:
            try:
                store = ChromaStore(
                    settings, embedder, client=self.client, create=create or name == self.default
                )
            except NotFound:
                raise no_such_kb(name) from None
        return KnowledgeBase(name, settings, embedder, store, self.default)

    def get(self, name: str | None = None) -> KnowledgeBase:
        """The KB ``name`` (default: the default KB), opened if need be; ``NotFound`` if there
        is none of that name (a malformed name cannot exist: the same ``NotFound``).

        The check that an open KB is still there runs outside the lock, so requests for open
        KBs do not wait on each other's Chroma calls; a KB is opened under a lock of its own,
        so requests that find it closed at once open it once, not each its own copy."""
        name = name or self.default
        if name != self.default and not KB_NAME.fullmatch(name):
            raise no_such_kb(name)
        kb = self._held(name)
        if kb is None or self._gone(name, kb):
            with self._opening_lock(name):
                kb = self._held(name)
                if kb is None or self._gone(name, kb):
                    kb = self._open_kb(name, create=False)
        with self._lock:
            self._open[name] = kb
            self._open.move_to_end(name)
            kb.used = time.monotonic()
            self._release_beyond(self.settings.kb.max_open)
            return kb

    def _gone(self, name: str, kb: KnowledgeBase) -> bool:
        """Whether a KB held open was deleted (or deleted and made again) since it was opened,
        by this process or another replica (the default KB is never deleted)."""
        return name != self.default and not kb.store.alive()

    def _held(self, name: str) -> KnowledgeBase | None:
        with self._lock:
            self._release_idle()
            return self._open.get(name)

    def _opening_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._opening.setdefault(name, threading.Lock())

    def select(self, names: Sequence[str] | None) -> KnowledgeBase | Spanning:
        """One KB, or several as one (``names``: at least one; repeats count once)."""
        if names is not None and not names:
            raise BadInput("kbs: name at least one knowledge base")
        unique = list(dict.fromkeys(names or [self.default]))
        if len(unique) == 1:
            return self.get(unique[0])
        return Spanning(tuple(self.get(n) for n in unique))

    def _release_beyond(self, limit: int) -> None:
        others = [n for n in self._open if n != self.default]
        for n in others[: max(0, len(others) - limit)]:
            del self._open[n]

    def _release_idle(self) -> None:
        cutoff = time.monotonic() - self.settings.kb.idle_s
        for n in [n for n, kb in self._open.items() if n != self.default and kb.used < cutoff]:
            del self._open[n]

    def open_kbs(self) -> list[KnowledgeBase]:
        """The KBs held open now, least recently used first."""
        with self._lock:
            return list(self._open.values())

    def open_names(self) -> list[str]:
        """The KBs held open now, least recently used first."""
        with self._lock:
            return list(self._open)

    # -- the registry ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every KB, the default first, the others by name."""
        prefix = f"{self.default}.kb."
        listed = self.client.list_collections()
        names = [getattr(c, "name", c) for c in listed]
        others = (n[len(prefix) :] for n in names if n.startswith(prefix))
        return [self.default, *sorted(n for n in others if KB_NAME.fullmatch(n))]

    def infos(self, keep: Callable[[str], bool] | None = None) -> list[KBInfo]:
        """Every KB's counts (or those ``keep`` keeps), read without opening a KB that is not
        open: a listing does not push the KBs in use out."""
        out = []
        for name in self.names():
            if keep is not None and not keep(name):
                continue
            with self._lock:
                kb = self._open.get(name)
            if kb is None or self._gone(name, kb):
                try:
                    kb = self._open_kb(name, create=False)
                except NotFound:  # deleted since it was listed
                    continue
            out.append(kb.info())
        return out

    def create(self, name: str, exist_ok: bool = False) -> KBInfo:
        check_name(name)
        with self._lock:
            if name == self.default or name in self.names():
                if exist_ok:
                    return self.get(name).info()
                raise Conflict(f"knowledge base '{name}' exists already")
            kb = self._open[name] = self._open_kb(name, create=True)
            self._release_beyond(self.settings.kb.max_open)
            return kb.info()

    def delete(self, name: str) -> None:
        """Delete a KB and everything in it (``NotFound`` if there is none; the default KB
        cannot be deleted: ``Conflict``)."""
        if name == self.default:
            raise Conflict(
                f"the default knowledge base '{name}' cannot be deleted (delete its documents)"
            )
        with self._lock:
            kb = self.get(name)
            kb.store.drop()
            self._open.pop(name, None)
        shutil.rmtree(kb.lexical_dir, ignore_errors=True)
