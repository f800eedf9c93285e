"""Concurrent chat requests against a running service: throughput, latency, errors, memory.

    python bench/load.py --serve [--backend extractive|local] [--concurrency 1,8,32]
                         [--requests 100] [--timeout 120]
    python bench/load.py --serve --soak 600 [--concurrency 8] [--sample-every 5]
    python bench/load.py --url http://127.0.0.1:8000 [--api-key KEY] [--pid PID] ...
    python bench/load.py --serve --kbs 20 [--max-open 4] [--concurrency 8]

For each concurrency N, N clients (one httpx AsyncClient, N connections) send `POST /v1/chat`
back to back, cycling through the seed dev questions, until `--requests` have been sent or
`--timeout` seconds have passed (requests still running then are cut and counted).

Errors are 5xx, other 4xx, dropped connections, request timeouts, requests cut at the deadline
and empty answers (HTTP 200 with no answer text); a 429 (a deliberate rate or concurrency limit)
is counted apart, not as an error. Reports throughput (successful answers per second of wall
time), p50/p95/p99 latency of the successful ones, and how many answers fell back to the
extractive one.

Queue wait, per successful answer, from the answer's `timings` (server side, ms since the chain
started) and the client's clock (loopback: the chain started at the response's arrival minus
`total_ms`):
- before the chain: client latency − `total_ms` (HTTP, the event loop, the threadpool);
- before the model, with `--backend local` (one llama.cpp context behind a lock, generations
  one at a time): from the end of its retrieval (`retrieval_ms`) to the moment the model was
  freed for it, i.e. the last end of another answer between its retrieval and its first token
  (`first_token_ms`); 0 when none ended then (it found the model free).
Queue wait = the sum of the two; p50/p95/max are reported.

`--soak SECONDS` keeps one steady level (`--concurrency`, default 8) for that long: no request
cap; new requests stop at the end and those running finish. With `--upload-every S`, an upload
runs beside the chats every S seconds (one document replaced with new text each time, every other
one as an ingest job followed to its end); upload errors are counted apart. Meanwhile the server process's RSS
is sampled every `--sample-every` seconds (psutil if installed, else `/proc/PID/status` VmRSS;
the child's pid with `--serve`, `--pid` with `--url`): before the load (after warm-up), after,
the max and the slope (MiB per minute, least squares, over all samples and over the second half).

`--kbs N` (with `--serve`): N knowledge bases (`load-01` …), each holding the seeds (or, with
`--kb-corpus DIR`, one N-th of that folder's files each), and every level run twice in one
server: first every request asking `load-01` alone, then request i asking KB i mod N, so the
cost of many KBs (opened, released past `--max-open`, i.e. `RAG_KB__MAX_OPEN`, and opened
again) is side by side with one. After each run: the server's RSS, the KBs it holds open and
the KBs it has opened so far (`rag_kbs_open`, `rag_kb_opens_total` of /metrics).

`--serve` indexes the seeds (as `rag eval` does) and starts the app under uvicorn in a child
process on a free loopback port, one worker. Results go to `bench/results/load-*.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import default_json, write_json
from eval.datasets import load_dataset
from eval.targets import eval_settings

ROOT = Path(__file__).resolve().parents[1]
ERRORS = ("5xx", "4xx", "dropped", "timeout", "cut", "empty")
console = Console(width=None if sys.stdout.isatty() else 120)


@dataclass
class Result:
    kind: str  # ok, 429, or one of ERRORS
    seconds: float
    fallback: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    start: float = 0.0  # perf_counter when sent


@dataclass
class Served:
    url: str
    pid: int | None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 300) -> None:
    """Until the server at ``url`` answers /readyz; SystemExit if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the server did not get ready; see {log}")
        time.sleep(0.5)


def kb_names(n: int, corpus: Path | None = None) -> list[str]:
    prefix = "load" if corpus is None else f"load-{corpus.name}"
    return [f"{prefix}-{i:02d}" for i in range(1, n + 1)]


