"""Documents: list, read, upload (multipart, parts named `file`), delete."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

from fastapi import APIRouter, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import AppSettings, Service
from api.errors import APIError
from api.schemas import Deleted, DocumentList, UploadResponse
from rag.errors import NotFound
from rag.loaders import SUPPORTED_SUFFIXES
from rag.schemas import DocumentText

router = APIRouter(tags=["documents"])


@router.get("/v1/documents", response_model=DocumentList)
async def list_documents(
    service: Service, offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)
) -> DocumentList:
    docs = await run_in_threadpool(service.documents)
    return DocumentList(
        documents=docs[offset : offset + limit], total=len(docs), offset=offset, limit=limit
    )


@router.get("/v1/documents/{doc_id}", response_model=DocumentText)
async def get_document(doc_id: str, service: Service) -> DocumentText:
    return await run_in_threadpool(service.document, doc_id)  # NotFound: a 404


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


@router.post("/v1/documents", response_model=UploadResponse)
async def upload(file: list[UploadFile], service: Service, settings: AppSettings) -> UploadResponse:
    limit = settings.max_upload_bytes
    items = []
    for f in file:
        name = safe_name(f.filename)
        data = await f.read(limit + 1)
        if len(data) > limit:
            raise APIError(413, f"{name}: larger than {limit} bytes")
        items.append((name, data))
    summary = await run_in_threadpool(service.ingest_bytes, items)
    return UploadResponse(documents=summary.documents)


@router.delete("/v1/documents/{doc_id}", response_model=Deleted)
async def delete(doc_id: str, service: Service) -> Deleted:
    if not await run_in_threadpool(service.delete_document, doc_id):
        raise NotFound(f"no document with doc_id '{doc_id}'")
    return Deleted(deleted=doc_id)
