"""Greedy decoding on a llama.cpp context, made faster on a CPU without changing its tokens.

- **The KV cache keeps what the previous prompt shares with this one** (its longest common token
  prefix), as llama.cpp's own generation does.
- **A prompt kind's fixed prefix is saved** (the system message: the same on every answer): the
  state of the KV cache right after it is kept, per prefix, so a prompt of one kind that follows
  one of another (an answer after a comparison or a translation) restores its prefix instead of
  computing it again.
- **Prompt lookup decoding**: an answer quotes its passages, so the tokens that followed the last
  generated ones where they occurred before (in the prompt, mostly) are a good guess of what
  comes next. The guess (a draft) is verified in one batch with the current token; the longest
  part of it the model would have written itself is kept, with the model's own next token.
  Greedy: the tokens are those of plain greedy decoding, up to the rounding of a batched
  evaluation (the answers of the dev sets are the same: docs/results.md).

On 2 CPU cores a batch is not free (one token 80 ms, four 126 ms, eleven 327 ms on the
development machine), so drafts are short (``RAG_LLM__LOOKUP_TOKENS``, 3) and come only from a
match of at least two tokens, the latest one. llama-cpp-python's own ``draft_model`` with
``LlamaPromptLookupDecoding`` takes the first match, falls back to one-token matches, drafts 10
tokens, and computes the logits of every prompt token (``logits_all``), kept in a buffer of
context × vocabulary floats (2.5 GB at 4,096 tokens): here only the verified tokens' logits are
computed.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class DecodeStats:
    """Counts since the model was loaded (``bench/latency.py`` reports them)."""

    prompts: int = 0
    prompt_tokens: int = 0  # prompt tokens asked for
    prefilled: int = 0  # prompt tokens computed (the rest were cached or restored)
    restored: int = 0  # prompt tokens restored from a saved prefix
    generated: int = 0
    steps: int = 0  # model evaluations while generating
    drafted: int = 0  # draft tokens proposed
    accepted: int = 0  # draft tokens kept

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def tokens_per_step(self) -> float:
        return self.generated / self.steps if self.steps else 0.0


MIN_NGRAM = 2


def lookup(context: np.ndarray, max_n: int, min_n: int, k: int) -> np.ndarray:
    """Up to ``k`` tokens that followed the latest earlier occurrence of the context's last
    ``n`` tokens, for the longest ``n`` from ``max_n`` down to ``min_n`` that occurs (none:
    empty)."""
    size = len(context)
    for n in range(min(max_n, size - 1), min_n - 1, -1):
        windows = np.lib.stride_tricks.sliding_window_view(context[:-1], n)
        hits = np.flatnonzero((windows == context[-n:]).all(axis=1))
        hits = hits[hits + n < size]
        if hits.size:
            start = int(hits[-1]) + n
            return context[start : start + k]
    return context[:0]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if diff.size else n


class GreedyDecoder:
    """Greedy generation on one ``llama_cpp.Llama`` (not thread-safe: the caller serializes)."""

    def __init__(self, llama: Any, lookup_tokens: int = 3, ngram: int = 3, prefixes: int = 8):
        from llama_cpp import llama_cpp

        self.llama = llama
        self._lib = llama_cpp
        self._vocab = llama._model.vocab
        self._n_vocab = llama.n_vocab()
        self.lookup = lookup_tokens
        self.ngram = ngram
        self._saved: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self._max_saved = prefixes
        self.stats = DecodeStats()

    def generate(self, tokens: Sequence[int], fixed: int, max_tokens: int) -> Iterator[int]:
        """The greedy tokens after the prompt ``tokens``, whose first ``fixed`` tokens are a
        prefix that recurs (the system message), up to an end-of-generation token or
        ``max_tokens``."""
        logits = self._prefill(list(tokens), fixed)
        current = int(np.argmax(logits))
        produced = 0
        while not self._lib.llama_vocab_is_eog(self._vocab, current):
            yield current
            produced += 1
            self.stats.generated += 1
            if produced >= max_tokens:
                return
            draft = self._draft(current, max_tokens - produced)
            rows = self._evaluate([current, *draft])
            self.stats.steps += 1
            predicted = rows.argmax(axis=1)
            kept = 0
            while kept < len(draft) and predicted[kept] == draft[kept]:
                kept += 1
            self.stats.drafted += len(draft)
            self.stats.accepted += kept
            if kept < len(draft):  # the rejected part of the draft leaves the cache
                self._truncate(self.llama.n_tokens - (len(draft) - kept))
            for token in draft[:kept]:
                if self._lib.llama_vocab_is_eog(self._vocab, token):
                    return
                yield token
                produced += 1
                self.stats.generated += 1
                if produced >= max_tokens:
                    return
            current = int(predicted[kept])

    # -- the prompt ------------------------------------------------------------------------------

    def _prefill(self, tokens: list[int], fixed: int) -> np.ndarray:
        """Bring the cache to ``tokens`` and return the logits after the last one."""
        llama = self.llama
        self.stats.prompts += 1
        self.stats.prompt_tokens += len(tokens)
        fixed = min(fixed, len(tokens) - 1)
        keep = min(common_prefix(llama.input_ids[: llama.n_tokens], tokens), len(tokens) - 1)
        key = tuple(tokens[:fixed]) if fixed > 0 else None
        if key is not None and keep < fixed and self._restore(key):
            self.stats.restored += fixed
            keep = fixed
        else:
            self._truncate(keep)
        if key is not None and keep < fixed:  # computed once, then saved for the next time
            self._prefill_part(tokens[keep:fixed])
            self._save(key)
            keep = fixed
        self._prefill_part(tokens[keep:])
        pointer = llama._ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))

    def _prefill_part(self, tokens: list[int]) -> None:
        self.stats.prefilled += len(tokens)
        self.llama.eval(tokens)  # the logits of the last token only

    def _truncate(self, n: int) -> None:
        self.llama._ctx.kv_cache_seq_rm(-1, n, -1)
        self.llama.n_tokens = n

    def _save(self, key: tuple[int, ...]) -> None:
        ctx = self.llama._ctx.ctx
        size = self._lib.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = self._lib.llama_state_seq_get_data(ctx, buffer, size, 0)
        self._saved[key] = bytes(buffer)[:written]
        self._saved.move_to_end(key)
        while len(self._saved) > self._max_saved:
            self._saved.popitem(last=False)

    def _restore(self, key: tuple[int, ...]) -> bool:
        state = self._saved.get(key)
        if state is None:
            return False
        self._truncate(0)
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if self._lib.llama_state_seq_set_data(self.llama._ctx.ctx, buffer, len(state), 0) == 0:
            del self._saved[key]  # could not be restored: computed again
            return False
        self.llama.input_ids[: len(key)] = key
        self.llama.n_tokens = len(key)
        self._saved.move_to_end(key)
        return True

    # -- generating ------------------------------------------------------------------------------

    def _draft(self, current: int, room: int) -> list[int]:
        """The tokens that followed the last few tokens where they occurred before."""
        llama = self.llama
        room = min(room, self.lookup, llama.n_ctx() - llama.n_tokens - 1)
        if room <= 0:
            return []
        context = np.append(llama.input_ids[: llama.n_tokens], current).astype(np.intc)
        return [int(t) for t in lookup(context, self.ngram, MIN_NGRAM, room)]

    def _evaluate(self, batch: list[int]) -> np.ndarray:
        """Evaluate ``batch`` after the cache; the logits after each of its tokens."""
        llama = self.llama
        start = llama.n_tokens
        llama._ctx.kv_cache_seq_rm(-1, start, -1)
        llama._batch.set_batch(batch=batch, n_past=start, logits_all=True)
        llama._ctx.decode(llama._batch)
        llama.input_ids[start : start + len(batch)] = batch
        llama.n_tokens = start + len(batch)
        pointer = llama._ctx.get_logits()
        return np.ctypeslib.as_array(pointer, shape=(len(batch), self._n_vocab))
