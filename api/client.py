"""RAGClient and AsyncRAGClient: the HTTP API as typed Python calls, mirroring each other.

    from api.client import RAGClient
    with RAGClient("http://localhost:8000", api_key=None) as rag:
        answer = rag.chat("哪个城市信访量下降最多?")
        print(answer.answer, [c.quote for c in answer.citations])
        history = [{"role": "user", "content": "哪个城市信访量下降最多?"},
                   {"role": "assistant", "content": answer.answer}]
        rag.chat("那个城市的低保标准是多少?", history=history).standalone_question

Both return the library's pydantic types and raise ``RAGError`` subclasses carrying the server's
error body (``RateLimitError`` for a 429, with the ``Retry-After`` seconds). Tests inject an httpx
transport instead of patching. Options left out (``top_k``, ``backend`` …) are left to the
server's settings.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from api.schemas import DocumentList
from rag.schemas import (
    Answer,
    ChatEvent,
    DocumentInfo,
    DocumentText,
    Filters,
    IngestResult,
    SearchHit,
    Turn,
)

# Earlier turns of a conversation, oldest first: what ``chat(history=...)`` takes.
History = Sequence[Turn | Mapping[str, str]]

__all__ = [
    "AsyncRAGClient",
    "AuthenticationError",
    "BadRequestError",
    "DocumentList",
    "History",
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


class NotFoundError(RAGError): ...


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


_BY_STATUS: dict[int, type[RAGError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
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


def _doc_url(doc_id: str) -> str:
    return f"/v1/documents/{quote(doc_id, safe='')}"


def _body(first: tuple[str, str], **options: Any) -> dict[str, Any]:
    """A request body: the required field, then the options that were given."""
    body: dict[str, Any] = {first[0]: first[1]}
    for key, value in options.items():
        if value is not None:
            body[key] = value.model_dump(exclude_none=True) if isinstance(value, Filters) else value
    return body


def _chat_body(
    question: str,
    top_k: int | None,
    filters: Filters | None,
    backend: str | None,
    history: History | None,
    stream: bool | None = None,
) -> dict[str, Any]:
    return _body(
        ("question", question),
        top_k=top_k,
        filters=filters,
        backend=backend,
        stream=stream,
        history=_history(history),
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
    ) -> Answer:
        body = _chat_body(question, top_k, filters, backend, history)
        return Answer.model_validate(self._json("POST", "/v1/chat", json=body))

    def stream_chat(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Filters | None = None,
        backend: str | None = None,
        history: History | None = None,
    ) -> Iterator[ChatEvent]:
        body = _chat_body(question, top_k, filters, backend, history, stream=True)
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
    ) -> list[SearchHit]:
        body = _body(("query", query), top_k=top_k, mode=mode, filters=filters)
        return [
            SearchHit.model_validate(h) for h in self._json("POST", "/v1/search", json=body)["hits"]
        ]

    def upload(self, *paths: str | Path) -> list[IngestResult]:
        data = self._json("POST", "/v1/documents", files=_files(paths))
        return [IngestResult.model_validate(d) for d in data["documents"]]

    def documents(self, offset: int = 0, limit: int = 100) -> list[DocumentInfo]:
        """One page of the documents (``documents_page`` also says how many there are)."""
        return self.documents_page(offset, limit).documents

    def documents_page(self, offset: int = 0, limit: int = 100) -> DocumentList:
        """One page of the documents, with ``total``, the number of documents in all."""
        data = self._json("GET", "/v1/documents", params={"offset": offset, "limit": limit})
        return DocumentList.model_validate(data)

    def document(self, doc_id: str) -> DocumentText:
        """A document with its full text (citation offsets index it); ``NotFoundError`` if none."""
        return DocumentText.model_validate(self._json("GET", _doc_url(doc_id)))

    def delete(self, doc_id: str) -> None:
        self._json("DELETE", _doc_url(doc_id))

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
    ) -> Answer:
        body = _chat_body(question, top_k, filters, backend, history)
        return Answer.model_validate(await self._json("POST", "/v1/chat", json=body))

    async def stream_chat(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Filters | None = None,
        backend: str | None = None,
        history: History | None = None,
    ) -> AsyncIterator[ChatEvent]:
        body = _chat_body(question, top_k, filters, backend, history, stream=True)
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
    ) -> list[SearchHit]:
        body = _body(("query", query), top_k=top_k, mode=mode, filters=filters)
        data = await self._json("POST", "/v1/search", json=body)
        return [SearchHit.model_validate(h) for h in data["hits"]]

    async def upload(self, *paths: str | Path) -> list[IngestResult]:
        data = await self._json("POST", "/v1/documents", files=_files(paths))
        return [IngestResult.model_validate(d) for d in data["documents"]]

    async def documents(self, offset: int = 0, limit: int = 100) -> list[DocumentInfo]:
        """One page of the documents (``documents_page`` also says how many there are)."""
        return (await self.documents_page(offset, limit)).documents

    async def documents_page(self, offset: int = 0, limit: int = 100) -> DocumentList:
        """One page of the documents, with ``total``, the number of documents in all."""
        data = await self._json("GET", "/v1/documents", params={"offset": offset, "limit": limit})
        return DocumentList.model_validate(data)

    async def document(self, doc_id: str) -> DocumentText:
        """A document with its full text (citation offsets index it); ``NotFoundError`` if none."""
        return DocumentText.model_validate(await self._json("GET", _doc_url(doc_id)))

    async def delete(self, doc_id: str) -> None:
        await self._json("DELETE", _doc_url(doc_id))

    async def health(self) -> dict[str, Any]:
        return dict(await self._json("GET", "/readyz"))
