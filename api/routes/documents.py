"""Documents: list, read, upload (multipart, parts named `file`), delete, in a knowledge base:
``/v1/kbs/{kb}/documents…``, and ``/v1/documents…`` for the default KB. Reading needs the key's
read right on the KB (else the 404 of a KB that does not exist), uploads and deletes its write
right (else a 403)."""

# No ``from __future__ import annotations``: the routes are made in a function, and FastAPI
# reads their annotations (the KB dependency, local to it) as objects, not as names.
from collections.abc import Callable
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import Caller
from api.deps import AppSettings, Service
from api.errors import APIError
from api.schemas import Deleted, DocumentList, UploadResponse
from rag.errors import NotFound
from rag.jobs import Job
from rag.loaders import SUPPORTED_SUFFIXES
from rag.schemas import DocumentText

router = APIRouter(tags=["documents"])


def safe_name(name: str | None) -> str:
    """The file's base name only: no folders, no traversal, a supported extension."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name.strip()
    if not base or base in (".", "..") or base.startswith("."):
        raise APIError(422, f"file name '{name}' is not usable")
    suffix = PurePosixPath(base).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise APIError(
            415,
            f"{base}: unsupported file type '{suffix or '(none)'}' "
            f"(supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})",
        )
    return base


def _default_kb(service: Service) -> str:
    return service.default_kb


def _path_kb(kb: str) -> str:
    return kb


def _install(prefix: str, kb_of: Callable[..., str]) -> None:
    """The document routes under ``prefix``; ``kb_of`` says which KB they are about."""
    KB = Annotated[str, Depends(kb_of)]

    @router.get(f"{prefix}/documents", response_model=DocumentList)
    async def list_documents(
        kb: KB,
        caller: Caller,
        service: Service,
        offset: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=1000),
    ) -> DocumentList:
        caller.check_read(kb)
        docs = await run_in_threadpool(service.documents, kb)
        return DocumentList(
            documents=docs[offset : offset + limit], total=len(docs), offset=offset, limit=limit
        )

    @router.get(f"{prefix}/documents/{{doc_id}}", response_model=DocumentText)
    async def get_document(doc_id: str, kb: KB, caller: Caller, service: Service) -> DocumentText:
        caller.check_read(kb)
        return await run_in_threadpool(service.document, doc_id, kb)  # NotFound: a 404

    @router.post(
        f"{prefix}/documents",
        response_model=UploadResponse,
        responses={202: {"model": Job, "description": "a large upload: the job ingesting it"}},
    )
    async def upload(
        file: list[UploadFile],
        kb: KB,
        caller: Caller,
        service: Service,
        settings: AppSettings,
        job: bool = Query(False, description="ingest as a job (202) whatever the size"),
    ) -> Any:
        """Ingest the files: small uploads answer with their results (200); one larger than
        RAG_INGEST_ASYNC_BYTES, or with ``job=true``, at once with the job ingesting it (202,
        ``Location: /v1/jobs/{id}``)."""
        caller.check_write(kb)
        await run_in_threadpool(service.kb, kb)  # an unknown KB: 404 before the files are read
        limit = settings.max_upload_bytes
        items = []
        for f in file:
            name = safe_name(f.filename)
            data = await f.read(limit + 1)
            if len(data) > limit:
                raise APIError(413, f"{name}: larger than {limit} bytes")
            items.append((name, data))
        if job or sum(len(data) for _, data in items) > settings.ingest_async_bytes:
            queued = await run_in_threadpool(service.submit_ingest, items, kb)
            return JSONResponse(
                queued.model_dump(mode="json"),
                status_code=202,
                headers={"Location": f"/v1/jobs/{queued.job}"},
            )
        summary = await run_in_threadpool(service.ingest_bytes, items, None, kb)
        return UploadResponse(documents=summary.documents)

    @router.delete(f"{prefix}/documents/{{doc_id}}", response_model=Deleted)
    async def delete(doc_id: str, kb: KB, caller: Caller, service: Service) -> Deleted:
        caller.check_write(kb)
        if not await run_in_threadpool(service.delete_document, doc_id, kb):
            raise NotFound(f"no document with doc_id '{doc_id}'")
        return Deleted(deleted=doc_id)


_install("/v1", _default_kb)
_install("/v1/kbs/{kb}", _path_kb)
