"""Documents: list, read, upload (multipart, parts named `file`), delete."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

from fastapi import APIRouter, Query, Request, UploadFile
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import Service
from api.errors import APIError
from rag.loaders import SUPPORTED_SUFFIXES
from rag.schemas import DocumentInfo, IngestResult

router = APIRouter(tags=["documents"])


class DocumentList(BaseModel):
    documents: list[DocumentInfo]
    total: int
    offset: int
    limit: int


class DocumentText(DocumentInfo):
    text: str


class UploadResponse(BaseModel):
    documents: list[IngestResult]


class Deleted(BaseModel):
    deleted: str


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
    info = {d.doc_id: d for d in await run_in_threadpool(service.documents)}.get(doc_id)
    text = await run_in_threadpool(service.store.document_text, doc_id) if info else None
    if info is None or text is None:
        raise APIError(404, f"no document with doc_id '{doc_id}'")
    return DocumentText(**info.model_dump(), text=text)


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
async def upload(file: list[UploadFile], request: Request, service: Service) -> UploadResponse:
    limit = request.app.state.settings.max_upload_bytes
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
        raise APIError(404, f"no document with doc_id '{doc_id}'")
    return Deleted(deleted=doc_id)
