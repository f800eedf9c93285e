"""Where the benchmarks write their figures: ``bench/results/<name>-<UTC timestamp>.json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def stamp() -> str:
    """The UTC time now, as result files are named: ``20250101T120000``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}"


def default_json(name: str) -> Path:
    """``bench/results/<name>-<stamp>.json``: a script's default ``--json-out``."""
    return RESULTS_DIR / f"{name}-{stamp()}.json"


def write_json(path: Path, result: Any, **dumps: Any) -> Path:
    """``result`` as indented JSON at ``path`` (its folder made if need be); ``dumps`` go to
    ``json.dumps`` (``ensure_ascii=False``, ``default=str`` …)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, **dumps))
    return path
