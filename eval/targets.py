"""What the harness measures (``eval.runner.Target``): the library in-process or a running service,
and the settings of a dataset's own index. A library module: ``rag eval`` (eval/cli.py) and the
benchmarks (bench/) import it; it imports ``api`` only inside ``HttpTarget``, when one is made."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from rag.config import Settings
from rag.schemas import Answer, Citation, Passage, Turn

if TYPE_CHECKING:
    from rag.retrieval import SearchMode
    from rag.schemas import SearchHit
    from rag.service import RAGService

Route = Literal["chat", "completions"]


class LocalTarget:
    """The library in-process: a RAGService on the dataset's own index."""

    def __init__(self, service: RAGService, kb: str | None = None) -> None:
        self.service = service
        self.kbs = [kb] if kb else None

    def search(self, question: str, top_k: int, mode: SearchMode) -> list[SearchHit]:
        return self.service.search(question, top_k=top_k, mode=mode, kbs=self.kbs)

    def answer(self, question: str, backend: str | None, history: Sequence[Turn] = ()) -> Answer:
        return self.service.answer(question, backend=backend, history=history, kbs=self.kbs)  # type: ignore[arg-type]


class HttpTarget:
    """A running service, through the Python client (``POST /v1/chat``) or, with route
    ``completions``, through OpenAI's client (``POST /v1/chat/completions``, the conversation
    as its messages): the same metrics over HTTP."""

    def __init__(
        self, url: str, api_key: str | None, route: Route = "chat", kb: str | None = None
    ) -> None:
        from api.client import RAGClient  # the one import of api in eval: only when one is made

        self.client = RAGClient(url, api_key=api_key)
        self.route = route
        self.url, self.api_key = url.rstrip("/"), api_key
        self.kbs = [kb] if kb else None

    def search(self, question: str, top_k: int, mode: SearchMode) -> list[SearchHit]:
        return self.client.search(question, top_k=top_k, mode=mode, kbs=self.kbs)

    def answer(self, question: str, backend: str | None, history: Sequence[Turn] = ()) -> Answer:
        if self.route == "completions":
            return self._completion(question, backend, history)
        return self.client.chat(question, backend=backend, history=history, kbs=self.kbs)

    def _completion(self, question: str, backend: str | None, history: Sequence[Turn]) -> Answer:
        from openai import OpenAI

        client = OpenAI(base_url=f"{self.url}/v1", api_key=self.api_key or "none")
        messages: list[Any] = [t.model_dump() for t in history]
        messages.append({"role": "user", "content": question})
        r = client.chat.completions.create(
            model=backend or "default",
            messages=messages,
            extra_body={"kbs": self.kbs} if self.kbs else None,
        )
        extra = r.model_extra or {}
        return Answer(
            answer=r.choices[0].message.content or "",
            standalone_question=extra.get("standalone_question"),
            citations=[Citation.model_validate(c) for c in extra.get("citations", [])],
            passages=[Passage.model_validate(p) for p in extra.get("passages", [])],
            refused=bool(extra.get("refused")),
            fallback=bool(extra.get("fallback")),
            backend=r.model,
        )


def eval_settings(dataset: str) -> Settings:
    """Each dataset gets its own index under the data dir (the user's own index is untouched)."""
    base = Settings()
    return base.model_copy(
        update={"data_dir": base.data_dir / "eval" / dataset, "collection": f"eval-{dataset}"}
    )
