"""The API's own wire types (the library's are in ``rag/schemas.py``), shared by the routes and
the client: no FastAPI here, so that ``api.client`` stays light."""

from __future__ import annotations

from pydantic import BaseModel

from rag.jobs import Job
from rag.schemas import DocumentInfo, IngestResult, KBInfo


class DocumentList(BaseModel):
    """One page of the committed documents (sorted by source) and how many there are in all."""

    documents: list[DocumentInfo]
    total: int
    offset: int
    limit: int


class UploadResponse(BaseModel):
    documents: list[IngestResult]


class Deleted(BaseModel):
    deleted: str


class KBList(BaseModel):
    """The knowledge bases the key may read, the default one first."""

    kbs: list[KBInfo]


class JobList(BaseModel):
    """Ingest jobs, newest first."""

    jobs: list[Job]
