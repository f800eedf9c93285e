"""Scale: one index grown in steps (1k, 10k, 100k chunks) from the CRUD-RAG news corpus; at each
step ingest throughput, index size on disk, memory, and query latency of each retriever.

    python bench/scale.py                              # steps 1000, 10000, 100000 (hours: embedding)
    python bench/scale.py --max-chunks 2000            # steps 1000, 2000 (a few minutes)
    python bench/scale.py --steps 500,5000 --queries 50
    python bench/scale.py --fill-cache                 # only embed into the cache (resumable),
                                                       # then run without --fill-cache

Corpus: ../shared/data/crud_news/docs.jsonl.gz (68,221 Chinese news documents, one JSON object
{"id", "text"} per line, read as a stream, never whole; see its README: internal benchmarking
only). Each document goes in as "<id>.txt" through the real pipeline
(RAGService.ingest_bytes: load → clean → chunk → embed → write), documents in file order.

Steps: the index starts empty and grows; before a step, documents are added until the index holds
at least that many chunks (a planning pass chunks the documents beforehand, untimed, to know how
many), so a step's chunk count is the index's real count, a little above the step. --max-chunks N
drops the steps above N and ends with N. If the corpus runs out, the last step holds what it has.

Per step:
- ingest: seconds, chunks/s, and that as a fraction of the raw embedder's throughput. The raw
  embedder is measured once in the same run, warm, on a fixed sample (--raw-sample, the corpus's
  first chunk texts as the pipeline embeds them, in the pipeline's length-sorted batches). Beside
  it: the model's own pace inside the step (chunks embedded / seconds in the model; far from the
  raw figure = the machine's load changed between the two) and the rest of the pipeline in ms per
  chunk (loading, cleaning, chunking, metadata, facts, Chroma writes);
- vectors come from an embedding cache when a previous run embedded the same texts (a sqlite file
  beside the data dir, keyed by sha256 of model, backend, prompt and text). Such a step is marked
  "cached": its chunks/s is the pipeline without embedding and no fraction of raw is given. The
  counts of chunks embedded and taken from the cache are reported either way;
- index size on disk (Chroma folder + BM25 folder), process RSS now and peak;
- the BM25 build: the service rebuilds its lexical index on the first query after the index moved;
  that first query (and the first dense and hybrid ones) is timed apart and left out of the
  percentiles;
- query latency p50/p95/mean of dense, BM25 and hybrid (RAGService.search with mode=..., as the
  eval harness calls it; the query embedding is included) over --queries questions, the three
  retrievers taking turns question by question. Questions: one clause (10-40 characters) of each
  of --queries indexed documents sampled with --seed; recall@k (k = --top-k) of that document is
  reported as a sanity check (near-duplicate news items make it < 1).

Target: at 100k chunks on 2 cores, hybrid p95 <= 50 ms.

Output: two tables, JSON (machine, settings, every figure) and a PNG plot of p50/p95 latency vs
chunks per retriever, both as <results dir>/scale-<UTC timestamp>.{json,png}.

Data dir (--data-dir, default <RAG_DATA_DIR>/bench/scale): the index is wiped at the start of every
run (a folder this script did not make is refused); the embedding cache file beside it is kept,
so a rerun does not re-embed. --fresh deletes the cache too: every vector is embedded again.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `bench` (or a root's code) importable
    sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parents[1]))

from bench._results import RESULTS_DIR, stamp, write_json
from eval import metrics as M
from eval.runner import RETRIEVAL_DEPTH
from rag.chunking import chunk_document
from rag.config import EmbeddingSettings, Settings
from rag.embeddings import Embedder
from rag.ingest import build_document, encode_sorted, make_doc_id
from rag.loaders import LoadError, load_bytes
from rag.retrieval import SearchMode
from rag.service import RAGService
from rag.text import index_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
ROOT_ENV = "BENCH_ROOT"  # set for a root's worker: that checkout's code comes first
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "crud_news" / "docs.jsonl.gz"
DEFAULT_STEPS = "1000,10000,100000"
RETRIEVERS: tuple[SearchMode, ...] = ("dense", "bm25", "hybrid")
TARGET_CHUNKS, TARGET_HYBRID_P95_MS = 100_000, 50.0
MARKER = ".bench-scale"  # written into the data dir: only such a folder is ever wiped
QUERY_MIN, QUERY_MAX = 10, 40
_CLAUSE = re.compile(r"[，,。！？!?；;\n]+")

out = Console(width=None if sys.stdout.isatty() else 200)  # a log keeps whole rows
err = Console(stderr=True)


# -- the embedding cache -------------------------------------------------------------------------


def embedder_backend(settings: EmbeddingSettings) -> str:
    """What computes the vectors, for the cache key: ``remote``, ``torch`` or ``onnx-int8``."""
    return Embedder(settings, Path(".")).backend  # resolves `auto`; loads nothing


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(text).name or text).strip("_") or "model"


def cache_path(data_dir: Path, settings: EmbeddingSettings) -> Path:
    """Beside the data dir, so a wiped index keeps its cache."""
    name = f"scale-embcache-{_slug(settings.model)}-{_slug(embedder_backend(settings))}.sqlite"
    return data_dir.parent / name


class CachedEmbedder(Embedder):
    """The real embedder; passage vectors are kept in a sqlite file and reused across runs.

    Counts what it embedded, what it took from the cache, and the seconds spent in the model.
    Queries are never cached (their embedding is part of the measured latency).
    """

    def __init__(self, settings: EmbeddingSettings, models_dir: Path, path: Path) -> None:
        super().__init__(settings, models_dir)
        self.cache_file = path
        self.cache_tag = f"{settings.model}\0{embedder_backend(settings)}"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"
        )
        self._lock = threading.Lock()
        self.embedded = 0
        self.cached = 0
        self.embed_seconds = 0.0

    def reset_counts(self) -> None:
        self.embedded, self.cached, self.embed_seconds = 0, 0, 0.0

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.cache_tag}\0{self.passage_prompt}\0{text}".encode()).digest()

    def encode_uncached(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """The model itself, cache bypassed (the raw throughput measurement)."""
        return super().encode_passages(texts, batch_size)

    def encode_passages(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return super().encode_passages(texts, batch_size)
        keys = [self._key(t) for t in texts]
        found: dict[bytes, bytes] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                marks = ",".join("?" * len(part))
                found.update(
                    self._db.execute(
                        f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part
                    ).fetchall()
                )
        missing = [i for i, k in enumerate(keys) if k not in found]
        fresh = np.zeros((0, 0), dtype=np.float32)
        if missing:
            t0 = time.perf_counter()
            fresh = super().encode_passages([texts[i] for i in missing], batch_size)
            self.embed_seconds += time.perf_counter() - t0
            with self._lock:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)",
                    [
                        (keys[i], np.asarray(v, dtype="<f4").tobytes())
                        for i, v in zip(missing, fresh, strict=True)
                    ],
                )
                self._db.commit()
        self.embedded += len(missing)
        self.cached += len(texts) - len(missing)
        dim = fresh.shape[1] if missing else len(found[keys[0]]) // 4
        vectors = np.empty((len(texts), dim), dtype=np.float32)
        for j, i in enumerate(missing):
            vectors[i] = fresh[j]
        for i, k in enumerate(keys):
            if k in found:
                vectors[i] = np.frombuffer(found[k], dtype="<f4")
        return vectors

    def close(self) -> None:
        with self._lock:
            self._db.close()


# -- the corpus ----------------------------------------------------------------------------------


def read_corpus(path: Path) -> Generator[tuple[str, str]]:
    """``(id, text)`` per line of the gzipped JSON Lines file, streamed."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                yield str(row["id"]), str(row["text"])


