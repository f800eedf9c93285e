"""What the harness measures (``eval.runner.Target``): the library in-process or a running service,
and the settings of a dataset's own index. A library module: ``rag eval`` (eval/cli.py) and the
benchmarks (bench/) import it; it imports ``api`` only inside ``HttpTarget``, when one is made."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag.config import Settings

if TYPE_CHECKING:
    from rag.retrieval import SearchMode
    from rag.schemas import Answer, SearchHit
    from rag.service import RAGService


class LocalTarget:
    """The library in-process: a RAGService on the dataset's own index."""

    def __init__(self, service: RAGService) -> None:
        self.service = service

    def search(self, question: str, top_k: int, mode: SearchMode) -> list[SearchHit]:
        return self.service.search(question, top_k=top_k, mode=mode)

    def answer(self, question: str, backend: str | None) -> Answer:
        return self.service.answer(question, backend=backend)  # type: ignore[arg-type]


class HttpTarget:
    """A running service, through the Python client: the same metrics over HTTP."""

    def __init__(self, url: str, api_key: str | None) -> None:
        from api.client import RAGClient  # the one import of api in eval: only when one is made

        self.client = RAGClient(url, api_key=api_key)

    def search(self, question: str, top_k: int, mode: SearchMode) -> list[SearchHit]:
        return self.client.search(question, top_k=top_k, mode=mode)

    def answer(self, question: str, backend: str | None) -> Answer:
        return self.client.chat(question, backend=backend)


def eval_settings(dataset: str) -> Settings:
    """Each dataset gets its own index under the data dir (the user's own index is untouched)."""
    base = Settings()
    return base.model_copy(
        update={"data_dir": base.data_dir / "eval" / dataset, "collection": f"eval-{dataset}"}
    )
