"""BM25 over jieba tokens, kept as immutable segments that grow with the corpus.

A chunk's tokens are computed once, at ingest (``tokenize``), and stored with it. A *segment*
holds the postings of some chunks (each token's chunks and term frequencies) and their lengths,
written once into a folder of numpy arrays that every process opens memory-mapped, so replicas
sharing a data dir share its pages instead of each holding a copy. An index is a few segments
plus, for each, the chunks that no longer count (their document was deleted or replaced by a
newer version in a later segment): new chunks go into a new small segment, a deletion is a mask,
and segments are merged in the background (``Segment.merge``) without re-tokenizing anything.

Scores are computed at query time from term frequencies and the statistics of all the chunks
that count (their number, the documents holding a token, the mean length), with the formula of
bm25s's default Lucene variant in the same floating-point steps: an index of several segments
and masks ranks exactly as bm25s built afresh over the same chunks would (a test checks it).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import pairwise
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


def join_tokens(tokens: Iterable[str]) -> str:
    """Tokens as stored with a chunk: space-separated (a token never holds a space)."""
    return " ".join(tokens)


class Words(Protocol):
    """What answering asks of an index's vocabulary: how rare a word is, whether it occurs."""

    def idf(self, token: str) -> float: ...

    def knows(self, token: str) -> bool: ...


def idf(df: int, n: int) -> float:
    """BM25's inverse document frequency of a token held by ``df`` of ``n`` chunks (0 if none),
    Lucene's variant as bm25s computes it."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5)) if df else 0.0


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


def top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest positive scores, best first, ties in index order (as a stable
    sort of all scores would give), without sorting them all: a partition finds the n-th best, so
    the cost stays linear however large the index."""
    pos = np.flatnonzero(scores > 0)
    if n <= 0:
        return pos[:0]
    if pos.size > n:
        vals = scores[pos]
        kth = np.partition(vals, pos.size - n)[pos.size - n]  # the n-th highest
        above = pos[vals > kth]
        pos = np.concatenate([above, pos[vals == kth][: n - above.size]])
    return pos[np.lexsort((pos, -scores[pos]))]


# -- segments ------------------------------------------------------------------------------------

# bm25s's defaults (method "lucene"), the library this index replaced: the same scores
K1, B = 1.5, 0.75
FORMAT = 1


def token_hash(token: str) -> int:
    """A 64-bit hash of a token, the same in every process (Python's ``hash`` is salted)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


class Pack:
    """Named arrays and a JSON header in one file, opened as one read-only memory map: the
    processes that open it share its pages, and it holds one file descriptor however many
    arrays it has. Written whole to a temporary name, then renamed: never seen half-written."""

    ALIGN = 64

    def __init__(self, path: Path) -> None:
        self.path = path
        raw = np.memmap(path, dtype=np.uint8, mode="r")
        size = int(raw[:8].view("<u8")[0])
        self.meta: dict[str, Any] = json.loads(bytes(raw[8 : 8 + size]))
        self._raw = raw

    def array(self, name: str) -> np.ndarray:
        dtype, offset, count = self.meta["arrays"][name]
        nbytes = count * np.dtype(dtype).itemsize
        return self._raw[offset : offset + nbytes].view(dtype)

    def bytes(self, name: str) -> bytes:
        return bytes(self.array(name))

    @classmethod
    def write(cls, path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Pack:
        layout: dict[str, list[Any]] = {}
        start, header = 0, b""
        while start != cls._aligned(8 + len(header)):  # the header's length moves the offsets
            start = offset = cls._aligned(8 + len(header))
            for name, a in arrays.items():
                layout[name] = [a.dtype.str, offset, int(a.size)]
                offset = cls._aligned(offset + a.nbytes)
            header = json.dumps({**meta, "arrays": layout}).encode()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            f.write(np.uint64(len(header)).astype("<u8").tobytes() + header)
            for name, a in arrays.items():
                f.seek(layout[name][1])
                f.write(np.ascontiguousarray(a).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return cls(path)

    @classmethod
    def _aligned(cls, n: int) -> int:
        return -(-n // cls.ALIGN) * cls.ALIGN


def encode_strings(items: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as one UTF-8 blob and their offsets (``Strings`` reads them back)."""
    encoded = [s.encode() for s in items]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


