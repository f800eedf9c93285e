"""Embedder throughput: fp32 torch vs onnx-int8 on the same passages, in one run.

    python bench/embedder.py                    # seeds + five government work reports
    python bench/embedder.py PATH... --repeat 3 --note "idle machine"

The texts are those the ingest pipeline embeds for these files (bench/ingest.py's pipeline_texts),
in the batches it forms (longest first, RAG_EMBEDDING__BATCH_SIZE). Both models are loaded and
warmed before anything is timed; the backends then alternate, run after run, and the best run of
each is reported (the machine's noise hits both alike). Also: how close the int8 vectors are to
the fp32 ones (cosine, row by row), load times and model file sizes. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import default_json, write_json
from bench.ingest import DEFAULT_INPUTS, pipeline_texts
from rag.bundled.e5 import e5_folder
from rag.bundled.e5_onnx import ONNX_INT8, e5_onnx_folder
from rag.config import EmbeddingBackend, Settings
from rag.embeddings import Embedder

ROOT = Path(__file__).resolve().parents[1]
BACKENDS: tuple[EmbeddingBackend, ...] = ("torch", "onnx-int8")


def machine(note: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "note": note,
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(
            (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if "model name" in ln),
            None,
        )
        info["avx512_vnni"] = "avx512_vnni" in cpuinfo
    except OSError:
        pass
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "paths", nargs="*", type=Path, default=[p for p in DEFAULT_INPUTS if p.exists()]
    )
    ap.add_argument("--repeat", type=int, default=2, help="runs of each; the best is reported")
    ap.add_argument("--note", default="", help="about the machine during the run (recorded)")
    ap.add_argument("--json-out", type=Path, default=default_json("embedder"))
    args = ap.parse_args()

    settings = Settings()
    texts = pipeline_texts(args.paths, settings)
    by_length = sorted(texts, key=len, reverse=True)  # as the ingestor batches them
    batch = settings.embedding.batch_size

    embedders: dict[str, Embedder] = {}
    load_s: dict[str, float] = {}
    for backend in BACKENDS:
        emb = Embedder(
            settings.embedding.model_copy(update={"backend": backend, "base_url": None}),
            settings.models_dir,
        )
        t0 = time.perf_counter()
        emb.encode_passages(by_length[-8:])  # load (building the folder if need be) and warm
        load_s[backend] = time.perf_counter() - t0
        embedders[backend] = emb

    runs: dict[str, list[float]] = {b: [] for b in BACKENDS}
    vectors: dict[str, np.ndarray] = {}
    load_before = os.getloadavg()
    for _ in range(args.repeat):
        for name, emb in embedders.items():
            t0 = time.perf_counter()
            vectors[name] = emb.encoder.encode(by_length, emb.passage_prompt, batch)
            runs[name].append(time.perf_counter() - t0)
    load_after = os.getloadavg()

    cos = (vectors["torch"] * vectors["onnx-int8"]).sum(axis=1)
    tokens = embedders["torch"].count_tokens(by_length)
    best = {b: min(r) for b, r in runs.items()}
    rate = {b: len(texts) / s for b, s in best.items()}
    sizes = {
        "torch": (e5_folder(settings.models_dir) / "model.safetensors").stat().st_size,
        "onnx-int8": (e5_onnx_folder(settings.models_dir) / ONNX_INT8).stat().st_size,
    }
    result = {
        "when": datetime.now(UTC).isoformat(),
        "machine": {
            **machine(args.note),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "model": settings.embedding.model,
        "passages": len(texts),
        "mean_chars": round(sum(map(len, texts)) / len(texts), 1),
        "mean_tokens": round(tokens / len(texts), 1),
        "batch_size": batch,
        "repeat": args.repeat,
        "backends": {
            b: {
                "load_and_warm_s": round(load_s[b], 2),
                "seconds": round(best[b], 2),
                "passages_per_s": round(rate[b], 2),
                "runs": [round(x, 2) for x in runs[b]],
                "model_bytes": sizes[b],
            }
            for b in BACKENDS
        },
        "speedup": round(rate["onnx-int8"] / rate["torch"], 2),
        "cosine_int8_vs_fp32": {
            "mean": round(float(cos.mean()), 5),
            "min": round(float(cos.min()), 5),
            "p5": round(float(np.percentile(cos, 5)), 5),
        },
    }

    table = Table(
        "backend",
        "load s",
        "runs s",
        "passages/s",
        "vs torch",
        "model MB",
        title=f"{len(texts)} passages (mean {result['mean_chars']} chars, "
        f"{result['mean_tokens']} tokens), batch {batch}, best of {args.repeat}",
    )
    for b in BACKENDS:
        table.add_row(
            b,
            f"{load_s[b]:.1f}",
            " / ".join(f"{x:.1f}" for x in runs[b]),
            f"{rate[b]:.2f}",
            f"{rate[b] / rate['torch']:.2f}×",
            f"{sizes[b] / 1e6:,.0f}",
        )
    console = Console()
    console.print(table)
    c = result["cosine_int8_vs_fp32"]
    console.print(
        f"cosine int8 vs fp32, per passage: mean {c['mean']}, p5 {c['p5']}, min {c['min']}"
    )
    console.print(f"load average before/after the timed runs: {load_before} / {load_after}")
    write_json(args.json_out, result)
    console.print(f"written {args.json_out}")


if __name__ == "__main__":
    main()
