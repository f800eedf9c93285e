"""Embeddings scale-out on real components: one app serves ``POST /v1/embeddings`` (real uvicorn,
real e5); a second RAGService with ``RAG_EMBEDDING__BASE_URL`` pointing at it ingests, searches
and answers; its vectors equal local encoding; the official ``openai`` client reads the route."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from api.app import create_app
from rag.config import EmbeddingSettings, LLMSettings
from rag.embeddings import EmbeddingServiceError
from rag.service import RAGService

from .conftest import make_settings, serve, service_copy

pytestmark = pytest.mark.slow

KEY = "embed-key"
MODEL = "multilingual-e5-small"
# The same model on both sides; the int8 backend quantizes activations per batch, so a text's
# vector moves a little with its batch mates (cosine above 0.998 measured).
SAME = 0.995
TEXTS = ["城关区2014年地区生产总值是多少?", "龙港市撤销73个行政村,建立102个社区。"]


@pytest.fixture(scope="module")
def embed_url(seeded: RAGService) -> Iterator[str]:
    """The seeded service behind a real uvicorn, keyed; yields its base URL."""
    settings = seeded.settings.model_copy(update={"api_keys": KEY})
    with serve(create_app(settings, service=seeded)) as url:
        yield url


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=-1)))


def test_embeddings_route_wire_format(embed_url: str, seeded: RAGService) -> None:
    url = f"{embed_url}/v1/embeddings"
    r = httpx.post(url, json={"input": TEXTS, "model": MODEL}, headers=_auth())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == MODEL
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 384 for d in body["data"])
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    got = np.asarray([d["embedding"] for d in body["data"]], dtype=np.float32)
    # Raw text, no prompt added on the server's side.
    assert _min_cosine(got, seeded.embedder.encode_raw(TEXTS)) >= SAME
    assert _min_cosine(got[:1], seeded.embedder.encode_query(TEXTS[0])[None]) < 0.999

    one = httpx.post(url, json={"input": TEXTS[0]}, headers=_auth()).json()
    assert len(one["data"]) == 1
    b64 = httpx.post(
        url, json={"input": TEXTS, "encoding_format": "base64"}, headers=_auth()
    ).json()
    decoded = np.asarray(
        [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64["data"]]
    )
    assert _min_cosine(decoded, got) >= 0.9999

    assert httpx.post(url, json={"input": TEXTS}).status_code == 401  # no key
    bad: list[tuple[dict[str, Any], int]] = [
        ({"input": TEXTS, "model": "text-embedding-3-small"}, 404),
        ({"input": []}, 400),
        ({"input": [""]}, 400),
        ({"input": "x", "dimensions": 1536}, 400),
        ({"input": [[1, 2, 3]]}, 422),  # token arrays are not supported
        ({"model": MODEL}, 422),
    ]
    for body_, status in bad:
        r = httpx.post(url, json=body_, headers=_auth())
        assert r.status_code == status, (body_, r.text)
        assert r.json()["error"]["message"]


def test_openai_client_reads_our_endpoint(embed_url: str, seeded: RAGService) -> None:
    client = openai.OpenAI(base_url=f"{embed_url}/v1", api_key=KEY, max_retries=0)
    resp = client.embeddings.create(model=MODEL, input=TEXTS)  # base64 on the wire by default
    got = np.asarray([d.embedding for d in resp.data], dtype=np.float32)
    assert got.shape == (2, 384) and resp.model == MODEL
    assert _min_cosine(got, seeded.embedder.encode_raw(TEXTS)) >= SAME
    floats = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    assert _min_cosine(np.asarray(floats.data[0].embedding), got[0]) >= SAME
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{embed_url}/v1", api_key="wrong", max_retries=0).embeddings.create(
            model=MODEL, input="x"
        )


def test_remote_embedder_ingests_and_answers(
    embed_url: str, seeded: RAGService, seeds_dir: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("001_69232ea0bb8e6e45.txt", "003_2de97fa3165b9104.txt"):
        shutil.copy(seeds_dir / name, docs / name)
    settings = make_settings(
        tmp_path / "data",
        embedding=EmbeddingSettings(base_url=f"{embed_url}/v1", api_key=KEY, batch_size=8),
        llm=LLMSettings(backend="extractive"),
    )
    remote = RAGService(settings)
    assert remote.embedder.remote and remote.embedder.name == seeded.embedder.name
    assert remote.embedder.dimension == seeded.embedder.dimension == 384
    assert (remote.embedder.query_prompt, remote.embedder.passage_prompt) == (
        seeded.embedder.query_prompt,
        seeded.embedder.passage_prompt,
    )

    # Same vectors as local encoding, prompts included, across several batches.
    passages = [f"第{i}段:{TEXTS[i % 2]}" for i in range(20)]
    assert (
        _min_cosine(
            remote.embedder.encode_passages(passages), seeded.embedder.encode_passages(passages)
        )
        >= SAME
    )
    assert (
        _min_cosine(
            remote.embedder.encode_query(TEXTS[0])[None],
            seeded.embedder.encode_query(TEXTS[0])[None],
        )
        >= SAME
    )

    summary = remote.ingest([docs])
    assert summary.count("added") == 2, summary
    hits = remote.search("兰州城关区2014年地区生产总值", top_k=3)
    assert hits and hits[0].source == "001_69232ea0bb8e6e45.txt"
    answer = remote.answer("龙港市撤销了多少个行政村?")
    assert "73" in answer.answer and answer.citations

    # The index built through the server is the local embedder's index too (same model name).
    local = service_copy(seeded, tmp_path / "data")
    local_hits = local.search("兰州城关区2014年地区生产总值", top_k=3)
    assert [(h.source, h.start) for h in local_hits] == [(h.source, h.start) for h in hits]


def test_remote_embedder_down_is_a_clear_error(tmp_path: Path) -> None:
    from .conftest import free_port

    settings = make_settings(
        tmp_path / "data",
        embedding=EmbeddingSettings(base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=5),
    )
    with pytest.raises(EmbeddingServiceError, match="unreachable"):
        _ = RAGService(settings).embedder.encode_query("x")


def test_api_with_its_embeddings_server_down_says_503_and_recovers(
    seeded: RAGService, tmp_path: Path
) -> None:
    """An app whose embeddings server is down starts anyway; /readyz and search are 503 JSON;
    once the server is up on that port, the same app answers, without a restart."""
    import threading
    import time

    import uvicorn

    from .conftest import free_port

    port = free_port()
    settings = make_settings(
        tmp_path / "data",
        embedding=EmbeddingSettings(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=10),
        llm=LLMSettings(backend="extractive"),
    )
    with serve(create_app(settings)) as client_app:
        ready = httpx.get(f"{client_app}/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["message"]
        r = httpx.post(f"{client_app}/v1/search", json={"query": "龙港市"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "unavailable"

        embed_settings = seeded.settings.model_copy(update={"api_keys": ""})
        srv = uvicorn.Server(
            uvicorn.Config(
                create_app(embed_settings, service=seeded),
                host="127.0.0.1",
                port=port,
                log_level="warning",
            )
        )
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while not srv.started:
                assert thread.is_alive() and time.monotonic() < deadline
                time.sleep(0.05)
            assert httpx.get(f"{client_app}/readyz").status_code == 200
            r = httpx.post(f"{client_app}/v1/search", json={"query": "龙港市"})
            assert r.status_code == 200 and r.json() == {"hits": []}  # an empty index, answered
        finally:
            srv.should_exit = True
            thread.join(timeout=10)