class Strings:
    """A list of strings kept as a UTF-8 blob and offsets (views into a ``Pack``), decoded one
    item at a time."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self.blob = blob
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return bytes(self.blob[self.offsets[i] : self.offsets[i + 1]]).decode()

    def all(self) -> list[str]:
        raw = bytes(self.blob)
        return [raw[a:b].decode() for a, b in pairwise(self.offsets.tolist())]


class Segment:
    """BM25 postings of some chunks, in a ``Pack`` (written once, read memory-mapped).

    Arrays: ``ids`` (chunk ids, row order), ``dl`` (tokens per chunk), ``vocab`` (tokens in id
    order), ``indptr`` / ``rows`` / ``tf`` (each token's chunks and term frequencies, by token
    id), ``vhash`` / ``vhash_id`` (the tokens' hashes, sorted, with their ids: a token is found
    without a dictionary in memory)."""

    def __init__(self, pack: Pack) -> None:
        meta = pack.meta.get("lexical", {})
        if meta.get("format") != FORMAT:
            raise ValueError(f"{pack.path}: not a lexical segment of format {FORMAT}")
        self.pack = pack
        self.size = int(meta["rows"])
        self.total_tokens = int(meta["tokens"])
        self.dl = pack.array("dl")
        self.indptr = pack.array("indptr")
        self.rows = pack.array("rows")
        self.tf = pack.array("tf")
        self.vhash = pack.array("vhash")
        self.vhash_id = pack.array("vhash_id")
        self.ids = Strings(pack.array("ids"), pack.array("ids_off"))
        self.vocab = Strings(pack.array("vocab"), pack.array("vocab_off"))

    def token_id(self, token: str, h: int | None = None) -> int | None:
        """The id of a token, or None if no chunk of the segment holds it."""
        key = np.uint64(token_hash(token) if h is None else h)
        i = int(np.searchsorted(self.vhash, key))
        while i < len(self.vhash) and self.vhash[i] == key:
            tid = int(self.vhash_id[i])
            if self.vocab[tid] == token:
                return tid
            i += 1
        return None

    def postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows holding token ``tid`` (ascending) and its frequency in each."""
        a, b = int(self.indptr[tid]), int(self.indptr[tid + 1])
        return self.rows[a:b], self.tf[a:b]

    # -- building: the arrays of a new segment, to write into a pack -----------------------------

    @staticmethod
    def arrays(rows: Iterable[tuple[str, Iterable[str]]]) -> Arrays:
        """A segment of chunks given as ``(chunk id, tokens)``, consumed one at a time: memory
        holds each chunk's token counts, not its tokens."""
        ids: list[str] = []
        dl: list[int] = []
        vocab: dict[str, int] = {}
        tids, rows_of, tfs = array("i"), array("i"), array("I")
        for row, (cid, tokens) in enumerate(rows):
            ids.append(cid)
            counts: dict[int, int] = {}
            for t in tokens:
                tid = vocab.setdefault(t, len(vocab))
                counts[tid] = counts.get(tid, 0) + 1
            dl.append(sum(counts.values()))
            tids.extend(counts)
            tfs.extend(counts.values())
            rows_of.extend([row] * len(counts))
        tok = np.frombuffer(tids, dtype=np.int32)
        order = np.argsort(tok, kind="stable")  # by token; rows stay ascending within one
        return _arrays(
            ids,
            np.asarray(dl, dtype=np.int64),
            list(vocab),
            tok[order].astype(np.int64),
            np.frombuffer(rows_of, dtype=np.int32)[order],
            np.frombuffer(tfs, dtype=np.uint32)[order],
        )

    @staticmethod
    def merged(parts: Sequence[tuple[Segment, np.ndarray | None]]) -> Arrays:
        """A segment of the rows of ``parts`` that each mask keeps (None: all), from their
        postings: nothing is tokenized again."""
        vocab: dict[str, int] = {}
        ids: list[str] = []
        dls, toks, rows, tfs = [], [], [], []
        base = 0
        for seg, keep in parts:
            keep = np.ones(seg.size, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
            new_row = np.cumsum(keep) - 1 + base
            mapping = np.fromiter(
                (vocab.setdefault(t, len(vocab)) for t in seg.vocab.all()),
                dtype=np.int64,
                count=len(seg.vocab),
            )
            r = np.asarray(seg.rows)
            live = keep[r]
            tid = np.repeat(np.arange(len(seg.vocab), dtype=np.int64), np.diff(seg.indptr))
            toks.append(mapping[tid[live]])
            rows.append(new_row[r[live]])
            tfs.append(np.asarray(seg.tf)[live])
            dls.append(np.asarray(seg.dl)[keep])
            ids += [seg.ids[int(i)] for i in np.flatnonzero(keep)]
            base += int(keep.sum())
        empty = np.zeros(0, dtype=np.int64)
        tok = np.concatenate(toks) if toks else empty
        order = np.argsort(tok, kind="stable")  # rows stay ascending within a token
        return _arrays(
            ids,
            np.concatenate(dls) if dls else empty,
            list(vocab),
            tok[order],
            np.concatenate(rows)[order] if rows else empty,
            np.concatenate(tfs)[order] if tfs else empty,
        )


@dataclass(frozen=True)
class Arrays:
    """A segment's arrays and header, ready to write into a ``Pack`` (with others beside)."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def write(self, path: Path) -> Segment:
        return Segment(Pack.write(path, self.arrays, {"lexical": self.meta}))


def _arrays(
    ids: list[str],
    dl: np.ndarray,
    vocab: list[str],
    tok: np.ndarray,
    rows: np.ndarray,
    tf: np.ndarray,
) -> Arrays:
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(np.bincount(tok, minlength=len(vocab)), out=indptr[1:])
    hashes = np.fromiter((token_hash(t) for t in vocab), dtype=np.uint64, count=len(vocab))
    order = np.argsort(hashes, kind="stable")
    small = tf.size == 0 or int(tf.max()) <= np.iinfo(np.uint16).max
    id_blob, id_off = encode_strings(ids)
    vocab_blob, vocab_off = encode_strings(vocab)
    arrays: dict[str, np.ndarray] = {
        "dl": dl.astype(np.int32),
        "indptr": indptr,
        "rows": rows.astype(np.int32),
        "tf": tf.astype(np.uint16 if small else np.uint32),
        "vhash": hashes[order],
        "vhash_id": order.astype(np.int32),
        "ids": id_blob,
        "ids_off": id_off,
        "vocab": vocab_blob,
        "vocab_off": vocab_off,
    }
    meta = {"format": FORMAT, "rows": len(ids), "tokens": int(dl.sum()), "vocab": len(vocab)}
    return Arrays(arrays, meta)


@dataclass(frozen=True, eq=False)
class Part:
    """A segment in an index, and which of its rows no longer count (None: all count)."""

    segment: Segment
    dead: np.ndarray | None = None

    @cached_property
    def live_rows(self) -> int:
        return self.segment.size - (int(self.dead.sum()) if self.dead is not None else 0)

    @cached_property
    def live_tokens(self) -> int:
        if self.dead is None:
            return self.segment.total_tokens
        return self.segment.total_tokens - int(np.asarray(self.segment.dl)[self.dead].sum())


Postings = tuple[int, np.ndarray, np.ndarray]  # (part, rows, term frequencies)


@dataclass(frozen=True, eq=False)
class LexicalIndex:
    """BM25 over the live rows of some segments, with the store version it stands for.

    ``holds(chunk_id)`` says whether a chunk is committed at that version (the index is also the
    snapshot that tells a committed chunk from a write in flight)."""

    parts: tuple[Part, ...]
    version: int
    holds: Callable[[str], bool] = field(default=lambda cid: False, compare=False)

    @cached_property
    def size(self) -> int:
        """The chunks indexed."""
        return sum(p.live_rows for p in self.parts)

    @cached_property
    def _avgdl(self) -> np.float64:
        # as bm25s: the mean of the chunks' token counts, as a float64 scalar
        return np.float64(sum(p.live_tokens for p in self.parts)) / np.float64(max(self.size, 1))

    @cached_property
    def _offsets(self) -> np.ndarray:
        return np.cumsum([0] + [p.segment.size for p in self.parts])

    # -- the vocabulary --------------------------------------------------------------------------

    @cached_property
    def _lookup(self) -> Callable[[str], list[Postings]]:
        """Each part's live postings of a token, remembered (the index never changes)."""
        return lru_cache(maxsize=16384)(self._find)

    def _find(self, token: str) -> list[Postings]:
        h = token_hash(token)
        found = []
        for k, p in enumerate(self.parts):
            tid = p.segment.token_id(token, h)
            if tid is None:
                continue
            rows, tf = p.segment.postings(tid)
            if p.dead is not None:
                alive = ~p.dead[rows]
                rows, tf = rows[alive], tf[alive]
            if rows.size:
                found.append((k, rows, tf))
        return found

    def df(self, token: str) -> int:
        """The chunks holding a token (0 for an unknown token)."""
        return sum(rows.size for _, rows, _ in self._lookup(token))

    def idf(self, token: str) -> float:
        """Inverse document frequency of a token over the chunks (0 for an unknown token)."""
        return idf(self.df(token), self.size)

    def knows(self, token: str) -> bool:
        return bool(self._lookup(token))

    def known_tokens(self, tokens: list[str]) -> list[str]:
        """The query's tokens the index knows; one it never saw (jieba cut the question another
        way than the passage: ``潘淑是`` against ``潘淑``) is split into the longest pieces of at
        least two characters that it knows, left to right."""
        known: list[str] = []
        for tok in tokens:
            if self.knows(tok):
                known.append(tok)
                continue
            i = 0
            while i < len(tok) - 1:
                j = next((j for j in range(len(tok), i + 1, -1) if self.knows(tok[i:j])), None)
                if j is None:
                    i += 1
                elif tok[i:j] in STOPWORDS:
                    i = j
                else:
                    known.append(tok[i:j])
                    i = j
        return known

    # -- scores ----------------------------------------------------------------------------------

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row of the parts, in order (0 for a row that no longer counts).

        Each occurrence of a query token adds idf × tf / (tf + k1·(1 − b + b·dl/avgdl)), computed
        in float64 and added in float32 in the order of the query's tokens, as bm25s does."""
        out = [np.zeros(p.segment.size, dtype=np.float32) for p in self.parts]
        n = self.size
        for token in self.known_tokens(tokenize(query)):
            found = self._lookup(token)
            weight = np.float32(idf(sum(rows.size for _, rows, _ in found), n))
            for k, rows, tf in found:
                dl = np.asarray(self.parts[k].segment.dl)[rows].astype(np.float64)
                tf32 = tf.astype(np.float32)
                tfc = tf32 / (K1 * ((1 - B) + B * dl / self._avgdl) + tf32)
                out[k][rows] += (weight * tfc).astype(np.float32)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def chunk_id(self, i: int) -> str:
        """The chunk id of row ``i`` of ``scores``."""
        k = int(np.searchsorted(self._offsets, i, side="right")) - 1
        return self.parts[k].segment.ids[i - int(self._offsets[k])]

    def top(self, query: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` best chunks for ``query`` with their scores, best first."""
        scores = self.scores(query)
        return [(self.chunk_id(int(i)), float(scores[i])) for i in top_positive(scores, n)]

    @classmethod
    def build(cls, path: Path, ids: Sequence[str], texts: Sequence[str]) -> LexicalIndex:
        """An index of one segment, written to ``path``, over ``texts`` (tokenized here), every
        chunk held."""
        segment = Segment.arrays(zip(ids, map(tokenize, texts), strict=True)).write(path)
        held = set(ids)
        return cls((Part(segment),), 0, held.__contains__)
