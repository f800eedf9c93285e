"""RAGClient and AsyncRAGClient: the HTTP API as typed Python calls, mirroring each other.

    from api.client import RAGClient
    with RAGClient("http://localhost:8000", api_key=None) as rag:
        answer = rag.chat("哪个城市信访量下降最多?")
        print(answer.answer, [c.quote for c in answer.citations])
        history = [{"role": "user", "content": "哪个城市信访量下降最多?"},
                   {"role": "assistant", "content": answer.answer}]
        rag.chat("那个城市的低保标准是多少?", history=history).standalone_question
        rag.create_kb("team-a"); rag.upload("report.txt", kb="team-a")
        rag.chat("…", kbs=["team-a", "documents"]).citations[0].kb

Both return the library's pydantic types and raise ``RAGError`` subclasses carrying the server's
error body (``RateLimitError`` for a 429, with the ``Retry-After`` seconds; ``NotFoundError`` for
a knowledge base that does not exist or that the key may not read, ``ForbiddenError`` for one it
may read but not change). Calls on documents take ``kb`` (default: the server's default KB),
search and chat ``kbs`` (one or several). Tests inject an httpx
transport instead of patching. Options left out (``top_k``, ``backend`` …) are left to the
server's settings.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from api.schemas import DocumentList, JobList
from rag.jobs import Job
from rag.schemas import (
    Answer,
    ChatEvent,
    DocumentInfo,
    DocumentText,
    Filters,
    IngestResult,
    KBInfo,
    SearchHit,
    Turn,
)

# Earlier turns of a conversation, oldest first: what ``chat(history=...)`` takes.
History = Sequence[Turn | Mapping[str, str]]

__all__ = [
    "AsyncRAGClient",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DocumentList",
    "ForbiddenError",
    "History",
    "Job",
    "JobFailedError",
    "KBInfo",
    "NotFoundError",
    "RAGClient",
    "RAGError",
    "RateLimitError",
    "Turn",
    "UnavailableError",
    "ValidationError",
]

_EVENT = TypeAdapter(ChatEvent)


class RAGError(Exception):
    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(f"{status} {type_}: {message}")
        self.status, self.type, self.message = status, type_, message


class BadRequestError(RAGError): ...


class AuthenticationError(RAGError): ...


class ForbiddenError(RAGError): ...


class NotFoundError(RAGError): ...


class ConflictError(RAGError): ...


class ValidationError(RAGError): ...


class RateLimitError(RAGError):
    """A 429: past the rate limit (``RAG_RATE_LIMIT``) or too many chats at once
    (``RAG_MAX_CONCURRENT``). ``retry_after``: the seconds the server asks to wait, if it said."""

    def __init__(
        self, status: int, type_: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(status, type_, message)
        self.retry_after = retry_after


class UnavailableError(RAGError): ...


class JobFailedError(Exception):
    """An ingest job that failed as a whole (``job.error`` says why; per-file failures are
    results in ``job.documents``, not this)."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"ingest job {job.job} failed: {job.error}")
        self.job = job


def _upload_results(response: httpx.Response) -> list[IngestResult] | Job:
    """A small upload's results (200), or the job ingesting a large one (202)."""
    data = response.json()
    if response.status_code == 202:
        return Job.model_validate(data)
    return [IngestResult.model_validate(d) for d in data["documents"]]


def _ended(job: Job) -> Job:
    if job.status == "failed":
        raise JobFailedError(job)
    return job


