"""LLM backends behind one interface (LangChain chat models), chosen by settings.

- ``local``: a GGUF model through llama.cpp (the bundled Qwen2.5-Coder-1.5B by default): loaded
  once, calls serialized by a lock (the C context is not thread-safe), greedy, streamed.
- ``openai``: any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, OpenAI).
- ``extractive``: no model at all (``make_chat_model`` returns None); the chain answers with the
  best supporting sentences.

Heavy imports happen inside the chosen branch: a user who never runs llama.cpp never imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from rag.bundled.qwen import build_qwen
from rag.config import LLMSettings
from rag.errors import LLMError as LLMError  # re-exported: callers catch it from here
from rag.errors import ModelError

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def to_openai_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages]


class ChatLlamaCpp(BaseChatModel):
    """A llama.cpp GGUF model as a LangChain chat model; one shared, locked context."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    threads: int = 2
    context_tokens: int = 4096
    max_tokens: int = 200

    _llama: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    def load(self) -> Any:
        if self._llama is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise LLMError(
                    "llama-cpp-python is not installed (make install builds it once and caches "
                    "the wheel); or set RAG_LLM__BACKEND=extractive or openai"
                ) from exc
            self._llama = Llama(
                model_path=self.model_path,
                n_ctx=self.context_tokens,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                verbose=False,
                seed=0,
            )
        return self._llama

    def count_tokens(self, text: str) -> int:
        return len(self.load().tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        llama = self.load()
        with self._lock:
            parts = llama.create_chat_completion(
                messages=to_openai_messages(messages),
                stream=True,
                temperature=0.0,
                top_k=1,
                top_p=1.0,
                repeat_penalty=1.0,
                max_tokens=kwargs.get("max_tokens", self.max_tokens),
                stop=stop or None,
                seed=0,
            )
            for part in parts:
                delta = part["choices"][0].get("delta", {}).get("content")
                if delta:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                    if run_manager:
                        run_manager.on_llm_new_token(delta, chunk=chunk)
                    yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(
            str(c.message.content) for c in self._stream(messages, stop, run_manager, **kwargs)
        )
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def make_chat_model(settings: LLMSettings, models_dir: Any) -> BaseChatModel | None:
    """The chat model for ``settings.backend`` (None for ``extractive``)."""
    if settings.backend == "extractive":
        return None
    if settings.backend == "openai":
        if not settings.base_url:
            raise LLMError(
                "RAG_LLM__BACKEND=openai needs RAG_LLM__BASE_URL (e.g. http://host:8080/v1)"
            )
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            base_url=settings.base_url,
            model=settings.model,
            api_key=settings.api_key.get_secret_value() if settings.api_key else "not-needed",
            temperature=0.0,
            max_tokens=settings.max_tokens,
            timeout=settings.timeout_s,
            max_retries=0,
        )
    try:
        path = settings.model_path or build_qwen(models_dir)
    except ModelError as exc:
        raise LLMError(str(exc)) from exc
    if not path.exists():
        raise LLMError(f"GGUF model not found: {path} (RAG_LLM__MODEL_PATH)")
    return ChatLlamaCpp(
        model_path=str(path),
        threads=settings.threads,
        context_tokens=settings.context_tokens,
        max_tokens=settings.max_tokens,
    )
