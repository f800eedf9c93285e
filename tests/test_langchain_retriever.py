"""Our hybrid retriever passes LangChain's standard retriever test suite (langchain-tests)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from rag.retrieval import HybridRetriever
from rag.service import RAGService


class TestHybridRetriever(RetrieversIntegrationTests):
    service: RAGService

    @pytest.fixture(autouse=True)
    def _index(self, seeded: RAGService) -> None:
        type(self).service = seeded

    @property
    def retriever_constructor(self) -> type[HybridRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        r = self.service.retriever
        return {"store": r.store, "embedder": r.embedder, "lexical": r.lexical}

    @property
    def retriever_query_example(self) -> str:
        return "延吉市集体访人次下降了多少"

    @property
    def num_results_arg_name(self) -> str:
        return "top_k"
