"""LLM backends behind one interface (LangChain chat models), chosen by settings.

- ``local``: a GGUF model through llama.cpp (the bundled Qwen2.5-Coder-1.5B by default): loaded
  once, calls serialized by a lock (the C context is not thread-safe), greedy, streamed.
- ``openai``: any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, OpenAI).
- ``extractive``: no model at all (``make_chat_model`` returns None); the chain answers with the
  best supporting sentences.

Heavy imports happen inside the chosen branch: a user who never runs llama.cpp never imports it.
"""

from __future__ import annotations

import codecs
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
from rag.decoding import DecodeStats, GreedyDecoder, common_prefix
from rag.errors import LLMError as LLMError  # re-exported: callers catch it from here
from rag.errors import ModelError

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def to_openai_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages]


class ChatLlamaCpp(BaseChatModel):
    """A llama.cpp GGUF model as a LangChain chat model; one shared, locked context, greedy
    decoding with prompt lookup drafts and saved prompt prefixes (``rag.decoding``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    threads: int = 2
    context_tokens: int = 4096
    max_tokens: int = 200
    lookup_tokens: int = 3

    _llama: Any = PrivateAttr(default=None)
    _decoder: Any = PrivateAttr(default=None)
    _format: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    def load(self) -> Any:
        if self._llama is None:
            try:
                from llama_cpp import Llama
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise LLMError(
                    "llama-cpp-python is not installed (make install builds it once and caches "
                    "the wheel); or set RAG_LLM__BACKEND=extractive or openai"
                ) from exc
            llama = Llama(
                model_path=self.model_path,
                n_ctx=self.context_tokens,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                verbose=False,
                seed=0,
            )
            # the model's own chat template, as llama-cpp-python's chat completion applies it
            eos, bos = llama.token_eos(), llama.token_bos()
            self._format = Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"],
                eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
            self._decoder = GreedyDecoder(llama, lookup_tokens=self.lookup_tokens)
            self._llama = llama
        return self._llama

    @property
    def stats(self) -> DecodeStats:
        """Prompt and decoding counts since the model was loaded."""
        self.load()
        stats: DecodeStats = self._decoder.stats
        return stats

    def count_tokens(self, text: str) -> int:
        return len(self.load().tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _prompt(self, messages: list[BaseMessage]) -> tuple[list[int], int]:
        """The prompt's tokens, and how many of them are the system message's (a prefix that
        recurs: its state is kept)."""
        llama = self.load()
        chat = to_openai_messages(messages)
        formatted = self._format(messages=chat)
        text: str = formatted.prompt
        add_bos = not formatted.added_special
        tokens = llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        system = next((m["content"] for m in chat if m["role"] == "system"), "")
        at = text.find(system) if system else -1
        if at < 0:
            return tokens, 0
        head = llama.tokenize(
            text[: at + len(system)].encode("utf-8"), add_bos=add_bos, special=True
        )
        return tokens, common_prefix(head, tokens)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        with self._lock:
            tokens, fixed = self._prompt(messages)
            decoder: GreedyDecoder = self._decoder
            utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
            text = ""
            for token in decoder.generate(tokens, fixed, max_tokens):
                delta = utf8.decode(self._llama.detokenize([token]))
                if stop:
                    text += delta
                    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=-1)
                    if cut >= 0:
                        delta = delta[: max(0, len(delta) - (len(text) - cut))]
                        if delta:
                            yield self._chunk(delta, run_manager)
                        return
                if delta:
                    yield self._chunk(delta, run_manager)
            tail = utf8.decode(b"", final=True)
            if tail:
                yield self._chunk(tail, run_manager)

    @staticmethod
    def _chunk(delta: str, run_manager: CallbackManagerForLLMRun | None) -> ChatGenerationChunk:
        chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
        if run_manager:
            run_manager.on_llm_new_token(delta, chunk=chunk)
        return chunk

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
        lookup_tokens=settings.lookup_tokens,
    )