def pick_query(doc_id: str, text: str, seed: int) -> str | None:
    """One clause of the document, 10-40 characters, chosen reproducibly (seed, doc id)."""
    clauses = [
        c.strip()
        for c in _CLAUSE.split(text)
        if QUERY_MIN <= len(c.strip()) <= QUERY_MAX and "正文" not in c and not c.startswith("[")
    ]
    rng = random.Random(f"{seed}|{doc_id}")
    if clauses:
        return rng.choice(clauses)
    body = text.split("正文：", 1)[-1].strip()
    if len(body) < QUERY_MIN:
        return None
    start = rng.randrange(0, max(1, len(body) - 20))
    return body[start : start + 20]


@dataclass
class Plan:
    """What the planning pass found: documents to take per step, queries, the raw sample."""

    steps: list[int]  # the steps that can be reached (the last one may be capped)
    docs_needed: list[int]  # cumulative documents (file order) to reach each step
    chunks_expected: list[int]
    exhausted: bool
    queries: dict[str, str] = field(default_factory=dict)  # doc_id → query
    sample: list[str] = field(default_factory=list)  # index texts for the raw measurement
    seconds: float = 0.0


def plan(path: Path, steps: list[int], settings: Settings, seed: int, sample_size: int) -> Plan:
    """Chunk the documents as the ingestor will (untimed): how many to take for each step."""
    t0 = time.perf_counter()
    c = settings.chunking
    p = Plan(steps=[], docs_needed=[], chunks_expected=[], exhausted=False)
    total = docs = 0
    pending = list(steps)
    with err.status("planning: chunking the corpus to size the steps") as status:
        for doc_id, text in read_corpus(path):
            if not pending:
                break
            docs += 1
            source = f"{doc_id}.txt"
            data = text.encode("utf-8")
            try:
                loaded = load_bytes(data, ".txt")
            except LoadError:
                continue
            chunks = chunk_document(
                make_doc_id(source), loaded.text, c.target_chars, c.max_chars, c.overlap_sentences
            )
            total += len(chunks)
            if chunks and (q := pick_query(make_doc_id(source), loaded.text, seed)):
                p.queries[make_doc_id(source)] = q
            if len(p.sample) < sample_size and chunks:
                doc = build_document(source, loaded, "plan")
                for ch in chunks[: sample_size - len(p.sample)]:
                    p.sample.append(index_text(doc.title, doc.region, ch.text))
            while pending and total >= pending[0]:
                p.steps.append(pending.pop(0))
                p.docs_needed.append(docs)
                p.chunks_expected.append(total)
            if docs % 2000 == 0:
                status.update(f"planning: {docs} documents, {total} chunks")
        p.exhausted = bool(pending)
        if pending and total > (p.chunks_expected[-1] if p.chunks_expected else 0):
            p.steps.append(pending[0])  # the corpus ran out: a last, capped step
            p.docs_needed.append(docs)
            p.chunks_expected.append(total)
    p.seconds = time.perf_counter() - t0
    return p


