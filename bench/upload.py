"""One large upload to a served API: how long the request is held, how long until the text is
in the index, and the server's memory meanwhile.

    python bench/upload.py [--chars 600000] [--root DIR ...]

For each ``--root`` (a checkout of this project; default: this one, and give an older one
beside it to compare), a server is started from that checkout's code on a fresh data dir
(extractive backend, loopback), a one-line text of ``--chars`` characters (the seeds' text
repeated) is posted to ``/v1/documents``, and the reply is timed. A 202 (an ingest job) is then
followed on ``/v1/jobs/{id}`` to its end. The server's RSS is sampled every 0.25 s from before
the upload to the end. One row per root, in one run; JSON to ``bench/results/upload-*.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import default_json, write_json
from bench.load import _free_port, rss_mib, wait_ready

ROOT = Path(__file__).resolve().parents[1]
console = Console(width=None if sys.stdout.isatty() else 120)


def one_line_text(chars: int) -> bytes:
    seed = (ROOT / "seeds" / "000_941dbc5847c0e16b.txt").read_text(encoding="utf-8")
    line = seed.replace("\n", "")
    return (line * (chars // len(line) + 1))[:chars].encode()


def measure(root: Path, data: bytes) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="rag-upload-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {"RAG_DATA_DIR": str(folder / "data"), "RAG_LLM__BACKEND": "extractive"}
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:app_factory", "--port", str(port)],
        cwd=root,  # the code of that checkout
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            if (mib := rss_mib(proc.pid)) is not None:
                samples.append(mib)
            time.sleep(0.25)

    try:
        wait_ready(base, proc, folder / "server.log")
        before = rss_mib(proc.pid)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        r = httpx.post(f"{base}/v1/documents", files={"file": ("big.txt", data)}, timeout=3600)
        held = time.perf_counter() - t0
        if r.status_code == 202:
            job = r.json()["job"]
            while (state := httpx.get(f"{base}/v1/jobs/{job}").json())["status"] not in (
                "done",
                "failed",
            ):
                time.sleep(0.5)
            result = state["documents"][0] if state["documents"] else {"status": state["status"]}
        else:
            result = r.json()["documents"][0]
        ingested = time.perf_counter() - t0
        stop.set()
        sampler.join()
        return {
            "root": str(root),
            "status": r.status_code,
            "request_s": round(held, 2),
            "ingested_s": round(ingested, 1),
            "document": result.get("status"),
            "chunks": result.get("chunks"),
            "rss_before_mib": before,
            "rss_peak_mib": max(samples) if samples else None,
            "rss_after_mib": rss_mib(proc.pid),
        }
    finally:
        stop.set()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chars", type=int, default=600_000, help="characters of the one line")
    ap.add_argument(
        "--root", type=Path, action="append", help="a checkout to serve from (repeatable)"
    )
    ap.add_argument("--json-out", type=Path, default=default_json("upload"))
    args = ap.parse_args()
    data = one_line_text(args.chars)
    rows = [measure(root.resolve(), data) for root in args.root or [ROOT]]
    table = Table(
        "server code",
        "reply",
        "request held",
        "ingested after",
        "document",
        "chunks",
        "RSS before",
        "RSS peak",
        "RSS after",
        title=f"one upload: a one-line text of {args.chars:,} characters ({len(data):,} bytes)",
    )
    for r in rows:
        table.add_row(
            r["root"],
            str(r["status"]),
            f"{r['request_s']} s",
            f"{r['ingested_s']} s",
            str(r["document"]),
            str(r["chunks"]),
            f"{r['rss_before_mib']:.0f} MiB",
            f"{r['rss_peak_mib']:.0f} MiB",
            f"{r['rss_after_mib']:.0f} MiB",
        )
    console.print(table)
    write_json(args.json_out, {"chars": args.chars, "bytes": len(data), "runs": rows})
    console.print(f"written {args.json_out}")


if __name__ == "__main__":
    main()
