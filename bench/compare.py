"""Four pipelines side by side, on the same corpora, the same embedder and the same LLM, in one run.

    python bench/compare.py                                   # everything (local LLM, --limit 400)
    python bench/compare.py --backend extractive --limit 5    # a quick check
    python bench/compare.py --datasets seeds --pipelines baseline,ours --fresh

Pipelines:
1. baseline: the naive LangChain recipe: RecursiveCharacterTextSplitter(500, 50) → the same e5
   embedder → Chroma (its own collection under <data dir>/bench/baseline/<dataset>, built once)
   → top-4 similarity → one "stuff" prompt (prompts/baseline_stuff.md) → the same LLM;
2. bm25 / 3. dense: our answer chain with retrieval restricted to that side;
4. ours: ``RAGService.answer`` as shipped (hybrid retrieval, comparison routing, citation check).

Datasets: retrieval-level (recall@1/@5, latency) on every dataset; answer-level on the seeds, gov,
news (crud) and RGB-zh dev sets (single questions; follow-ups are ``rag eval --dataset
conversations``). Each (level, pipeline, dataset, question) result is appended to a JSONL
checkpoint under <data dir>/bench/, so an interrupted run continues where it stopped
(``--fresh`` restarts).
Prints two tables (retrieval, answers) with ratios to the baseline and writes JSON to
bench/results/compare-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate
from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import prompts
from bench._results import default_json, write_json
from eval import metrics as M
from eval.datasets import Dataset, Sample, load_dataset
from eval.runner import RETRIEVAL_DEPTH, doc_ranks, ingest_corpus, parts_within, score_answers
from eval.targets import eval_settings
from rag.chain import AnswerChain
from rag.config import LLMBackend, Settings
from rag.embeddings import Embedder
from rag.generation import MODEL_REFUSAL, stream_text
from rag.llm import ChatLlamaCpp
from rag.retrieval import SearchMode
from rag.schemas import Answer
from rag.service import RAGService

PIPELINES = ("baseline", "bm25", "dense", "ours")
DATASETS = ("seeds", "gov", "crud", "rgb", "cmrc2018", "drcd")
ANSWER_SETS = ("seeds", "gov", "crud", "rgb")  # the others are reading-comprehension sets
CHUNK_SIZE, CHUNK_OVERLAP, BASELINE_TOP_K = 500, 50, 4
SUPPORTED = {".txt", ".md", ".html", ".htm", ".pdf", ".docx"}
Level = Literal["retrieval", "answer"]
out = Console(width=None if sys.stdout.isatty() else 200)  # a log keeps whole rows
err = Console(stderr=True)


# -- the naive LangChain baseline -----------------------------------------------------------------


def baseline_chunks(ds: Dataset) -> list[tuple[str, str]]:
    """``(source, chunk)`` pairs: the dataset's corpus split the usual LangChain way."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.loaders import load_bytes

    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
    docs: list[tuple[str, str]] = []
    if ds.corpus_kind == "files":
        files = (p for folder in (ds.corpus, *ds.extra_corpus) for p in folder.rglob("*"))
        for path in sorted(p for p in files if p.is_file()):
            if path.suffix.lower() in SUPPORTED:
                docs.append((path.name, load_bytes(path.read_bytes(), path.suffix).text))
    else:
        docs = [(source, data.decode("utf-8")) for source, data in ds.corpus_files()]
    return [(source, chunk) for source, text in docs for chunk in splitter.split_text(text)]


