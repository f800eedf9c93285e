"""Property-based fuzzing of the whole OpenAPI schema (schemathesis) against the running app:
whatever the input, the answer is never a 5xx.

Bounded and reproducible: a fixed number of examples per operation, derandomized generation, no
example database. The app runs under a real uvicorn on loopback with an API key (the key is sent,
so the fuzzer reaches the handlers) and the extractive backend (the request may still name
`local` or `openai`: neither is available here, which must be a 4xx, not a 500).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from rag.config import Settings
from rag.service import RAGService

from .conftest import serve, service_copy

pytestmark = pytest.mark.slow

KEY = "fuzz-key-123"
EXAMPLES = 12  # per operation


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory, seeded: RAGService, seeds_dir: Path
) -> Iterator[str]:
    data = tmp_path_factory.mktemp("fuzz")
    llm = seeded.settings.llm.model_copy(
        update={"backend": "extractive", "model_path": data / "absent.gguf", "base_url": None}
    )
    service = service_copy(
        seeded, data / "data", api_keys=KEY, llm=llm, max_upload_bytes=20_000, chroma_url=None
    )
    service.ingest([sorted(seeds_dir.iterdir())[0]])
    with serve(create_app(service.settings, service)) as base:
        yield base


# The app's own schema, taken without serving it (one test per operation); the requests go to the
# running server. (schemathesis.pytest.from_fixture, the lazy loader, fails under pytest 9.)
schema = schemathesis.openapi.from_dict(create_app(Settings(api_keys=KEY)).openapi())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: Any, fuzz_server: str) -> None:
    case.call_and_validate(
        base_url=fuzz_server,
        headers={"Authorization": f"Bearer {KEY}"},
        checks=[not_a_server_error],
        timeout=120,
    )
