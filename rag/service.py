"""RAGService: the one door the CLI, the API and the harness use. Built from one ``Settings``.

Its parts (embedder, knowledge bases, chat models) are built on first use, or given to the
constructor: a test or a benchmark that already holds a loaded embedder passes it in instead of
loading a second copy. Every call on documents takes ``kb`` (one knowledge base), search and
answers ``kbs`` (one or several); left out, the default KB (``RAG_COLLECTION``) is used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from langchain_core.language_models.chat_models import BaseChatModel

from rag.chain import AnswerChain
from rag.config import LLMBackend, Settings
from rag.conversation import resolve
from rag.conversation import warm_up as warm_up_conversation
from rag.embeddings import Embedder
from rag.errors import LLMError, NotFound, Unsupported
from rag.generation import ms_since
from rag.ingest import Ingestor, Progress
from rag.jobs import Job, JobQueue
from rag.kbs import KnowledgeBase, KnowledgeBases, Spanning
from rag.llm import make_chat_model
from rag.retrieval import HybridRetriever, SearchMode
from rag.schemas import (
    Answer,
    ChatEvent,
    DocumentInfo,
    DocumentText,
    DoneEvent,
    Fact,
    Filters,
    IngestSummary,
    KBInfo,
    PassagesEvent,
    Readiness,
    SearchHit,
    Turn,
)
from rag.store import ChromaStore

FiltersArg = Filters | Mapping[str, object] | None
HistoryArg = Sequence[Turn | Mapping[str, str]] | None


@dataclass(frozen=True)
class Embedded:
    """Texts embedded as given (no e5 prefix added), and the tokens they took."""

    vectors: np.ndarray
    tokens: int


def _filters(filters: FiltersArg) -> Filters | None:
    return Filters.model_validate(filters) if isinstance(filters, Mapping) else filters


def _turns(history: HistoryArg) -> list[Turn]:
    return [t if isinstance(t, Turn) else Turn.model_validate(t) for t in history or ()]


KBsArg = Sequence[str] | None


class RAGService:
    """Owns the embedder, the knowledge bases (each an index) and the chat models."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        store: ChromaStore | None = None,
        chat_models: Mapping[str, BaseChatModel | None] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._embedder = embedder
        self._models: dict[str, BaseChatModel | None] = dict(chat_models or {})
        self._models_lock = threading.Lock()
        self._parts_lock = threading.Lock()
        self.kbs = KnowledgeBases(self.settings, lambda: self.embedder, store)

    # -- parts -----------------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._parts_lock:
                if self._embedder is None:
                    self._embedder = Embedder(self.settings.embedding, self.settings.models_dir)
        return self._embedder

    def kb(self, name: str | None = None) -> KnowledgeBase:
        """A knowledge base (default: the default one); ``NotFound`` if there is none."""
        return self.kbs.get(name)

    # The default KB's parts, as before knowledge bases (benchmarks and tests read them).
    @property
    def store(self) -> ChromaStore:
        return self.kb().store

    @property
    def ingestor(self) -> Ingestor:
        return self.kb().ingestor

    @property
    def retriever(self) -> HybridRetriever:
        return self.kb().retriever

    @property
    def chain(self) -> AnswerChain:
        return self.kb().chain

    def warm_up(self) -> None:
        """Load the embedder and open the index now rather than on the first request
        (raises ``Unavailable`` when a server they need is down)."""
        _ = self.embedder.dimension
        _ = self.store
        warm_up_conversation()

    def readiness(self) -> Readiness:
        """Whether the index and the embedder answer (raises what is down)."""
        return Readiness(chunks=self.store.count_chunks(), embedding_dim=self.embedder.dimension)

    # -- knowledge bases -------------------------------------------------------------------------

    @property
    def default_kb(self) -> str:
        return self.kbs.default

    def list_kbs(self, keep: Callable[[str], bool] | None = None) -> list[KBInfo]:
        """Every KB (or those ``keep`` keeps), the default first, with its counts."""
        return self.kbs.infos(keep)

    def create_kb(self, name: str, exist_ok: bool = False) -> KBInfo:
        """A new, empty KB (``Conflict`` if one of that name exists, unless ``exist_ok``;
        ``BadInput`` for a name that breaks the rules: ``rag.kbs.NAME_RULE``)."""
        return self.kbs.create(name, exist_ok)

    def delete_kb(self, name: str) -> None:
        self.kbs.delete(name)

    # -- documents -------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[Path],
        prune: bool = False,
        progress: Progress | None = None,
        kb: str | None = None,
    ) -> IngestSummary:
        return self.kb(kb).ingestor.ingest_paths(paths, prune=prune, progress=progress)

    def ingest_bytes(
        self,
        files: Iterable[tuple[str, bytes]],
        progress: Progress | None = None,
        kb: str | None = None,
    ) -> IngestSummary:
        return self.kb(kb).ingestor.ingest_bytes(files, progress=progress)

    @cached_property
    def jobs(self) -> JobQueue:
        """The ingest jobs of this data dir (``rag.jobs``)."""
        return JobQueue(
            self.settings.data_dir / "jobs",
            lambda kb, files, progress: self.ingest_bytes(files, progress, kb),
        )

    def submit_ingest(self, files: Sequence[tuple[str, bytes]], kb: str | None = None) -> Job:
        """Ingest ``files`` into ``kb`` in the background; the job says how far it got."""
        return self.jobs.submit(self.kb(kb).name, files)  # an unknown KB: NotFound now

    def job(self, job_id: str) -> Job:
        return self.jobs.get(job_id)

    def resume_jobs(self) -> None:
        """Start the job worker, taking up again the jobs a stopped process left unfinished."""
        self.jobs.start()

    def delete_document(self, doc_id: str, kb: str | None = None) -> bool:
        return self.kb(kb).store.delete_document(doc_id)

    def documents(self, kb: str | None = None) -> list[DocumentInfo]:
        return self.kb(kb).documents()

    def document(self, doc_id: str, kb: str | None = None) -> DocumentText:
        """A committed document with its full original text (``NotFound`` if there is none)."""
        store = self.kb(kb).store
        info = store.committed_document(doc_id)
        text = store.document_text(doc_id) if info is not None else None
        if info is None or text is None:
            raise NotFound(f"no document with doc_id '{doc_id}'")
        return DocumentText(**info.model_dump(), text=text)

    # -- search and embeddings -------------------------------------------------------------------

    def search(
        self,
        query: str,
        top_k: int | None = None,
        mode: SearchMode = "hybrid",
        filters: FiltersArg = None,
        kbs: KBsArg = None,
    ) -> list[SearchHit]:
        """The best passages of the KBs named (default: the default KB), each hit naming its KB."""
        selected = self.kbs.select(kbs)
        retriever = selected if isinstance(selected, Spanning) else selected.retriever
        return retriever.search(
            query, top_k=top_k or self.settings.answer.top_k, mode=mode, filters=_filters(filters)
        )

    @property
    def embedding_model(self) -> str:
        return self.embedder.name

    @property
    def embedding_dim(self) -> int:
        return self.embedder.dimension

    def embed(self, texts: list[str]) -> Embedded:
        """Vectors of ``texts`` as given (a caller of e5 adds its own prefixes)."""
        return Embedded(self.embedder.encode_raw(texts), self.embedder.count_tokens(texts))

    # -- answers ---------------------------------------------------------------------------------

    def facts(self, kb: str | None = None) -> list[Fact]:
        """Every indicator fact of a KB's committed documents (reloaded when the index moves)."""
        return self.kb(kb).facts()

    def catalog(self, kb: str | None = None) -> list[DocumentInfo]:
        """A KB's committed documents, read again only when the index moves."""
        return self.kb(kb).catalog()

    @property
    def default_backend(self) -> LLMBackend:
        return self.settings.llm.backend

    def chat_model(self, backend: LLMBackend | None = None) -> BaseChatModel | None:
        """The model of a backend (None for extractive), built once and shared.

        A backend that cannot be loaded raises ``LLMError`` (``Unavailable``) when it is the
        default, ``Unsupported`` when the caller asked for another than the default."""
        backend = backend or self.default_backend
        with self._models_lock:
            if backend not in self._models:
                llm = self.settings.llm.model_copy(update={"backend": backend})
                try:
                    self._models[backend] = make_chat_model(llm, self.settings.models_dir)
                except LLMError as exc:
                    if backend != self.default_backend:
                        raise Unsupported(
                            f"backend '{backend}' is not available here: {exc}"
                        ) from exc
                    raise LLMError(f"the LLM backend '{backend}' is not available: {exc}") from exc
            return self._models[backend]

    def stream_answer(
        self,
        question: str,
        backend: LLMBackend | None = None,
        top_k: int | None = None,
        filters: FiltersArg = None,
        history: HistoryArg = None,
        kbs: KBsArg = None,
    ) -> Iterator[ChatEvent]:
        """Events: passages (with the standalone question answered), token…, citations, facts
        (comparison answers), done. ``history``: the earlier turns, oldest first; a follow-up is
        answered as the standalone question they make of it (``rag.conversation``). ``kbs``:
        the knowledge bases asked (default: the default KB); each passage and citation names
        its KB."""
        model = self.chat_model(backend or self.default_backend)  # raises now, not mid-stream
        chain = self.kbs.select(kbs).chain  # an unknown KB raises now too
        return self._answer_events(
            chain, question, model, top_k, _filters(filters), _turns(history)
        )

    def _answer_events(
        self,
        chain: AnswerChain,
        question: str,
        model: BaseChatModel | None,
        top_k: int | None,
        filters: Filters | None,
        history: list[Turn],
    ) -> Iterator[ChatEvent]:
        t0 = time.perf_counter()
        resolved = resolve(question, history)
        timings = {"resolve_ms": ms_since(t0)}
        standalone = resolved.standalone
        if resolved.followup and model is not None and self.settings.conversation.model_rewrite:
            standalone = chain.rewrite_followup(resolved, history, model) or standalone
            timings["rewrite_ms"] = ms_since(t0) - timings["resolve_ms"]
        for e in chain.stream(standalone, model, top_k, filters):
            if isinstance(e, PassagesEvent):
                e = e.model_copy(update={"standalone_question": standalone})
            elif isinstance(e, DoneEvent):
                e = DoneEvent(timings={**timings, **e.timings, "total_ms": ms_since(t0)})
            yield e

    def answer(
        self,
        question: str,
        backend: LLMBackend | None = None,
        top_k: int | None = None,
        filters: FiltersArg = None,
        history: HistoryArg = None,
        kbs: KBsArg = None,
    ) -> Answer:
        backend = backend or self.default_backend
        events = self.stream_answer(question, backend, top_k, filters, history, kbs)
        return Answer.from_events(events, backend)
