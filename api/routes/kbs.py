"""Knowledge bases: list those the key may read, create and delete them (admin keys only).
Their documents are under ``/v1/kbs/{kb}/documents`` (``api.routes.documents``)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Caller
from api.deps import Service
from api.schemas import Deleted, KBList
from rag.kbs import NAME_RULE
from rag.schemas import KBInfo

router = APIRouter(tags=["knowledge bases"])


class CreateKB(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description=NAME_RULE)


@router.get("/v1/kbs", response_model=KBList)
async def list_kbs(caller: Caller, service: Service) -> KBList:
    """The KBs this key may read (all of them for an admin), the default one first."""

    return KBList(kbs=await run_in_threadpool(service.list_kbs, caller.may_read))


@router.post("/v1/kbs", response_model=KBInfo, status_code=201)
async def create_kb(req: CreateKB, caller: Caller, service: Service) -> KBInfo:
    caller.check_admin()
    return await run_in_threadpool(service.create_kb, req.name)  # exists: 409


@router.delete("/v1/kbs/{kb}", response_model=Deleted)
async def delete_kb(kb: str, caller: Caller, service: Service) -> Deleted:
    """Delete a KB and every document in it, at once for every replica."""
    caller.check_admin()
    await run_in_threadpool(service.delete_kb, kb)  # none: 404; the default KB: 409
    return Deleted(deleted=kb)