class Baseline:
    """Splitter → embedder → Chroma → top-4 similarity → one stuff prompt → the LLM."""

    def __init__(self, ds: Dataset, embedder: Embedder, folder: Path) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.embedder = embedder
        chunks = baseline_chunks(ds)
        digest = hashlib.sha256(
            json.dumps(
                [embedder.name, embedder.backend, CHUNK_SIZE, CHUNK_OVERLAP, chunks]
            ).encode()
        ).hexdigest()
        marker = folder / "built.json"
        fresh = not (marker.exists() and json.loads(marker.read_text()).get("digest") == digest)
        if fresh and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(
            path=str(folder / "chroma"),
            settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False),
        )
        self.collection = client.get_or_create_collection(
            f"baseline-{ds.name}", embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        if fresh:
            t0 = time.perf_counter()
            batch = 128
            for i in range(0, len(chunks), batch):
                part = chunks[i : i + batch]
                self.collection.add(
                    ids=[f"c{j}" for j in range(i, i + len(part))],
                    embeddings=embedder.encode_passages([c for _, c in part]),
                    documents=[c for _, c in part],
                    metadatas=[{"source": s} for s, _ in part],
                )
                err.print(f"  baseline {ds.name}: {i + len(part)}/{len(chunks)} chunks embedded")
            seconds = time.perf_counter() - t0
            marker.write_text(
                json.dumps({"digest": digest, "chunks": len(chunks), "seconds": round(seconds, 1)})
            )
        self.chunks = len(chunks)
        self.prompt = ChatPromptTemplate.from_messages([("human", prompts.load("baseline_stuff"))])

    def search(self, question: str, k: int) -> list[tuple[str, str]]:
        """The top-``k`` ``(source, chunk)`` pairs."""
        vector = self.embedder.encode_query(question)
        res = self.collection.query(
            query_embeddings=[vector.tolist()], n_results=k, include=["documents", "metadatas"]
        )
        texts = (res.get("documents") or [[]])[0] or []
        metas = (res.get("metadatas") or [[]])[0] or []
        return [(str(m["source"]), t) for m, t in zip(metas, texts, strict=True)]

    def answer(self, question: str, model: BaseChatModel | None, backend: str) -> Answer:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        context = [text for _, text in self.search(question, BASELINE_TOP_K)]
        timings["retrieval_ms"] = _ms(t0)
        if model is None:  # --backend extractive: the top chunk is the answer
            text = context[0] if context else ""
        else:
            inputs = {"context": "\n\n".join(context), "question": question}
            pieces: list[str] = []
            t_gen = time.perf_counter()
            for token in stream_text(self.prompt | model, inputs):
                if not pieces:
                    timings["first_token_ms"] = _ms(t0)
                pieces.append(token)
            timings["generation_ms"] = _ms(t_gen)
            count = getattr(model, "count_tokens", None)
            if count is not None:
                timings["prompt_tokens"] = float(count(self.prompt.format(**inputs)))
            text = "".join(pieces).strip()
        timings["total_ms"] = _ms(t0)
        return Answer(
            answer=text,
            backend=backend,
            # the phrase alone, as before (``is_refusal`` also wants no [n] marker)
            refused=bool(MODEL_REFUSAL.search(text)),
            timings=timings,
        )


# -- the four pipelines behind one interface -----------------------------------------------------


class Pipelines:
    """The pipelines of one dataset: one service (its cached eval index), one baseline index."""

    def __init__(
        self,
        ds: Dataset,
        embedder: Embedder,
        models: dict[str, BaseChatModel | None],
        data_dir: Path,
        skip_ingest: bool = False,
    ) -> None:
        self.ds = ds
        # One embedder, loaded once; one LLM, loaded once and shared by every dataset: ``models``
        # holds those loaded so far (``model`` adds to it).
        self.models = models
        self.service = RAGService(eval_settings(ds.name), embedder=embedder, chat_models=models)
        if skip_ingest and self.service.documents():
            err.print(f"{ds.name}: our index as it is (--skip-ingest)")
        else:
            err.print(f"{ds.name}: our index (cached after the first run)…")
            ingest_corpus(self.service, ds)
        err.print(f"{ds.name}: baseline index (cached after the first run)…")
        self.baseline = Baseline(ds, embedder, data_dir / "bench" / "baseline" / ds.name)
        self.chains: dict[str, AnswerChain] = {}
        for mode in ("bm25", "dense"):
            settings = self.service.settings
            self.chains[mode] = AnswerChain(
                self.service.retriever.model_copy(update={"mode": mode}),
                settings.answer,
                settings.llm.timeout_s,
                facts=self.service.facts,
            )

    def model(self, backend: LLMBackend) -> BaseChatModel | None:
        """The backend's model (None for extractive), loaded once for every dataset."""
        model = self.models[backend] = self.service.chat_model(backend)
        return model

    def search(self, pipeline: str, question: str, k: int) -> list[tuple[str, str]]:
        """The pipeline's top-``k`` ``(source, passage)`` pairs."""
        if pipeline == "baseline":
            return self.baseline.search(question, k)
        mode: SearchMode = "hybrid" if pipeline == "ours" else pipeline  # type: ignore[assignment]
        return [(h.source, h.text) for h in self.service.search(question, top_k=k, mode=mode)]

    def answer(self, pipeline: str, question: str, backend: LLMBackend) -> Answer:
        model = self.model(backend)
        if isinstance(model, ChatLlamaCpp):
            # llama.cpp reuses the KV cache of the previous prompt's common prefix: the second
            # pipeline given the same prompt would skip its prefill. Every answer starts cold.
            model.load().reset()
        if pipeline == "baseline":
            return self.baseline.answer(question, model, backend)
        if pipeline == "ours":
            return self.service.answer(question, backend=backend)
        return Answer.from_events(self.chains[pipeline].stream(question, model), backend)


class _Target:
    """One pipeline as the harness's ``Target`` (scoring is the harness's own)."""

    def __init__(self, pipes: Pipelines, pipeline: str) -> None:
        self.pipes, self.pipeline = pipes, pipeline

    def search(self, question: str, top_k: int, mode: SearchMode) -> Any:
        raise NotImplementedError

    def answer(self, question: str, backend: str | None, history: Sequence[Any] = ()) -> Answer:
        if history:  # follow-up samples are not part of this benchmark's question set
            raise ValueError("the naive baseline answers single questions, not conversations")
        return self.pipes.answer(self.pipeline, question, backend)  # type: ignore[arg-type]


# -- one question, scored ------------------------------------------------------------------------


def gold(ds: Dataset, s: Sample) -> list[str]:
    return s.answers if ds.kind == "reading" else [e.quote for e in s.evidence]


def retrieval_record(pipes: Pipelines, pipeline: str, s: Sample) -> dict[str, Any]:
    t0 = time.perf_counter()
    hits = pipes.search(pipeline, s.question, RETRIEVAL_DEPTH)
    ms = (time.perf_counter() - t0) * 1000
    if pipes.ds.kind == "documents":  # each part's source document among the top k
        ranks = doc_ranks([source for source, _ in hits], s.gold_docs)
        scored = bool(s.gold_docs)
        return {
            "r1": parts_within(ranks, 1) if scored else None,
            "r5": parts_within(ranks, 5) if scored else None,
            "ms": round(ms, 2),
        }
    texts = [text for _, text in hits]
    g = gold(pipes.ds, s)
    found: Callable[[Sequence[str], Sequence[str], int], bool] = (
        M.any_found_within if pipes.ds.kind == "reading" else M.all_found_within
    )
    return {
        "r1": found(texts, g, 1) if g else None,
        "r5": found(texts, g, 5) if g else None,
        "ms": round(ms, 2),
    }


def answer_record(pipes: Pipelines, pipeline: str, s: Sample, backend: str) -> dict[str, Any]:
    _, details = score_answers(pipes.ds, [s], _Target(pipes, pipeline), backend)
    d = details[0]
    return {
        "unanswerable": s.unanswerable,
        "correct": d["correct"],  # None: nothing to check the answer against (not scored)
        "refused": bool(d["refused"]),
        "fallback": bool(d["fallback"]),
        "verified": [bool(c["verified"]) for c in d["citations"]],
        "timings": d["timings"],
        "answer": d["answer"],
    }


# -- checkpoint ----------------------------------------------------------------------------------


def key(level: str, pipeline: str, dataset: str, qid: str, backend: str) -> str:
    return f"{level}|{pipeline}|{dataset}|{qid}|{backend if level == 'answer' else '-'}"


def read_checkpoint(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by an interruption
                continue
            done[row["key"]] = row
    return done


# -- figures -------------------------------------------------------------------------------------


def _mean(xs: Sequence[float]) -> float | None:
    return None if not xs else sum(xs) / len(xs)


def _pct(xs: Sequence[float], q: float) -> float | None:
    return None if not xs else M.percentile(xs, q)


def summarize(rows: list[dict[str, Any]], level: Level) -> dict[str, Any]:
    if level == "retrieval":
        scored = [r for r in rows if r["r1"] is not None]
        ms = [r["ms"] for r in rows]
        return {
            "n": len(scored),
            "recall_at_1": _mean([float(r["r1"]) for r in scored]),
            "recall_at_5": _mean([float(r["r5"]) for r in scored]),
            "retrieval_p50_ms": _pct(ms, 50),
            "retrieval_p95_ms": _pct(ms, 95),
        }
    scored = [r for r in rows if r["correct"] is not None]
    answerable = [r for r in scored if not r["unanswerable"]]
    refusals = [r for r in scored if r["unanswerable"]]
    types = sorted({r["type"] for r in scored})
    total = [r["timings"]["total_ms"] for r in rows if "total_ms" in r["timings"]]
    tokens = [r["timings"]["prompt_tokens"] for r in rows if "prompt_tokens" in r["timings"]]
    verified = [float(v) for r in rows for v in r["verified"]]
    return {
        "n": len(rows),
        "accuracy": _mean([float(r["correct"]) for r in answerable]),
        "refusal_accuracy": _mean([float(r["correct"]) for r in refusals]),
        "citation_precision": _mean(verified),
        "fallback_rate": _mean([float(r["fallback"]) for r in rows]),
        "prompt_tokens_p50": _pct(tokens, 50),
        "prompt_tokens_p95": _pct(tokens, 95),
        "answer_p50_ms": _pct(total, 50),
        "answer_p95_ms": _pct(total, 95),
        "answer_mean_ms": _mean(total),
        "by_type": {
            t: _mean([float(r["correct"]) for r in scored if r["type"] == t]) for t in types
        },
    }


def add_ratios(results: dict[str, dict[str, Any]]) -> None:
    """Differences and ratios to the baseline row of the same dataset."""
    base = results.get("baseline", {})
    for r in results.values():
        for k, name in (("accuracy", "accuracy_diff"), ("recall_at_5", "recall_at_5_diff")):
            if r.get(k) is not None and base.get(k) is not None:
                r[name] = r[k] - base[k]
        for k in ("retrieval_p50_ms", "answer_p50_ms", "answer_p95_ms", "answer_mean_ms"):
            if r.get(k) and base.get(k):
                r[k.replace("_ms", "_ratio")] = r[k] / base[k]


def _f(x: Any, fmt: str = ".3f", suffix: str = "") -> str:
    return "—" if x is None else f"{x:{fmt}}{suffix}"


def print_tables(results: dict[str, dict[str, dict[str, Any]]], backend: str) -> None:
    t = Table(
        "dataset",
        "pipeline",
        "n",
        "recall@1",
        "recall@5",
        "Δ recall@5",
        "p50 / p95 ms",
        "× baseline p50",
        title="retrieval (top 10; recall@k: the gold inside the top-k passages)",
    )
    for ds, by_p in results.items():
        for p, r in by_p.items():
            if "retrieval" not in r:
                continue
            x = r["retrieval"]
            t.add_row(
                ds,
                p,
                str(x["n"]),
                _f(x["recall_at_1"]),
                _f(x["recall_at_5"]),
                _f(x.get("recall_at_5_diff"), "+.3f"),
                f"{_f(x['retrieval_p50_ms'], '.0f')} / {_f(x['retrieval_p95_ms'], '.0f')}",
                _f(x.get("retrieval_p50_ratio"), ".2f", "×"),
            )
    out.print(t)
    a = Table(
        "dataset",
        "pipeline",
        "n",
        "accuracy",
        "Δ acc",
        "citation prec.",
        "refusal acc.",
        "fallback",
        "prompt tok p50",
        "answer p50 / p95 s",
        "× baseline p50",
        title=f"answers ({backend})",
    )
    for ds, by_p in results.items():
        for p, r in by_p.items():
            if "answers" not in r:
                continue
            x = r["answers"]
            p50 = None if x["answer_p50_ms"] is None else x["answer_p50_ms"] / 1000
            p95 = None if x["answer_p95_ms"] is None else x["answer_p95_ms"] / 1000
            a.add_row(
                ds,
                p,
                str(x["n"]),
                _f(x["accuracy"]),
                _f(x.get("accuracy_diff"), "+.3f"),
                _f(x["citation_precision"]),
                _f(x["refusal_accuracy"]),
                _f(x["fallback_rate"], ".2f"),
                _f(x["prompt_tokens_p50"], ".0f"),
                f"{_f(p50, '.2f')} / {_f(p95, '.2f')}",
                _f(x.get("answer_p50_ratio"), ".2f", "×"),
            )
    out.print(a)
    pipelines = list(dict.fromkeys(p for by_p in results.values() for p in by_p))
    b = Table("dataset", "type", *pipelines, title=f"answer accuracy by type ({backend})")
    for ds, by_p in results.items():
        types = sorted({t for r in by_p.values() for t in r.get("answers", {}).get("by_type", {})})
        for t in types:
            cells = [_f(by_p[p].get("answers", {}).get("by_type", {}).get(t)) for p in pipelines]
            b.add_row(ds, t, *cells)
    out.print(b)


# -- the run -------------------------------------------------------------------------------------


def _csv(value: str, allowed: Sequence[str], flag: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"{flag}: unknown {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def run(
    embedder: Embedder,
    datasets: list[str],
    pipelines: list[str],
    limit: int | None,
    backend: LLMBackend,
    checkpoint: Path,
    data_dir: Path,
    answer_limit: int | None = None,
    skip_ingest: bool = False,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every pending (level, pipeline, dataset, question), appended to ``checkpoint``; then the
    figures from the checkpoint's rows for the questions asked."""
    try:  # every data set found before any work, so a missing one costs no partial run
        loaded = [load_dataset(name) for name in datasets]
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from exc
    done = read_checkpoint(checkpoint)
    models: dict[str, BaseChatModel | None] = {}
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with checkpoint.open("a", encoding="utf-8") as sink:

        def work(
            level: Level, ds: Dataset, pipes: Pipelines | None, samples: list[Sample]
        ) -> Pipelines | None:
            # Question by question, every pipeline in turn: the machine's noise hits all alike.
            todo = [
                (s, p)
                for s in samples
                for p in pipelines
                if key(level, p, ds.name, s.id, backend) not in done
            ]
            if not todo:
                return pipes
            if pipes is None:
                pipes = Pipelines(ds, embedder, models, data_dir, skip_ingest)
            if level == "answer" and backend != "extractive":
                pipes.model(backend)  # load outside the timings
            for p in pipelines:  # warm every pipeline (index opened, jieba, BM25) untimed
                pipes.search(p, samples[0].question, RETRIEVAL_DEPTH)
            for i, (s, p) in enumerate(todo, start=1):
                if level == "retrieval":
                    row = retrieval_record(pipes, p, s)
                else:
                    row = answer_record(pipes, p, s, backend)
                row |= {"key": key(level, p, ds.name, s.id, backend), "type": s.type}
                done[row["key"]] = row
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                sink.flush()
                if i % 25 == 0 or level == "answer":
                    err.print(f"  {ds.name} {level}: {i}/{len(todo)} ({p}, {s.id})")
            return pipes

        for ds in loaded:
            name = ds.name
            samples = ds.select(limit, sample=False)
            # fewer answer-level questions than the whole set: a shuffled (seed 0) mix of types
            asked = samples if answer_limit is None else ds.select(answer_limit, sample=True)
            # single questions: follow-ups are the harness's (rag eval --dataset conversations),
            # which the naive baseline, having no history, cannot take part in
            asked = [s for s in asked if not s.turns]
            pipes = work("retrieval", ds, None, samples)
            if name in ANSWER_SETS:
                work("answer", ds, pipes, asked)
            results[name] = {}
            for p in pipelines:
                entry: dict[str, Any] = {}
                for level in ("retrieval", "answer"):
                    if level == "answer" and name not in ANSWER_SETS:
                        continue
                    rows = [
                        done[k]
                        for s in (samples if level == "retrieval" else asked)
                        if (k := key(level, p, name, s.id, backend)) in done
                    ]
                    entry["retrieval" if level == "retrieval" else "answers"] = summarize(
                        rows,
                        level,
                    )
                results[name][p] = entry
            for level in ("retrieval", "answers"):
                add_ratios({p: r[level] for p, r in results[name].items() if level in r})
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--limit", type=int, default=400, help="questions per dataset, at most")
    ap.add_argument(
        "--answer-limit",
        type=int,
        default=None,
        help="answer-level questions per dataset (a shuffled, seed 0, mix); default: as --limit",
    )
    ap.add_argument(
        "--skip-ingest",
        action="store_true",
        help="use a dataset's cached eval index as it is, even if an older pipeline version "
        "built it (recorded in the JSON)",
    )
    ap.add_argument("--backend", default="local", choices=["local", "openai", "extractive"])
    resume = ap.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="fresh", action="store_false", default=False)
    resume.add_argument("--fresh", action="store_true", help="forget the checkpoint, start over")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: <data dir>/bench/")
    ap.add_argument("--note", default="", help="about the machine during the run (recorded)")
    ap.add_argument("--json-out", type=Path, default=default_json("compare"))
    args = ap.parse_args()
    datasets = _csv(args.datasets, DATASETS, "--datasets")
    pipelines = _csv(args.pipelines, PIPELINES, "--pipelines")
    data_dir = Settings().data_dir
    checkpoint = args.checkpoint or data_dir / "bench" / "compare-checkpoint.jsonl"
    if args.fresh and checkpoint.exists():
        checkpoint.unlink()

    t0 = time.perf_counter()
    load_before = os.getloadavg()
    embedder = Embedder(Settings().embedding, Settings().models_dir)  # loads on first use
    results = run(
        embedder,
        datasets,
        pipelines,
        args.limit,
        args.backend,
        checkpoint,
        data_dir,
        args.answer_limit,
        args.skip_ingest,
    )
    print_tables(results, args.backend)
    write_json(
        args.json_out,
        {
            "when": datetime.now(UTC).isoformat(),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": sys.version.split()[0],
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
                "note": args.note,
            },
            "backend": args.backend,
            "embedder": {"model": embedder.name, "backend": embedder.backend},
            "limit": args.limit,
            "answer_limit": args.answer_limit,
            "skip_ingest": args.skip_ingest,
            "seconds": round(time.perf_counter() - t0, 1),
            "checkpoint": str(checkpoint),
            "baseline": {
                "splitter": f"RecursiveCharacterTextSplitter({CHUNK_SIZE}, {CHUNK_OVERLAP})",
                "top_k": BASELINE_TOP_K,
                "prompt": "prompts/baseline_stuff.md",
            },
            "results": results,
        },
    )
    out.print(f"written {args.json_out}")


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


if __name__ == "__main__":
    main()
