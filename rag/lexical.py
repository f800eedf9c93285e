"""BM25 over jieba tokens of the normalized text (bm25s), derived from the Chroma collection.

The index is persisted beside the collection with the collection's ``index_version``; it is rebuilt
when that version moves (another process ingested, a document was deleted).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.text import normalize

_USERDICT = Path(__file__).parent / "data" / "userdict.txt"
_TOKEN = re.compile(r"[\w%.]+")
STOPWORDS = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "和",
        "与",
        "及",
        "或",
        "等",
        "对",
        "为",
        "把",
        "被",
        "将",
        "从",
        "由",
        "以",
        "于",
        "据",
        "根据",
        "之",
        "其",
        "这",
        "那",
        "也",
        "都",
        "而",
        "并",
        "就",
        "有",
        "个",
        "中",
        "上",
        "下",
        "吗",
        "呢",
        "吧",
        "啊",
        "多少",
        "什么",
        "哪些",
        "哪个",
        "哪",
        "怎么",
        "如何",
        "几",
        "是否",
        "请问",
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "to",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "what",
        "which",
        "how",
        "many",
        "much",
    ]
)


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.load_userdict(str(_USERDICT))
    return tok


def tokenize(text: str) -> list[str]:
    """Search-mode jieba tokens of the normalized, lower-cased text, without stopwords."""
    tokens = []
    for tok in _jieba().cut_for_search(normalize(text).lower()):
        tok = tok.strip()
        if tok and tok not in STOPWORDS and _TOKEN.fullmatch(tok):
            tokens.append(tok)
    return tokens


class Words(Protocol):
    """What answering asks of an index's vocabulary: how rare a word is, whether it occurs."""

    def idf(self, token: str) -> float: ...

    def knows(self, token: str) -> bool: ...


def idf(df: int, n: int) -> float:
    """BM25's inverse document frequency of a token held by ``df`` of ``n`` chunks (0 if none)."""
    return float(np.log(1 + (n - df + 0.5) / (df + 0.5))) if df else 0.0


@dataclass(frozen=True)
class Vocabulary:
    """Several indexes' words as one (a question asked of several knowledge bases): a token's
    document frequency is its sum over them, so its idf is the one a single index of all their
    chunks would give."""

    indexes: tuple[LexicalIndex, ...]

    def idf(self, token: str) -> float:
        return idf(sum(i.df(token) for i in self.indexes), sum(i.size for i in self.indexes))

    def knows(self, token: str) -> bool:
        return any(i.knows(token) for i in self.indexes)


@dataclass
class LexicalIndex:
    """A BM25 index over chunk ids, with the store version it was built from."""

    ids: list[str]
    version: int
    bm25: Any  # bm25s.BM25 (None when the corpus is empty)

    @classmethod
    def build(cls, ids: list[str], texts: list[str], version: int) -> LexicalIndex:
        import bm25s

        if not ids:
            return cls([], version, None)
        bm25 = bm25s.BM25()
        bm25.index([tokenize(t) for t in texts], show_progress=False)
        return cls(ids, version, bm25)

    @cached_property
    def position(self) -> dict[str, int]:
        """Chunk id → its place in ``ids``."""
        return {cid: i for i, cid in enumerate(self.ids)}

    def holds(self, cid: str) -> bool:
        """Whether the chunk was committed at ``version`` (the index holds exactly those)."""
        return cid in self.position

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk (aligned with ``ids``)."""
        if self.bm25 is None:
            return np.zeros(0, dtype=np.float32)
        tokens = self.known_tokens(tokenize(query))
        if not tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)

    def known_tokens(self, tokens: list[str]) -> list[str]:
        """The query's tokens the index knows; one it never saw (jieba cut the question another
        way than the passage: ``潘淑是`` against ``潘淑``) is split into the longest pieces of at
        least two characters that it knows, left to right."""
        vocab = self.bm25.vocab_dict
        known: list[str] = []
        for tok in tokens:
            if tok in vocab:
                known.append(tok)
                continue
            i = 0
            while i < len(tok) - 1:
                j = next((j for j in range(len(tok), i + 1, -1) if tok[i:j] in vocab), None)
                if j is None:
                    i += 1
                elif tok[i:j] in STOPWORDS:
                    i = j
                else:
                    known.append(tok[i:j])
                    i = j
        return known

    @property
    def size(self) -> int:
        """The chunks indexed."""
        return len(self.ids)

    def df(self, token: str) -> int:
        """The chunks holding a token (0 for an unknown token)."""
        if self.bm25 is None or token not in self.bm25.vocab_dict:
            return 0
        tid = self.bm25.vocab_dict[token]
        indptr = self.bm25.scores["indptr"]
        return int(indptr[tid + 1] - indptr[tid]) if tid + 1 < len(indptr) else 1

    def idf(self, token: str) -> float:
        """Inverse document frequency of a token over the chunks (0 for an unknown token)."""
        return idf(self.df(token), self.size)

    def knows(self, token: str) -> bool:
        return self.bm25 is not None and token in self.bm25.vocab_dict

    # -- persistence -----------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".lexical.", dir=folder.parent))
        try:
            if self.bm25 is not None:
                self.bm25.save(str(tmp / "bm25"), show_progress=False)
            (tmp / "meta.json").write_text(json.dumps({"version": self.version, "ids": self.ids}))
            if folder.exists():
                shutil.rmtree(folder)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        import bm25s

        try:
            meta = json.loads((folder / "meta.json").read_text())
            bm25 = (
                bm25s.BM25.load(str(folder / "bm25"), show_progress=False) if meta["ids"] else None
            )
        except (OSError, ValueError, KeyError):
            return None
        return cls(meta["ids"], int(meta["version"]), bm25)


class LexicalIndexCache:
    """Keeps the current index in memory; rebuilds it (and persists it) when the store moved."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._index: LexicalIndex | None = None
        self._lock = threading.Lock()

    def get(self, version: int, corpus: Any) -> LexicalIndex:
        """``corpus()`` yields ``(id, text)`` pairs; called only when a rebuild is needed."""
        with self._lock:
            if self._index is None or self._index.version != version:
                loaded = LexicalIndex.load(self.folder)
                if loaded is not None and loaded.version == version:
                    self._index = loaded
                else:
                    pairs = list(corpus())
                    self._index = LexicalIndex.build(
                        [i for i, _ in pairs], [t for _, t in pairs], version
                    )
                    self._index.save(self.folder)
            return self._index