def make_kbs(n: int, corpus: Path | None = None) -> None:
    """N knowledge bases in the seeds' eval index (kept: a rerun changes nothing): each of the
    seeds, or with ``corpus`` each of one N-th of its files (file i in KB i mod N)."""
    from rag.service import RAGService

    service = RAGService(eval_settings("seeds"))
    files = sorted(p for p in corpus.iterdir() if p.is_file()) if corpus else []
    for i, name in enumerate(kb_names(n, corpus)):
        service.create_kb(name, exist_ok=True)
        summary = service.ingest(files[i::n] if corpus else [ROOT / "seeds"], kb=name)
        console.print(f"[dim]{name}: {summary.count('added')} added[/dim]")


@contextmanager
def serve(
    backend: str,
    log: Path,
    kbs: int = 0,
    max_open: int | None = None,
    corpus: Path | None = None,
) -> Iterator[Served]:
    """Index the seeds (and ``kbs`` KBs of them), then run the app in a child process; yields
    its URL and pid."""
    settings = eval_settings("seeds")
    env = os.environ | {
        "RAG_DATA_DIR": str(settings.data_dir.resolve()),
        "RAG_COLLECTION": settings.collection,
        "RAG_LLM__BACKEND": backend,
        "RAG_API_KEYS": "",
    }
    if max_open is not None:
        env["RAG_KB__MAX_OPEN"] = str(max_open)
    cli = [sys.executable, "-c", "from rag.cli import app; app()"]
    subprocess.run([*cli, "ingest", str(ROOT / "seeds")], env=env, cwd=ROOT, check=True)
    if kbs:
        make_kbs(kbs, corpus)
    port = _free_port()
    with log.open("w") as out:
        server = [sys.executable, "-m", "uvicorn", "--factory", "api.app:app_factory"]
        proc = subprocess.Popen(
            [*server, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, log)
            yield Served(url, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def rss_mib(pid: int) -> float | None:
    """Resident memory of one process in MiB (psutil if installed, else /proc); None if gone."""
    try:
        psutil: Any = importlib.import_module("psutil")
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except ImportError:
        pass
    except Exception:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def queue_waits(results: list[Result], serialized: bool) -> list[float]:
    """Queue wait per successful answer (ms): before the chain plus, when the model answers one
    at a time (``serialized``), before the model; see the module docstring."""
    ok = [r for r in results if r.kind == "ok" and "total_ms" in r.timings]
    ends = [r.start + r.seconds for r in ok]
    waits = []
    for r, end in zip(ok, ends, strict=True):
        before_chain = max(0.0, r.seconds * 1000 - r.timings["total_ms"])
        before_model = 0.0
        if serialized and "first_token_ms" in r.timings:
            chain = end - r.timings["total_ms"] / 1000
            retrieved = chain + r.timings.get("retrieval_ms", 0.0) / 1000
            first = chain + r.timings["first_token_ms"] / 1000
            freed = [e for e in ends if retrieved < e < first]
            before_model = (max(freed) - retrieved) * 1000 if freed else 0.0
        waits.append(before_chain + before_model)
    return waits


def kb_gauges(url: str, headers: dict[str, str]) -> dict[str, float]:
    """The server's ``rag_kbs_open`` and ``rag_kb_opens_total`` (from /metrics)."""
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=30).text
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("rag_kbs_open", "rag_kb_opens_total"):
            out[name] = float(value)
    return out


def summarize(
    results: list[Result], concurrency: int, wall: float, serialized: bool
) -> dict[str, Any]:
    ok = [r.seconds * 1000 for r in results if r.kind == "ok"]
    kinds = Counter(r.kind for r in results)
    waits = queue_waits(results, serialized)
    return {
        "concurrency": concurrency,
        "sent": len(results),
        "ok": len(ok),
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(ok) / wall, 3) if wall > 0 else 0.0,
        "latency_ms": {
            "p50": _pct(ok, 50),
            "p95": _pct(ok, 95),
            "p99": _pct(ok, 99),
            "mean": round(float(np.mean(ok)), 1) if ok else None,
            "max": round(max(ok), 1) if ok else None,
        },
        "queue_wait_ms": {
            "p50": _pct(waits, 50),
            "p95": _pct(waits, 95),
            "max": round(max(waits), 1) if waits else None,
        },
        "errors": {k: kinds.get(k, 0) for k in ERRORS},
        "error_total": sum(kinds.get(k, 0) for k in ERRORS),
        "rate_limited_429": kinds.get("429", 0),
        "fallback": sum(r.fallback for r in results),
    }


