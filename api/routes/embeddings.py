"""POST /v1/embeddings in the OpenAI wire format, so one replica (or a GPU box) embeds for others.

Inputs are embedded **exactly as given**: no ``query: `` / ``passage: `` prompt is added here. The
caller adds them, as our own embedder does with ``RAG_EMBEDDING__BASE_URL`` pointing at this route;
a plain OpenAI client that wants e5 retrieval quality must prefix its texts itself.
"""

from __future__ import annotations

import base64
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import Service
from api.errors import APIError

router = APIRouter(tags=["embeddings"])

MAX_INPUTS = 2048  # the OpenAI limit on inputs per request
MAX_INPUT_CHARS = 20_000  # e5 reads 512 tokens; this bounds the tokenizer's work
MAX_TOTAL_CHARS = 1_000_000  # per request: bounds one request's CPU time


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # e.g. `user`

    input: str | list[str] = Field(description="one text or a list; embedded as given (raw)")
    model: str | None = Field(None, description="if given, must be this server's embedding model")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="if given, must be the model's")


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
async def embeddings(req: EmbeddingRequest, service: Service) -> EmbeddingResponse:
    texts = [req.input] if isinstance(req.input, str) else list(req.input)
    if not texts or len(texts) > MAX_INPUTS:
        raise APIError(400, f"input: give 1 to {MAX_INPUTS} texts")
    for i, t in enumerate(texts):
        if not t or len(t) > MAX_INPUT_CHARS:
            raise APIError(400, f"input[{i}]: each text must have 1 to {MAX_INPUT_CHARS} chars")
    if sum(map(len, texts)) > MAX_TOTAL_CHARS:
        raise APIError(400, f"input: more than {MAX_TOTAL_CHARS} chars in all; send batches")
    name = await run_in_threadpool(lambda: service.embedding_model)
    if req.model is not None and req.model != name:
        raise APIError(
            404, f"model '{req.model}' is not served here; this server embeds with '{name}'"
        )
    if req.dimensions is not None:
        dim = await run_in_threadpool(lambda: service.embedding_dim)
        if req.dimensions != dim:
            raise APIError(400, f"dimensions: this model gives {dim}")
    embedded = await run_in_threadpool(service.embed, texts)
    data = [
        EmbeddingData(
            index=i,
            embedding=(
                base64.b64encode(v.astype("<f4").tobytes()).decode()
                if req.encoding_format == "base64"
                else [float(x) for x in v]
            ),
        )
        for i, v in enumerate(embedded.vectors)
    ]
    return EmbeddingResponse(
        data=data,
        model=name,
        usage=EmbeddingUsage(prompt_tokens=embedded.tokens, total_tokens=embedded.tokens),
    )
