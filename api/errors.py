"""One error body for every 4xx/5xx: ``{"error": {"type": ..., "message": ...}}``, and the one
mapping from the library's errors (``rag/errors.py``) to it:

- ``NotFound`` → 404 ``not_found``; ``Conflict`` → 409 ``conflict``; ``Unsupported`` and any other ``BadInput`` → 422
  ``validation_error``; the library's message is the client's;
- ``Unavailable`` → 503 ``unavailable`` with the library's message (what is down; retry later);
- any other ``RAGError`` or exception → 500 ``internal_error``, ``internal error``: the
  exception's text is logged, never sent.

JSON responses and the error events of streams (``api/streaming.py``) both come from
``classify``: the same type names and messages either way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import BadInput, Conflict, NotFound, RAGError, Unavailable

log = logging.getLogger("rag.api")

_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class APIError(HTTPException):
    """An error with a type name the client maps back to an exception class."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.type = type_ or _TYPES.get(status, "error")


@dataclass(frozen=True)
class ErrorInfo:
    """What a client is told about an error: HTTP status, type name, message."""

    status: int
    type: str
    message: str
    headers: Mapping[str, str] | None = None


INTERNAL = ErrorInfo(500, "internal_error", "internal error")


def classify(exc: BaseException) -> ErrorInfo:
    """The status, type and message of an error, the same for a JSON body and a stream event."""
    if isinstance(exc, StarletteHTTPException):
        type_ = getattr(exc, "type", None) or _TYPES.get(exc.status_code, "error")
        return ErrorInfo(exc.status_code, type_, str(exc.detail), exc.headers)
    if isinstance(exc, NotFound):
        return ErrorInfo(404, _TYPES[404], str(exc))
    if isinstance(exc, Conflict):
        return ErrorInfo(409, _TYPES[409], str(exc))
    if isinstance(exc, BadInput):  # Unsupported (a backend this installation cannot run) too
        return ErrorInfo(422, _TYPES[422], str(exc))
    if isinstance(exc, Unavailable):
        return ErrorInfo(503, _TYPES[503], str(exc))
    return INTERNAL  # any other RAGError is the installation's fault; an Exception, a bug


def log_error(request: Request, exc: BaseException, info: ErrorInfo) -> None:
    """A part that is down is a warning; a 500 is logged with its traceback; a 4xx not at all."""
    if info.status == 503:
        log.warning("unavailable on %s %s: %s", request.method, request.url.path, exc)
    elif info.status >= 500:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)


def error_body(
    status: int, message: str, type_: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"type": type_ or _TYPES.get(status, "error"), "message": message}},
        headers=headers,
    )


def error_response(request: Request, exc: BaseException) -> JSONResponse:
    info = classify(exc)
    log_error(request, exc, info)
    return error_body(info.status, info.message, info.type, info.headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return error_body(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(RAGError)
    async def library_error(request: Request, exc: RAGError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, exc)