async def run_level(
    url: str,
    headers: dict[str, str],
    backend: str,
    questions: list[str],
    concurrency: int,
    total: int | None,
    timeout: float,
    request_timeout: float,
    drain: bool = False,
    kbs: list[str] | None = None,
) -> tuple[list[Result], float]:
    """N clients back to back until ``total`` requests or ``timeout`` seconds. With ``drain``,
    no request starts past ``timeout`` and the running ones finish (a soak); without, they are
    cut. With ``kbs``, request i asks the KB i mod len(kbs). Returns the results and the wall
    time."""
    results: list[Result] = []
    numbers = itertools.count()
    t0 = time.perf_counter()

    async def one(client: httpx.AsyncClient, question: str, kb: str | None) -> None:
        t = time.perf_counter()
        kind, fallback, timings = "ok", False, {}
        body: dict[str, Any] = {"question": question, "backend": backend}
        if kb is not None:
            body["kbs"] = [kb]
        try:
            r = await client.post("/v1/chat", json=body)
            if r.status_code == 429:
                kind = "429"
            elif r.status_code >= 500:
                kind = "5xx"
            elif r.status_code >= 400:
                kind = "4xx"
            else:
                body = r.json()
                fallback = bool(body.get("fallback"))
                timings = dict(body.get("timings") or {})
                if not str(body.get("answer") or "").strip():
                    kind = "empty"
        except httpx.TimeoutException:
            kind = "timeout"
        except (httpx.TransportError, json.JSONDecodeError):
            kind = "dropped"
        except asyncio.CancelledError:
            results.append(Result("cut", time.perf_counter() - t, start=t))
            raise
        results.append(Result(kind, time.perf_counter() - t, fallback, timings, t))

    async def client_loop(client: httpx.AsyncClient) -> None:
        while True:
            i = next(numbers)
            if total is not None and i >= total:
                return
            if drain and time.perf_counter() - t0 >= timeout:
                return
            await one(client, questions[i % len(questions)], kbs[i % len(kbs)] if kbs else None)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=request_timeout, limits=limits
    ) as client:
        tasks = [asyncio.create_task(client_loop(client)) for _ in range(concurrency)]
        limit = timeout + request_timeout + 5 if drain else timeout
        _, running = await asyncio.wait(tasks, timeout=limit)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return results, time.perf_counter() - t0


