"""Concurrent chat requests against a running service: throughput, latency, errors.

    python bench/load.py --serve [--backend extractive|local] [--concurrency 1,8,32]
                         [--requests 100] [--timeout 120]
    python bench/load.py --url http://127.0.0.1:8000 [--api-key KEY] ...

For each concurrency N, N clients (one httpx AsyncClient, N connections) send `POST /v1/chat`
back to back, cycling through the seed dev questions, until `--requests` have been sent or
`--timeout` seconds have passed (requests still running then are cut and counted). Reports
throughput (successful answers per second of wall time), p50/p95 latency of the successful ones,
errors (5xx, 4xx, dropped connections, request timeouts, cut at the deadline) and how many answers
fell back to the extractive one. `--serve` indexes the seeds (as `rag eval` does) and starts the
app under uvicorn in a child process on a free loopback port, one worker.
"""

from __future__ import annotations

import argparse
import asyncio
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from eval.cli import eval_settings
from eval.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[1]
ERRORS = ("5xx", "4xx", "dropped", "timeout", "cut")
console = Console(width=None if sys.stdout.isatty() else 120)


@dataclass
class Result:
    kind: str  # ok, or one of ERRORS
    seconds: float
    fallback: bool = False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(backend: str, log: Path) -> Iterator[str]:
    """Index the seeds, then run the app in a child process; yields its URL."""
    settings = eval_settings("seeds")
    env = os.environ | {
        "RAG_DATA_DIR": str(settings.data_dir.resolve()),
        "RAG_COLLECTION": settings.collection,
        "RAG_LLM__BACKEND": backend,
        "RAG_API_KEYS": "",
    }
    cli = [sys.executable, "-c", "from rag.cli import app; app()"]
    subprocess.run([*cli, "ingest", str(ROOT / "seeds")], env=env, cwd=ROOT, check=True)
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
            deadline = time.monotonic() + 300
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"the server exited ({proc.returncode}); see {log}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"the server did not get ready; see {log}")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def run_level(
    url: str,
    headers: dict[str, str],
    backend: str,
    questions: list[str],
    concurrency: int,
    total: int,
    timeout: float,
    request_timeout: float,
) -> dict[str, Any]:
    results: list[Result] = []
    numbers = itertools.count()

    async def one(client: httpx.AsyncClient, question: str) -> None:
        t = time.perf_counter()
        kind, fallback = "ok", False
        try:
            r = await client.post("/v1/chat", json={"question": question, "backend": backend})
            if r.status_code >= 500:
                kind = "5xx"
            elif r.status_code >= 400:
                kind = "4xx"
            else:
                fallback = bool(r.json().get("fallback"))
        except httpx.TimeoutException:
            kind = "timeout"
        except httpx.TransportError:
            kind = "dropped"
        except asyncio.CancelledError:
            results.append(Result("cut", time.perf_counter() - t))
            raise
        results.append(Result(kind, time.perf_counter() - t, fallback))

    async def client_loop(client: httpx.AsyncClient) -> None:
        while (i := next(numbers)) < total:
            await one(client, questions[i % len(questions)])

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=request_timeout, limits=limits
    ) as client:
        tasks = [asyncio.create_task(client_loop(client)) for _ in range(concurrency)]
        _, running = await asyncio.wait(tasks, timeout=timeout)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    wall = time.perf_counter() - t0

    ok = [r.seconds * 1000 for r in results if r.kind == "ok"]
    kinds = Counter(r.kind for r in results)
    return {
        "concurrency": concurrency,
        "sent": len(results),
        "ok": len(ok),
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(ok) / wall, 3) if wall > 0 else 0.0,
        "latency_ms": {
            "p50": round(float(np.percentile(ok, 50)), 1) if ok else None,
            "p95": round(float(np.percentile(ok, 95)), 1) if ok else None,
            "mean": round(float(np.mean(ok)), 1) if ok else None,
            "max": round(max(ok), 1) if ok else None,
        },
        "errors": {k: kinds.get(k, 0) for k in ERRORS},
        "fallback": sum(r.fallback for r in results),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    target = ap.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8000")
    target.add_argument("--serve", action="store_true", help="start one on loopback")
    ap.add_argument("--api-key", default=os.environ.get("RAG_API_KEY"))
    ap.add_argument("--backend", default="extractive", choices=["extractive", "local", "openai"])
    ap.add_argument("--concurrency", default="1,8,32", help="comma-separated N")
    ap.add_argument("--requests", type=int, default=100, help="requests per concurrency level")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per level, at most")
    ap.add_argument("--request-timeout", type=float, default=120.0, help="seconds per request")
    ap.add_argument(
        "--json-out",
        type=Path,
        default=ROOT / "bench" / "results" / f"load-{datetime.now(UTC):%Y%m%dT%H%M%S}.json",
    )
    args = ap.parse_args()
    levels = [int(n) for n in args.concurrency.split(",")]
    questions = [s.question for s in load_dataset("seeds").samples]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    log = Path(tempfile.gettempdir()) / f"rag-load-server-{os.getpid()}.log"

    @contextmanager
    def target_url() -> Iterator[str]:
        if args.serve:
            with serve(args.backend, log) as url:
                yield url
        else:
            yield args.url

    with target_url() as url:
        # Outside the figures: every question once with `extractive` (index, jieba and fact
        # caches), then one answer with the backend (loads its model).
        warm = [(q, "extractive") for q in questions] + [(questions[0], args.backend)]
        with httpx.Client(base_url=url, headers=headers, timeout=args.request_timeout) as http:
            for question, backend in warm:
                http.post(
                    "/v1/chat", json={"question": question, "backend": backend}
                ).raise_for_status()
        results = []
        for n in levels:
            console.print(f"[dim]N={n}: up to {args.requests} requests, {args.timeout:.0f} s[/dim]")
            results.append(
                asyncio.run(
                    run_level(
                        url,
                        headers,
                        args.backend,
                        questions,
                        n,
                        args.requests,
                        args.timeout,
                        args.request_timeout,
                    )
                )
            )

    table = Table(
        "N",
        "sent",
        "ok",
        "req/s",
        "p50 ms",
        "p95 ms",
        *ERRORS,
        "fallback",
        title=f"POST /v1/chat, backend {args.backend}" + (" (served here)" if args.serve else ""),
    )
    for r in results:
        lat = r["latency_ms"]
        table.add_row(
            str(r["concurrency"]),
            str(r["sent"]),
            str(r["ok"]),
            f"{r['throughput_rps']:.2f}",
            "—" if lat["p50"] is None else f"{lat['p50']:.0f}",
            "—" if lat["p95"] is None else f"{lat['p95']:.0f}",
            *[str(r["errors"][k]) for k in ERRORS],
            str(r["fallback"]),
        )
    console.print(table)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(),
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "url": "served on loopback" if args.serve else args.url,
                "backend": args.backend,
                "requests_per_level": args.requests,
                "timeout_s": args.timeout,
                "request_timeout_s": args.request_timeout,
                "levels": results,
            },
            indent=2,
        )
    )
    console.print(f"written {args.json_out}")


if __name__ == "__main__":
    main()