_BY_STATUS: dict[int, type[RAGError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    415: BadRequestError,
    422: ValidationError,
    503: UnavailableError,
}


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):  # absent, or an HTTP date
        return None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        err = response.json()["error"]
        type_, message = str(err["type"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        type_, message = "error", response.text[:500]
    if response.status_code == 429:
        raise RateLimitError(429, type_, message, _retry_after(response))
    raise _BY_STATUS.get(response.status_code, RAGError)(response.status_code, type_, message)


def _docs_url(kb: str | None) -> str:
    return "/v1/documents" if kb is None else f"/v1/kbs/{quote(kb, safe='')}/documents"


def _doc_url(doc_id: str, kb: str | None) -> str:
    return f"{_docs_url(kb)}/{quote(doc_id, safe='')}"


def _kb_url(kb: str) -> str:
    return f"/v1/kbs/{quote(kb, safe='')}"


def _body(first: tuple[str, str], **options: Any) -> dict[str, Any]:
    """A request body: the required field, then the options that were given."""
    body: dict[str, Any] = {first[0]: first[1]}
    for key, value in options.items():
        if value is not None:
            if isinstance(value, Filters):
                value = value.model_dump(exclude_none=True)
            body[key] = list(value) if isinstance(value, tuple) else value
    return body


def _chat_body(
    question: str,
    top_k: int | None,
    filters: Filters | None,
    backend: str | None,
    history: History | None,
    kbs: Sequence[str] | None,
    stream: bool | None = None,
) -> dict[str, Any]:
    return _body(
        ("question", question),
        top_k=top_k,
        filters=filters,
        backend=backend,
        stream=stream,
        history=_history(history),
        kbs=None if kbs is None else list(kbs),
    )


def _history(history: History | None) -> list[dict[str, str]] | None:
    """Earlier turns as the API takes them, from ``Turn`` objects or ``{"role", "content"}``
    dicts (oldest first)."""
    if not history:
        return None
    return [t.model_dump() if isinstance(t, Turn) else dict(t) for t in history]


def _files(paths: Sequence[str | Path]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("file", (Path(p).name, Path(p).read_bytes())) for p in paths]


class _SSE:
    """Server-sent events, line by line: ``feed`` returns an event when one is complete."""

    def __init__(self) -> None:
        self.event, self.data = "", []  # type: tuple[str, list[str]]

    def feed(self, line: str) -> ChatEvent | None:
        if line.startswith("event:"):
            self.event = line[6:].strip()
        elif line.startswith("data:"):
            self.data.append(line[5:].strip())
        elif not line.strip() and self.data:
            payload = {"event": self.event, **json.loads("\n".join(self.data))}
            self.event, self.data = "", []
            return _EVENT.validate_python(payload)
        return None


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class RAGClient:
    def __init__(
        self,
        base_url: str = "http://localhost:8000",
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> RAGClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _json(self, method: str, url: str, **kw: Any) -> Any:
        r = self._http.request(method, url, **kw)
        _raise_for(r)
        return r.json()

    def chat(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Filters | None = None,
        backend: str | None = None,
        history: History | None = None,
        kbs: Sequence[str] | None = None,
    ) -> Answer:
        body = _chat_body(question, top_k, filters, backend, history, kbs)
        return Answer.model_validate(self._json("POST", "/v1/chat", json=body))

    def stream_chat(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Filters | None = None,
        backend: str | None = None,
        history: History | None = None,
        kbs: Sequence[str] | None = None,
    ) -> Iterator[ChatEvent]:
        body = _chat_body(question, top_k, filters, backend, history, kbs, stream=True)
        with self._http.stream("POST", "/v1/chat", json=body) as r:
            if r.status_code >= 400:
                r.read()
                _raise_for(r)
            sse = _SSE()
            for line in r.iter_lines():
                if (event := sse.feed(line)) is not None:
                    yield event

    def search(
        self,
        query: str,
        *,
        top_k: int | None = None,
        mode: str = "hybrid",
        filters: Filters | None = None,
        kbs: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        body = _body(("query", query), top_k=top_k, mode=mode, filters=filters, kbs=kbs)
        return [
            SearchHit.model_validate(h) for h in self._json("POST", "/v1/search", json=body)["hits"]
        ]

    def upload(
        self, *paths: str | Path, kb: str | None = None, timeout: float | None = None
    ) -> list[IngestResult]:
        """Upload files and return a result per file; an upload the server takes as a job
        (larger than its RAG_INGEST_ASYNC_BYTES) is waited for (``wait_job``)."""
        got = self._upload(paths, kb, job=False)
        return self.wait_job(got, timeout).documents if isinstance(got, Job) else got

    def start_upload(self, *paths: str | Path, kb: str | None = None) -> Job:
        """Upload files as an ingest job whatever their size; returns at once (``wait_job``)."""
        got = self._upload(paths, kb, job=True)
        assert isinstance(got, Job)
        return got

    def _upload(
        self, paths: Sequence[str | Path], kb: str | None, job: bool
    ) -> list[IngestResult] | Job:
        params = {"job": "true"} if job else None
        r = self._http.post(_docs_url(kb), files=_files(paths), params=params)
        _raise_for(r)
        return _upload_results(r)

    def job(self, job_id: str) -> Job:
        """An ingest job as it is now (files and chunks done, results so far)."""
        return Job.model_validate(self._json("GET", f"/v1/jobs/{quote(job_id, safe='')}"))

    def jobs(self, limit: int = 50) -> list[Job]:
        """The server's ingest jobs this key may see, newest first."""
        data = self._json("GET", "/v1/jobs", params={"limit": limit})
        return JobList.model_validate(data).jobs

    def wait_job(
        self,
        job: Job | str,
        timeout: float | None = None,
        poll_s: float = 0.5,
        on_progress: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll a job until it ends; ``JobFailedError`` if it failed, ``TimeoutError`` past
        ``timeout`` seconds. ``on_progress`` sees each state polled."""
        job_id = job.job if isinstance(job, Job) else job
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.job(job_id)
            if on_progress is not None:
                on_progress(current)
            if current.ended:
                return _ended(current)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"ingest job {job_id} still {current.status} after {timeout} s")
            time.sleep(poll_s)

    def documents(
        self, offset: int = 0, limit: int = 100, kb: str | None = None
    ) -> list[DocumentInfo]:
        """One page of the documents (``documents_page`` also says how many there are)."""
        return self.documents_page(offset, limit, kb).documents

    def documents_page(
        self, offset: int = 0, limit: int = 100, kb: str | None = None
    ) -> DocumentList:
        """One page of the documents, with ``total``, the number of documents in all."""
        data = self._json("GET", _docs_url(kb), params={"offset": offset, "limit": limit})
        return DocumentList.model_validate(data)

    def document(self, doc_id: str, kb: str | None = None) -> DocumentText:
        """A document with its full text (citation offsets index it); ``NotFoundError`` if none."""
        return DocumentText.model_validate(self._json("GET", _doc_url(doc_id, kb)))

    def delete(self, doc_id: str, kb: str | None = None) -> None:
        self._json("DELETE", _doc_url(doc_id, kb))

    def kbs(self) -> list[KBInfo]:
        """The knowledge bases this key may read, the default one first."""
        return [KBInfo.model_validate(k) for k in self._json("GET", "/v1/kbs")["kbs"]]

    def create_kb(self, name: str) -> KBInfo:
        """A new, empty knowledge base (admin keys; ``ConflictError`` if it exists)."""
        return KBInfo.model_validate(self._json("POST", "/v1/kbs", json={"name": name}))

    def delete_kb(self, name: str) -> None:
        """Delete a knowledge base and its documents (admin keys)."""
        self._json("DELETE", _kb_url(name))

    def health(self) -> dict[str, Any]:
        return dict(self._json("GET", "/readyz"))


class AsyncRAGClient:
    def __init__(
        self,
        base_url: str = "http://localhost:8000",
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncRAGClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, url: str, **kw: Any) -> Any:
        r = await self._http.request(method, url, **kw)
        _raise_for(r)
        return r.json()

    async def chat(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Filters | None = None,
        backend: str | None = None,
        history: History | None = None,
        kbs: Sequence[str] | None = None,
    ) -> Answer:
        body = _chat_body(question, top_k, filters, backend, history, kbs)
        return Answer.model_validate(await self._json("POST", "/v1/chat", json=body))

    async def stream_chat(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Filters | None = None,
        backend: str | None = None,
        history: History | None = None,
        kbs: Sequence[str] | None = None,
    ) -> AsyncIterator[ChatEvent]:
        body = _chat_body(question, top_k, filters, backend, history, kbs, stream=True)
        async with self._http.stream("POST", "/v1/chat", json=body) as r:
            if r.status_code >= 400:
                await r.aread()
                _raise_for(r)
            sse = _SSE()
            async for line in r.aiter_lines():
                if (event := sse.feed(line)) is not None:
                    yield event

    async def search(
        self,
        query: str,
        *,
        top_k: int | None = None,
        mode: str = "hybrid",
        filters: Filters | None = None,
        kbs: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        body = _body(("query", query), top_k=top_k, mode=mode, filters=filters, kbs=kbs)
        data = await self._json("POST", "/v1/search", json=body)
        return [SearchHit.model_validate(h) for h in data["hits"]]

    async def upload(
        self, *paths: str | Path, kb: str | None = None, timeout: float | None = None
    ) -> list[IngestResult]:
        """Upload files and return a result per file; an upload the server takes as a job
        (larger than its RAG_INGEST_ASYNC_BYTES) is waited for (``wait_job``)."""
        got = await self._upload(paths, kb, job=False)
        return (await self.wait_job(got, timeout)).documents if isinstance(got, Job) else got

    async def start_upload(self, *paths: str | Path, kb: str | None = None) -> Job:
        """Upload files as an ingest job whatever their size; returns at once (``wait_job``)."""
        got = await self._upload(paths, kb, job=True)
        assert isinstance(got, Job)
        return got

    async def _upload(
        self, paths: Sequence[str | Path], kb: str | None, job: bool
    ) -> list[IngestResult] | Job:
        params = {"job": "true"} if job else None
        r = await self._http.post(_docs_url(kb), files=_files(paths), params=params)
        _raise_for(r)
        return _upload_results(r)

    async def job(self, job_id: str) -> Job:
        """An ingest job as it is now (files and chunks done, results so far)."""
        data = await self._json("GET", f"/v1/jobs/{quote(job_id, safe='')}")
        return Job.model_validate(data)

    async def jobs(self, limit: int = 50) -> list[Job]:
        """The server's ingest jobs this key may see, newest first."""
        data = await self._json("GET", "/v1/jobs", params={"limit": limit})
        return JobList.model_validate(data).jobs

    async def wait_job(
        self,
        job: Job | str,
        timeout: float | None = None,
        poll_s: float = 0.5,
        on_progress: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll a job until it ends; ``JobFailedError`` if it failed, ``TimeoutError`` past
        ``timeout`` seconds. ``on_progress`` sees each state polled."""
        job_id = job.job if isinstance(job, Job) else job
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = await self.job(job_id)
            if on_progress is not None:
                on_progress(current)
            if current.ended:
                return _ended(current)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"ingest job {job_id} still {current.status} after {timeout} s")
            await asyncio.sleep(poll_s)

    async def documents(
        self, offset: int = 0, limit: int = 100, kb: str | None = None
    ) -> list[DocumentInfo]:
        """One page of the documents (``documents_page`` also says how many there are)."""
        return (await self.documents_page(offset, limit, kb)).documents

    async def documents_page(
        self, offset: int = 0, limit: int = 100, kb: str | None = None
    ) -> DocumentList:
        """One page of the documents, with ``total``, the number of documents in all."""
        data = await self._json("GET", _docs_url(kb), params={"offset": offset, "limit": limit})
        return DocumentList.model_validate(data)

    async def document(self, doc_id: str, kb: str | None = None) -> DocumentText:
        """A document with its full text (citation offsets index it); ``NotFoundError`` if none."""
        return DocumentText.model_validate(await self._json("GET", _doc_url(doc_id, kb)))

    async def delete(self, doc_id: str, kb: str | None = None) -> None:
        await self._json("DELETE", _doc_url(doc_id, kb))

    async def kbs(self) -> list[KBInfo]:
        """The knowledge bases this key may read, the default one first."""
        data = await self._json("GET", "/v1/kbs")
        return [KBInfo.model_validate(k) for k in data["kbs"]]

    async def create_kb(self, name: str) -> KBInfo:
        """A new, empty knowledge base (admin keys; ``ConflictError`` if it exists)."""
        return KBInfo.model_validate(await self._json("POST", "/v1/kbs", json={"name": name}))

    async def delete_kb(self, name: str) -> None:
        """Delete a knowledge base and its documents (admin keys)."""
        await self._json("DELETE", _kb_url(name))

    async def health(self) -> dict[str, Any]:
        return dict(await self._json("GET", "/readyz"))