async def soak(
    url: str,
    headers: dict[str, str],
    backend: str,
    questions: list[str],
    concurrency: int,
    seconds: float,
    request_timeout: float,
    pid: int | None,
    every: float,
    upload_every: float | None = None,
) -> dict[str, Any]:
    """One steady level for ``seconds`` while sampling the server's RSS; with
    ``upload_every``, an upload beside the chats every that many seconds."""
    samples: list[tuple[float, float]] = []  # (seconds since the start, MiB)
    t0 = time.perf_counter()
    uploads: Counter[str] = Counter()

    async def uploader() -> None:
        """Replace one document with new text each time (the index keeps its size): an
        upload as a job (202, then polled to its end) or, small, answered at once (200)."""
        assert upload_every is not None
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
            for n in itertools.count():
                await asyncio.sleep(upload_every)
                text = (
                    f"浸泡测试文档\n\n第{n}次上传：某县新建公园{n % 97}个，绿地{n % 89}公顷。" * 40
                )
                try:
                    r = await http.post(
                        "/v1/documents",
                        params={"job": "true"} if n % 2 else None,
                        files={"file": ("soak-upload.txt", text.encode(), "text/plain")},
                    )
                    if r.status_code == 202:
                        job = r.json()["job"]
                        while (state := (await http.get(f"/v1/jobs/{job}")).json())[
                            "status"
                        ] not in ("done", "failed"):
                            await asyncio.sleep(0.5)
                        uploads[
                            "ok" if state["status"] == "done" and not state["errors"] else "error"
                        ] += 1
                    else:
                        uploads["ok" if r.status_code == 200 else "error"] += 1
                except (httpx.TransportError, json.JSONDecodeError, KeyError):
                    uploads["error"] += 1

    def sample() -> None:
        if pid is not None and (mib := rss_mib(pid)) is not None:
            samples.append((round(time.perf_counter() - t0, 1), round(mib, 1)))

    async def sampler() -> None:
        while True:
            await asyncio.sleep(every)
            sample()

    sample()
    before = samples[0][1] if samples else None
    task = asyncio.create_task(sampler())
    beside = asyncio.create_task(uploader()) if upload_every else None
    results, wall = await run_level(
        url,
        headers,
        backend,
        questions,
        concurrency,
        None,
        seconds,
        request_timeout,
        drain=True,
    )
    task.cancel()
    if beside is not None:
        beside.cancel()
    await asyncio.gather(task, *([beside] if beside else []), return_exceptions=True)
    sample()
    summary = summarize(results, concurrency, wall, backend == "local")
    summary["uploads"] = dict(uploads)
    memory: dict[str, Any] = {"pid": pid, "samples": len(samples)}
    if samples:
        t, m = np.array([s[0] for s in samples]), np.array([s[1] for s in samples])
        half = t >= t[-1] / 2

        def slope(mask: Any) -> float | None:
            if int(mask.sum()) < 2:
                return None
            return round(float(np.polyfit(t[mask] / 60, m[mask], 1)[0]), 3)

        memory |= {
            "before_mib": before,
            "after_mib": samples[-1][1],
            "max_mib": float(m.max()),
            "min_mib": float(m.min()),
            "slope_mib_per_min": slope(np.ones_like(t, dtype=bool)),
            "slope_second_half_mib_per_min": slope(half),
            "series": samples,
        }
    return summary | {"soak_s": seconds, "memory": memory}


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8000")
    where.add_argument("--serve", action="store_true", help="start one on loopback")
    ap.add_argument("--api-key", default=os.environ.get("RAG_API_KEY"))
    ap.add_argument("--pid", type=int, help="with --url: the server process, for its memory")
    ap.add_argument("--backend", default="extractive", choices=["extractive", "local", "openai"])
    ap.add_argument(
        "--concurrency", default=None, help="comma-separated N (default 1,8,32; soak 8)"
    )
    ap.add_argument("--requests", type=int, default=100, help="requests per concurrency level")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per level, at most")
    ap.add_argument("--request-timeout", type=float, default=120.0, help="seconds per request")
    ap.add_argument("--soak", type=float, metavar="SECONDS", help="steady load this long")
    ap.add_argument("--sample-every", type=float, default=5.0, help="soak: RSS sample period")
    ap.add_argument(
        "--upload-every",
        type=float,
        metavar="SECONDS",
        help="soak: upload beside the chats this often (one document replaced each time, "
        "every other upload as an ingest job)",
    )
    ap.add_argument(
        "--kbs", type=int, default=0, metavar="N", help="with --serve: N KBs, one vs all N"
    )
    ap.add_argument(
        "--max-open", type=int, help="with --kbs: RAG_KB__MAX_OPEN of the server (default 8)"
    )
    ap.add_argument(
        "--kb-corpus",
        type=Path,
        help="with --kbs: fill the KBs with slices of this folder's files instead of the seeds",
    )
    ap.add_argument("--json-out", type=Path, default=default_json("load"))
    args = ap.parse_args()
    if args.kbs and not args.serve:
        ap.error("--kbs needs --serve (it makes the KBs)")
    levels = [int(n) for n in (args.concurrency or ("8" if args.soak else "1,8,32")).split(",")]
    questions = [s.question for s in load_dataset("seeds").samples]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    log = Path(tempfile.gettempdir()) / f"rag-load-server-{os.getpid()}.log"

    @contextmanager
    def target() -> Iterator[Served]:
        if args.serve:
            with serve(args.backend, log, args.kbs, args.max_open, args.kb_corpus) as served:
                yield served
        else:
            yield Served(args.url, args.pid)

    soaked: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []
    names = kb_names(args.kbs, args.kb_corpus)
    with target() as served:
        url = served.url
        # Outside the figures: every question once with `extractive` (index, jieba and fact
        # caches), one answer from each KB (its first opening in the process, as for the
        # default one), then one answer with the backend (loads its model).
        warm: list[dict[str, Any]] = [{"question": q, "backend": "extractive"} for q in questions]
        warm += [{"question": questions[0], "backend": "extractive", "kbs": [kb]} for kb in names]
        warm.append({"question": questions[0], "backend": args.backend})
        with httpx.Client(base_url=url, headers=headers, timeout=args.request_timeout) as http:
            for body in warm:
                http.post("/v1/chat", json=body).raise_for_status()
        if args.soak:
            n = levels[0]
            console.print(f"[dim]soak: N={n} for {args.soak:.0f} s[/dim]")
            soaked = asyncio.run(
                soak(
                    url,
                    headers,
                    args.backend,
                    questions,
                    n,
                    args.soak,
                    args.request_timeout,
                    served.pid,
                    args.sample_every,
                    args.upload_every,
                )
            )
            results.append(soaked)
        else:
            spreads = [names[:1], names] if args.kbs else [None]
            for n, kbs in itertools.product(levels, spreads):
                console.print(
                    f"[dim]N={n}: up to {args.requests} requests, {args.timeout:.0f} s"
                    + (f", {len(kbs)} KB(s)" if kbs else "")
                    + "[/dim]"
                )
                level, wall = asyncio.run(
                    run_level(
                        url,
                        headers,
                        args.backend,
                        questions,
                        n,
                        args.requests,
                        args.timeout,
                        args.request_timeout,
                        kbs=kbs,
                    )
                )
                summary = summarize(level, n, wall, args.backend == "local")
                summary["kbs"] = len(kbs) if kbs else None
                summary["rss_after_mib"] = rss_mib(served.pid) if served.pid else None
                gauges = kb_gauges(url, headers)
                summary["kbs_open_after"] = gauges.get("rag_kbs_open")
                summary["kb_opens_total"] = gauges.get("rag_kb_opens_total")
                results.append(summary)

    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:.0f}"

    table = Table(
        "N",
        "KBs",
        "sent",
        "ok",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "429",
        "fallback",
        "wait p50",
        "wait p95",
        "wait max",
        "RSS MiB",
        "KBs open",
        "opens",
        title=f"POST /v1/chat, backend {args.backend}"
        + (f", soak {args.soak:.0f} s" if args.soak else "")
        + (" (served here)" if args.serve else ""),
    )
    for r in results:
        lat, wait = r["latency_ms"], r["queue_wait_ms"]
        detail = ", ".join(f"{k} {v}" for k, v in r["errors"].items() if v)
        rss = r.get("rss_after_mib")
        table.add_row(
            str(r["concurrency"]),
            str(r.get("kbs") or "—"),
            str(r["sent"]),
            str(r["ok"]),
            f"{r['throughput_rps']:.2f}",
            ms(lat["p50"]),
            ms(lat["p95"]),
            ms(lat["p99"]),
            str(r["error_total"]) + (f" ({detail})" if detail else ""),
            str(r["rate_limited_429"]),
            str(r["fallback"]),
            ms(wait["p50"]),
            ms(wait["p95"]),
            ms(wait["max"]),
            "—" if rss is None else f"{rss:.0f}",
            _count(r.get("kbs_open_after")),
            _count(r.get("kb_opens_total")),
        )
    console.print(table)
    if soaked is not None:
        mem = soaked["memory"]
        if mem.get("samples"):
            console.print(
                f"server RSS (pid {mem['pid']}, {mem['samples']} samples every "
                f"{args.sample_every:.0f} s): before {mem['before_mib']:.1f} MiB, "
                f"after {mem['after_mib']:.1f} MiB, max {mem['max_mib']:.1f} MiB, "
                f"min {mem['min_mib']:.1f} MiB; slope {mem['slope_mib_per_min']} MiB/min "
                f"(second half {mem['slope_second_half_mib_per_min']} MiB/min)"
            )
        else:
            console.print("server RSS: not sampled (no pid; pass --pid with --url)")
        if args.upload_every:
            console.print(f"uploads beside the soak: {soaked['uploads']}")
    write_json(
        args.json_out,
        {
            "when": datetime.now(UTC).isoformat(),
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "url": "served on loopback" if args.serve else args.url,
            "backend": args.backend,
            "requests_per_level": None if args.soak else args.requests,
            "timeout_s": args.timeout,
            "request_timeout_s": args.request_timeout,
            "soak_s": args.soak,
            "upload_every_s": args.upload_every,
            "kbs": args.kbs,
            "kb_max_open": args.max_open,
            "kb_corpus": str(args.kb_corpus) if args.kb_corpus else None,
            "levels": results,
        },
    )
    console.print(f"written {args.json_out}")


if __name__ == "__main__":
    main()