def feed(docs: Iterator[tuple[str, str]], n: int) -> Iterator[tuple[str, bytes]]:
    """The next ``n`` documents as ``(<id>.txt, utf-8 bytes)``, lazily."""
    for doc_id, text in itertools.islice(docs, n):
        yield f"{doc_id}.txt", text.encode("utf-8")


# -- measurements --------------------------------------------------------------------------------


def chunk_progress(transient: bool) -> Progress:
    """A progress display counting chunks, on stderr."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
    )


class _Bar:
    """The ingestor's ``Progress`` protocol on a rich progress bar (totals may come in parts)."""

    def __init__(self, progress: Progress, description: str, planned: int) -> None:
        self.progress = progress
        self.planned = planned
        self.announced = 0
        self.task: TaskID = progress.add_task(description, total=planned)

    def add_total(self, chunks: int) -> None:
        self.announced += chunks
        self.progress.update(self.task, total=max(self.planned, self.announced))

    def advance(self, chunks: int) -> None:
        self.progress.advance(self.task, chunks)

    def finished(self, results: object) -> None:
        """Per-file results are not shown here."""


def disk_bytes(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def memory_mib() -> dict[str, float | None]:
    """Resident set size now and at its peak, and the part of it that is anonymous memory (the
    process's own) and mapped files (shared with other processes mapping them); Linux /proc
    (elsewhere the peak from getrusage)."""
    fields = {
        "VmRSS": "rss_mib",
        "VmHWM": "peak_rss_mib",
        "RssAnon": "anon_mib",
        "RssFile": "file_mib",
    }
    found: dict[str, float | None] = dict.fromkeys(fields.values())
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in fields:
                found[fields[key]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    if found["peak_rss_mib"] is None:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        found["peak_rss_mib"] = maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return {k: _r(v, 1) for k, v in found.items()}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(
            (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if "model name" in ln),
            None,
        )
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory_gib"] = round(int(mem) / 1024**2, 1)
    except (OSError, IndexError, ValueError):
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    return info


def raw_throughput(embedder: CachedEmbedder, texts: list[str]) -> dict[str, Any]:
    """The model alone on ``texts``, in the batches the ingestor forms (longest first)."""
    order = sorted(texts, key=len, reverse=True)
    bs = embedder.batch_size
    t0 = time.perf_counter()
    for i in range(0, len(order), bs):
        embedder.encode_uncached(order[i : i + bs], batch_size=bs)
    seconds = time.perf_counter() - t0
    return {
        "chunks": len(texts),
        "mean_chars": _r(sum(map(len, texts)) / max(1, len(texts)), 1),
        "batch_size": bs,
        "seconds": _r(seconds, 2),
        "chunks_per_s": _r(len(texts) / seconds, 2) if seconds > 0 else None,
    }


def choose_queries(
    indexed: list[str], queries: dict[str, str], n: int, seed: int, step: int
) -> list[tuple[str, str]]:
    """``n`` (doc_id, query) pairs from the indexed documents (with replacement only when the
    index holds fewer documents than ``n``)."""
    pool = [d for d in indexed if d in queries]
    if not pool:
        return []
    rng = random.Random(seed * 1_000_003 + step)
    picked = rng.sample(pool, min(n, len(pool)))
    if len(picked) < n:
        picked += rng.choices(pool, k=n - len(picked))
    return [(d, queries[d]) for d in picked]


def measure_queries(
    service: RAGService, asked: list[tuple[str, str]], top_k: int
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """First query of each retriever (BM25 first: it builds the lexical index) timed apart, then
    one pass of every question per retriever (not the three retrievers on one question in turn:
    the second and third would find its chunks in the page cache)."""
    first: dict[str, float] = {}
    warm = asked[0][1]
    for mode in ("bm25", "dense", "hybrid"):
        t0 = time.perf_counter()
        service.search(warm, top_k=top_k, mode=mode)
        first[mode] = (time.perf_counter() - t0) * 1000
    ms: dict[str, list[float]] = {m: [] for m in RETRIEVERS}
    found: dict[str, list[float]] = {m: [] for m in RETRIEVERS}
    for mode in RETRIEVERS:
        for doc_id, q in asked:
            t0 = time.perf_counter()
            hits = service.search(q, top_k=top_k, mode=mode)
            ms[mode].append((time.perf_counter() - t0) * 1000)
            found[mode].append(float(any(h.doc_id == doc_id for h in hits)))
    stats: dict[str, dict[str, Any]] = {
        m: {
            "p50_ms": _r(M.percentile(ms[m], 50), 2),
            "p95_ms": _r(M.percentile(ms[m], 95), 2),
            "mean_ms": _r(M.mean(ms[m]), 2),
            "max_ms": _r(max(ms[m]), 2),
            f"recall_at_{top_k}": _r(M.mean(found[m]), 3),
        }
        for m in RETRIEVERS
    }
    return first, stats


def measure_update(
    service: RAGService,
    files: Iterator[tuple[str, bytes]],
    queries: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Ingest more documents into the grown index, then ask about them: the first query after
    the ingest (it meets whatever the ingest left to do: a rebuild, or a catch-up) and the
    following ones, each drawn from a new document, found or not in the top k."""
    t0 = time.perf_counter()
    summary = service.ingest_bytes(files)
    ingest_s = time.perf_counter() - t0
    added = [d for d in summary.documents if d.status == "added"]
    asked = [(d.doc_id, queries[d.doc_id]) for d in added if d.doc_id in queries]
    asked = random.Random(args.seed).sample(asked, min(len(asked), args.update_queries + 1))
    if not asked:
        raise SystemExit("no query could be drawn from the documents of the update")
    ms: list[float] = []
    found: list[float] = []
    for doc_id, q in asked:
        t0 = time.perf_counter()
        hits = service.search(q, top_k=args.top_k, mode="hybrid")
        ms.append((time.perf_counter() - t0) * 1000)
        found.append(float(any(h.doc_id == doc_id for h in hits)))
    err.print(f"update: {sum(d.chunks for d in added)} chunks, next query {ms[0]:.0f} ms")
    return {
        "documents": len(added),
        "chunks": sum(d.chunks for d in added),
        "ingest_seconds": _r(ingest_s, 2),
        "next_query_ms": _r(ms[0], 1),
        "next_query_found": bool(found[0]),
        "then_p50_ms": _r(M.percentile(ms[1:], 50), 2) if len(ms) > 1 else None,
        "then_p95_ms": _r(M.percentile(ms[1:], 95), 2) if len(ms) > 1 else None,
        "new_documents_found": _r(M.mean(found), 3),
        "queries": len(asked),
    }


COMPARISON = "哪个城市的地区生产总值增长最多?"


def cold_start(
    settings: Settings,
    data_dir: Path,
    indexed: list[str],
    queries: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """A replica started on the grown index (a new process with the checkout's code and default
    settings on the same data dir): seconds from its start to its first answer, its first
    comparison (which needs every fact), then query latency and its memory."""
    asked = choose_queries(indexed, queries, args.queries, args.seed, -1)
    with tempfile.TemporaryDirectory() as tmp:
        given = Path(tmp) / "replica-in.json"
        got = Path(tmp) / "replica-out.json"
        given.write_text(
            json.dumps({"question": asked[0][1], "comparison": COMPARISON, "queries": asked}),
            encoding="utf-8",
        )
        cmd = [sys.executable, str(Path(__file__).resolve()), "--replica", "--data-dir"]
        cmd += [str(data_dir), "--replica-input", str(given), "--json-out", str(got)]
        cmd += ["--top-k", str(args.top_k), "--t0", repr(time.time())]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        subprocess.run(cmd, check=True, env=env, cwd=tempfile.gettempdir())
        result: dict[str, Any] = json.loads(got.read_text())
    err.print(
        f"cold start: first answer after {result['first_answer_s']} s, "
        f"RSS {result['memory']['rss_mib']} MiB"
    )
    return result


def replica(args: argparse.Namespace) -> None:
    """The replica of ``cold_start``: timed from the moment its parent started it."""
    given = json.loads(args.replica_input.read_text(encoding="utf-8"))
    service = RAGService(Settings().model_copy(update={"data_dir": args.data_dir}))
    answer = service.answer(given["question"], backend="extractive")
    first = time.time() - args.t0
    t0 = time.perf_counter()
    compared = service.answer(given["comparison"], backend="extractive")
    comparison_s = time.perf_counter() - t0
    ms: list[float] = []
    found: list[float] = []
    for doc_id, q in given["queries"]:
        t0 = time.perf_counter()
        hits = service.search(q, top_k=args.top_k, mode="hybrid")
        ms.append((time.perf_counter() - t0) * 1000)
        found.append(float(any(h.doc_id == doc_id for h in hits)))
    result = {
        "first_answer_s": _r(first, 2),
        "first_answer_refused": answer.refused,
        "comparison_s": _r(comparison_s, 2),
        "comparison_facts": len(compared.facts or []),
        "hybrid_p50_ms": _r(M.percentile(ms, 50), 2),
        "hybrid_p95_ms": _r(M.percentile(ms, 95), 2),
        f"recall_at_{args.top_k}": _r(M.mean(found), 3),
        "memory": memory_mib(),
    }
    args.json_out.write_text(json.dumps(result), encoding="utf-8")


def targets(steps: list[int], update_chunks: int) -> list[int]:
    """The chunk counts the corpus is planned for: the steps, then the update beyond the last."""
    return steps + ([steps[-1] + update_chunks] if update_chunks else [])


# -- the run -------------------------------------------------------------------------------------


def parse_steps(steps: str, max_chunks: int | None) -> list[int]:
    try:
        values = sorted({int(s) for s in steps.split(",") if s.strip()})
    except ValueError as exc:
        raise SystemExit(f"--steps: comma-separated integers, not {steps!r}") from exc
    if max_chunks is not None:
        values = [v for v in values if v < max_chunks] + [max_chunks]
    if not values or values[0] < 1:
        raise SystemExit("--steps: at least one step, each >= 1")
    return values


def reset_data_dir(data_dir: Path) -> None:
    """Empty the index folder, refusing one this script did not make."""
    if data_dir.exists():
        entries = {p.name for p in data_dir.iterdir()}
        if entries and MARKER not in entries:
            raise SystemExit(
                f"{data_dir} is not empty and was not made by bench/scale.py; "
                "give another --data-dir"
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).write_text("index of bench/scale.py, wiped at the start of every run\n")


def run(args: argparse.Namespace) -> dict[str, Any]:
    steps = parse_steps(args.steps, args.max_chunks)
    if args.queries < 1 or args.raw_sample < 1 or args.top_k < 1:
        raise SystemExit("--queries, --raw-sample and --top-k: at least 1")
    if not args.corpus.exists():
        raise SystemExit(f"corpus not found: {args.corpus} (give --corpus)")
    base = Settings()
    data_dir: Path = args.data_dir or base.data_dir / "bench" / "scale"
    settings = base.model_copy(update={"data_dir": data_dir})
    cache = args.embedding_cache or cache_path(data_dir, settings.embedding)
    if args.fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{cache}{suffix}").unlink(missing_ok=True)
    reset_data_dir(data_dir)
    load_before = os.getloadavg()

    embedder = CachedEmbedder(settings.embedding, settings.models_dir, cache)
    service = RAGService(settings, embedder=embedder)
    service.store  # noqa: B018 - open Chroma before any timing

    p = plan(args.corpus, targets(steps, args.update_chunks), settings, args.seed, args.raw_sample)
    update = None
    if args.update_chunks and len(p.steps) > len(steps):  # the last target: the update's
        update = p.docs_needed.pop() - p.docs_needed[-1]
        p.steps.pop()
        p.chunks_expected.pop()
    err.print(
        f"plan: steps {p.steps} need {p.docs_needed} documents "
        f"(≈{p.chunks_expected} chunks), {p.seconds:.1f} s"
        + (" — the corpus runs out before the last step" if p.exhausted else "")
    )
    if not p.steps:
        raise SystemExit("the corpus holds no chunk")

    # Warm: model loaded, kernels ready, jieba dictionary loaded; then the raw embedder.
    embedder.encode_uncached(p.sample[:8])
    embedder.encode_query("预热")
    raw = raw_throughput(embedder, p.sample)
    err.print(f"raw embedder: {raw['chunks_per_s']} chunks/s on {raw['chunks']} chunks")

    docs = read_corpus(args.corpus)
    indexed: list[str] = []
    results: list[dict[str, Any]] = []
    previous_chunks = 0
    previous_docs = 0
    try:
        for step, needed, expected in zip(p.steps, p.docs_needed, p.chunks_expected, strict=True):
            embedder.reset_counts()
            with chunk_progress(transient=True) as progress:
                bar = _Bar(progress, f"step {step}: ingest", expected - previous_chunks)
                t0 = time.perf_counter()
                summary = service.ingest_bytes(feed(docs, needed - previous_docs), progress=bar)
                ingest_s = time.perf_counter() - t0
            previous_docs = needed
            added = [d for d in summary.documents if d.status == "added"]
            failed = [d for d in summary.documents if d.status == "failed"]
            indexed.extend(d.doc_id for d in summary.documents if d.status != "failed" and d.doc_id)
            committed = service.documents()
            chunks = sum(d.chunks for d in committed)
            new_chunks = chunks - previous_chunks
            previous_chunks = chunks
            from_cache = embedder.cached > 0
            cps = new_chunks / ingest_s if ingest_s > 0 else None
            other_s = ingest_s - embedder.embed_seconds
            ingest = {
                "seconds": _r(ingest_s, 2),
                "chunks_per_s": _r(cps, 2),
                "embedded": embedder.embedded,
                "cached": embedder.cached,
                "vectors_from_cache": from_cache,
                "embed_seconds": _r(embedder.embed_seconds, 2),
                # the model's own pace inside this step: compare with the raw figure to see
                # whether the machine's load moved between the two measurements
                "model_chunks_per_s": (
                    _r(embedder.embedded / embedder.embed_seconds, 2)
                    if embedder.embedded and embedder.embed_seconds > 0
                    else None
                ),
                "other_seconds": _r(other_s, 2),
                "other_ms_per_chunk": _r(other_s * 1000 / new_chunks, 3) if new_chunks else None,
                # only when every vector was embedded in this step: else it is no embedding speed
                "fraction_of_raw": (
                    _r(cps / raw["chunks_per_s"], 3)
                    if cps and raw["chunks_per_s"] and not from_cache
                    else None
                ),
            }
            asked = choose_queries(indexed, p.queries, args.queries, args.seed, step)
            if not asked:
                raise SystemExit("no query could be drawn from the indexed documents")
            load_at_queries = os.getloadavg()
            first, retrievers = measure_queries(service, asked, args.top_k)
            lexical_dir = data_dir / "lexical"
            row = {
                "step": step,
                "chunks": chunks,
                "chunk_records": service.store.count_chunks(),
                "documents": len(committed),
                "new_chunks": new_chunks,
                "new_documents": len(added),
                "failed_documents": len(failed),
                "ingest": ingest,
                "disk": {
                    "total_bytes": disk_bytes(data_dir),
                    "chroma_bytes": disk_bytes(settings.chroma_path),
                    "lexical_bytes": disk_bytes(lexical_dir),
                },
                "memory": memory_mib(),
                "bm25_build_s": _r(first["bm25"] / 1000, 3),
                "first_query_ms": {m: _r(v, 1) for m, v in first.items()},
                "queries": len(asked),
                # another job on the machine while the queries ran shows here (2 cores: > 1.5)
                "loadavg_at_queries": load_at_queries,
                "distinct_queries": len(set(asked)),
                "retrievers": retrievers,
            }
            results.append(row)
            h = retrievers["hybrid"]
            err.print(
                f"step {step}: {chunks} chunks, {ingest_s:.1f} s ingest"
                f"{' (vectors from cache)' if from_cache else ''}, hybrid p50/p95 "
                f"{h['p50_ms']}/{h['p95_ms']} ms"
            )
        updated = measure_update(service, feed(docs, update), p.queries, args) if update else None
        service_memory = memory_mib()
        cold = cold_start(settings, data_dir, indexed, p.queries, args) if args.cold_start else None
    finally:
        docs.close()
        embedder.close()

    last = results[-1]
    return {
        "when": datetime.now(UTC).isoformat(),
        "machine": machine()
        | {"loadavg_before": load_before, "loadavg_after": os.getloadavg(), "note": args.note},
        "settings": {
            "corpus": str(args.corpus),
            "steps": steps,
            "steps_run": p.steps,
            "corpus_exhausted": p.exhausted,
            "queries": args.queries,
            "top_k": args.top_k,
            "seed": args.seed,
            "data_dir": str(data_dir),
            "embedding_cache": str(cache),
            "embedding_cache_bytes": sum(
                Path(f"{cache}{x}").stat().st_size
                for x in ("", "-wal")
                if Path(f"{cache}{x}").exists()
            ),
            "embedding_model": settings.embedding.model,
            "embedding_backend": embedder_backend(settings.embedding),
            "batch_size": settings.embedding.batch_size,
            "chunking": settings.chunking.model_dump(),
            "retriever": {
                "depth": service.retriever.depth,
                "dense_weight": service.retriever.dense_weight,
                "bm25_weight": service.retriever.bm25_weight,
            },
            "plan_seconds": _r(p.seconds, 1),
        },
        "raw_embedder": raw,
        "steps": results,
        "update": updated,
        "memory_after": service_memory,
        "cold_start": cold,
        "target": {
            "chunks": TARGET_CHUNKS,
            "hybrid_p95_ms": TARGET_HYBRID_P95_MS,
            "measured_at_chunks": last["chunks"],
            "hybrid_p95_measured_ms": last["retrievers"]["hybrid"]["p95_ms"],
            "met": (
                last["retrievers"]["hybrid"]["p95_ms"] <= TARGET_HYBRID_P95_MS
                if last["chunks"] >= TARGET_CHUNKS
                else None
            ),
        },
    }


# -- output --------------------------------------------------------------------------------------


def print_tables(result: dict[str, Any]) -> None:
    raw = result["raw_embedder"]
    k = result["settings"]["top_k"]
    t = Table(
        "step",
        "chunks",
        "docs",
        "new chunks",
        "embedded / cached",
        "ingest s",
        "chunks/s",
        "× raw",
        "model chunks/s",
        "other ms/chunk",
        "index MiB",
        "RSS / peak MiB",
        "BM25 build s",
        title=f"ingest (raw embedder: {raw['chunks_per_s']} chunks/s on {raw['chunks']} chunks)",
    )
    for s in result["steps"]:
        i = s["ingest"]
        cached = i["vectors_from_cache"]
        t.add_row(
            str(s["step"]),
            str(s["chunks"]),
            str(s["documents"]),
            str(s["new_chunks"]),
            f"{i['embedded']} / {i['cached']}",
            _f(i["seconds"], ".1f"),
            _f(i["chunks_per_s"], ".1f") + (" (cached)" if cached else ""),
            "— (cached)" if cached else _f(i["fraction_of_raw"], ".1%"),
            _f(i["model_chunks_per_s"], ".1f"),
            _f(i["other_ms_per_chunk"], ".1f"),
            _f(s["disk"]["total_bytes"] / 2**20, ".1f"),
            f"{_f(s['memory']['rss_mib'], '.0f')} / {_f(s['memory']['peak_rss_mib'], '.0f')}",
            _f(s["bm25_build_s"], ".2f"),
        )
    out.print(t)
    q = Table(
        "step",
        "chunks",
        *[f"{m} p50 / p95 / mean ms" for m in RETRIEVERS],
        f"recall@{k} d / b / h",
        title=f"query latency over {result['settings']['queries']} queries "
        f"(retrieval only, query embedding included; target hybrid p95 ≤ "
        f"{TARGET_HYBRID_P95_MS:.0f} ms at {TARGET_CHUNKS} chunks)",
    )
    for s in result["steps"]:
        r = s["retrievers"]
        q.add_row(
            str(s["step"]),
            str(s["chunks"]),
            *[
                f"{_f(r[m]['p50_ms'], '.1f')} / {_f(r[m]['p95_ms'], '.1f')} / "
                f"{_f(r[m]['mean_ms'], '.1f')}"
                for m in RETRIEVERS
            ],
            " / ".join(_f(r[m][f"recall_at_{k}"], ".2f") for m in RETRIEVERS),
        )
    out.print(q)
    tgt = result["target"]
    verdict = {True: "met", False: "MISSED", None: "not measured (index below 100k chunks)"}
    out.print(
        f"hybrid p95 at {tgt['measured_at_chunks']} chunks: {tgt['hybrid_p95_measured_ms']} ms; "
        f"target ≤ {TARGET_HYBRID_P95_MS:.0f} ms at {TARGET_CHUNKS}: {verdict[tgt['met']]}"
    )


def plot(result: dict[str, Any], path: Path) -> None:
    """p50 (solid) and p95 (dashed) latency against chunks, one colour per retriever."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [s["chunks"] for s in result["steps"]]
    for mode, colour in zip(RETRIEVERS, ("tab:blue", "tab:orange", "tab:green"), strict=True):
        for pct, style in (("p50", "-o"), ("p95", "--s")):
            ys = [s["retrievers"][mode][f"{pct}_ms"] for s in result["steps"]]
            ax.plot(xs, ys, style, color=colour, label=f"{mode} {pct}")
    ax.axhline(TARGET_HYBRID_P95_MS, color="grey", linestyle=":", label="target: hybrid p95")
    ax.set_xscale("log")
    ax.set_yscale("log")  # BM25 and a contended query embedding can be orders of magnitude apart
    ax.set_xlabel("chunks in the index")
    ax.set_ylabel("latency, ms (log; query embedding included)")
    m = result["machine"]
    ax.set_title(f"retrieval latency vs corpus size ({m['cpus']} CPUs, {result['when'][:10]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(float(x), digits)


def _f(x: Any, fmt: str) -> str:
    return "—" if x is None else f"{x:{fmt}}"


def fill_cache(args: argparse.Namespace) -> None:
    """Embed, into the cache only, every chunk the steps will ingest: the slow part of a large run,
    done once (resumable: what is cached is skipped), with no index written. Documents are grouped
    and batched as the ingestor groups and batches them, step by step, so the run that follows
    takes every vector from the cache."""
    steps = parse_steps(args.steps, args.max_chunks)
    settings = Settings()
    data_dir: Path = args.data_dir or settings.data_dir / "bench" / "scale"
    embedder = CachedEmbedder(
        settings.embedding,
        settings.models_dir,
        args.embedding_cache or cache_path(data_dir, settings.embedding),
    )
    p = plan(args.corpus, targets(steps, args.update_chunks), settings, args.seed, 1)
    c = settings.chunking
    group_size = settings.ingest_group_chunks
    docs = read_corpus(args.corpus)
    t0 = time.perf_counter()
    with chunk_progress(transient=False) as progress:
        bar = _Bar(progress, "fill cache", p.chunks_expected[-1])
        previous = 0
        for needed in p.docs_needed:
            group: list[str] = []
            for doc_id, text in itertools.islice(docs, needed - previous):
                try:
                    loaded = load_bytes(text.encode("utf-8"), ".txt")
                except LoadError:
                    continue
                doc = build_document(f"{doc_id}.txt", loaded, "fill")
                chunks = chunk_document(
                    doc.doc_id, doc.text, c.target_chars, c.max_chars, c.overlap_sentences
                )
                group += [index_text(doc.title, doc.region, ch.text) for ch in chunks]
                if len(group) >= group_size:
                    encode_sorted(embedder, group, bar)
                    group = []
            if group:
                encode_sorted(embedder, group, bar)
            previous = needed
    embedder.close()
    err.print(
        f"cache {embedder.cache_file}: {embedder.embedded} chunks embedded "
        f"({embedder.embedded / max(embedder.embed_seconds, 1e-9):.1f}/s in the model), "
        f"{embedder.cached} already cached, {time.perf_counter() - t0:.0f} s"
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="bench/scale.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help="gzipped JSON Lines, one {'id', 'text'} per line (default: %(default)s)",
    )
    ap.add_argument(
        "--steps",
        default=DEFAULT_STEPS,
        help="chunk counts at which to measure, comma-separated (default: %(default)s)",
    )
    ap.add_argument(
        "--max-chunks",
        type=int,
        default=None,
        help="drop the steps above N and end with N (e.g. 2000 → steps 1000, 2000)",
    )
    ap.add_argument(
        "--queries", type=int, default=200, help="questions per step (default: %(default)s)"
    )
    ap.add_argument(
        "--top-k",
        type=int,
        default=RETRIEVAL_DEPTH,
        help="hits per question, and the k of recall@k (default: %(default)s, as the eval harness)",
    )
    ap.add_argument(
        "--raw-sample",
        type=int,
        default=256,
        help="chunks (the corpus's first) on which the raw embedder is timed (default: %(default)s)",
    )
    ap.add_argument("--seed", type=int, default=0, help="query sampling (default: %(default)s)")
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="index folder, wiped at the start (default: <RAG_DATA_DIR>/bench/scale); the "
        "embedding cache file lies beside it",
    )
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="delete the embedding cache too: every vector is embedded again",
    )
    ap.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where scale-<timestamp>.json and .png go (default: bench/results)",
    )
    ap.add_argument("--note", default="", help="about the machine during the run (recorded)")
    ap.add_argument(
        "--fill-cache",
        action="store_true",
        help="only embed the chunks the steps need into the embedding cache (no index, no "
        "figures; resumable), so a later run measures without waiting on the model",
    )
    ap.add_argument(
        "--embedding-cache",
        type=Path,
        default=None,
        help="the embedding cache file (default: beside the data dir)",
    )
    ap.add_argument(
        "--update-chunks",
        type=int,
        default=1000,
        help="after the last step, ingest documents of about this many more chunks and time "
        "the next query (0: no update; default: %(default)s)",
    )
    ap.add_argument(
        "--update-queries",
        type=int,
        default=20,
        help="queries drawn from the update's documents after the first (default: %(default)s)",
    )
    ap.add_argument(
        "--no-cold-start",
        dest="cold_start",
        action="store_false",
        help="skip the replica started on the grown index (first answer, memory)",
    )
    ap.add_argument(
        "--root",
        type=Path,
        action="append",
        help="a checkout to measure, in a process of its own with its code and virtual "
        "environment (repeatable, in order: give the older one first to compare); each gets "
        "an index of its own under the data dir, the embedding cache is shared",
    )
    for hidden in ("--worker", "--replica"):
        ap.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--replica-input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--json-out", type=Path, help=argparse.SUPPRESS)
    return ap


# The options a root's worker is given as they are (the data dir and the cache are its own).
_PASSED = (
    *("corpus", "steps", "max_chunks", "queries", "top_k", "raw_sample", "seed", "note"),
    *("update_chunks", "update_queries"),
)


def python_of(root: Path) -> str:
    """A checkout's own interpreter (``<root>/.venv``) where it has one, else this one."""
    venv = root / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def run_root(root: Path, index: int, args: argparse.Namespace) -> dict[str, Any]:
    """``run`` in a process with ``root``'s code, on an index of its own."""
    base: Path = args.data_dir or Settings().data_dir / "bench" / "scale"
    cache = args.embedding_cache or cache_path(base, Settings().embedding)
    cmd = [python_of(root), str(Path(__file__).resolve()), "--worker"]
    for name in _PASSED:
        value = getattr(args, name)
        if value is not None:
            cmd += [f"--{name.replace('_', '-')}", str(value)]
    if not args.cold_start:
        cmd.append("--no-cold-start")
    data_dir = base / f"{index}-{root.name or 'root'}"
    # beside the index, not in it (the worker wipes its data dir): a root's figures survive a
    # later root's failure or interruption
    out_json = data_dir.with_name(data_dir.name + ".json")
    cmd += ["--data-dir", str(data_dir)]
    cmd += ["--embedding-cache", str(cache), "--json-out", str(out_json)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {ROOT_ENV: str(root), "PYTHONUNBUFFERED": "1"}
    err.print(f"{root}: {cmd[0]}", markup=False)
    subprocess.run(cmd, check=True, cwd=root, env=env)
    result: dict[str, Any] = json.loads(out_json.read_text())
    err.print(f"{root}: figures in {out_json}", markup=False)
    return {"root": str(root), **result}


def print_summary(results: list[dict[str, Any]]) -> None:
    """One row per root: what the last step, the update and the replica measured."""
    t = Table(
        "root",
        "chunks",
        "hybrid p95 ms",
        "first query after ingest s",
        "update: next query ms (found)",
        "replica: first answer s",
        "first comparison s",
        "replica RSS / anon / file MiB",
        "bench RSS / peak MiB",
        title="before / after, at the last step",
    )
    for r in results:
        last = r["steps"][-1]
        u, c, m = r.get("update"), r.get("cold_start"), last["memory"]
        t.add_row(
            Path(r["root"]).name or r["root"],
            str(last["chunks"]),
            _f(last["retrievers"]["hybrid"]["p95_ms"], ".1f"),
            _f(last["bm25_build_s"], ".2f"),
            "—"
            if not u
            else f"{u['next_query_ms']:.0f} ({'yes' if u['next_query_found'] else 'no'})",
            "—" if not c else _f(c["first_answer_s"], ".1f"),
            "—" if not c else _f(c["comparison_s"], ".1f"),
            "—"
            if not c
            else " / ".join(_f(c["memory"][k], ".0f") for k in ("rss_mib", "anon_mib", "file_mib")),
            f"{_f(m['rss_mib'], '.0f')} / {_f(m['peak_rss_mib'], '.0f')}",
        )
    out.print(t)


def main(argv: Sequence[str] | None = None) -> Path | None:
    """Run; returns the JSON file written (None with --fill-cache)."""
    args = build_parser().parse_args(argv)
    if args.replica:
        replica(args)
        return None
    if args.fill_cache:
        fill_cache(args)
        return None
    if args.worker:
        write_json(args.json_out, run(args), ensure_ascii=False)
        return Path(args.json_out)
    started = stamp()
    args.results_dir.mkdir(parents=True, exist_ok=True)
    json_out: Path = args.results_dir / f"scale-{started}.json"
    if not args.root:
        result = run(args)
        print_tables(result)
        png_out = json_out.with_suffix(".png")
        plot(result, png_out)
        result["plot"] = png_out.name
        write_json(json_out, result, ensure_ascii=False)
        out.print(f"written {json_out} and {png_out.name}")
        return json_out
    results = [run_root(root.resolve(), i, args) for i, root in enumerate(args.root)]
    for i, r in enumerate(results):
        out.print(r["root"], style="bold", markup=False)
        print_tables(r)
        png_out = json_out.with_name(f"{json_out.stem}-{i}.png")
        plot(r, png_out)
        r["plot"] = png_out.name
    print_summary(results)
    write_json(json_out, {"when": started, "roots": results}, ensure_ascii=False)
    out.print(f"written {json_out}")
    return json_out


if __name__ == "__main__":
    main()
