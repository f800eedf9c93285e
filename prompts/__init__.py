"""Prompt text as files, loaded by name: ``load("answer_system_zh")`` reads ``answer_system_zh.md``."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """The text of ``prompts/<name>.md`` (without its trailing newline)."""
    try:
        return (
            (resources.files(__package__) / f"{name}.md").read_text(encoding="utf-8").rstrip("\n")
        )
    except FileNotFoundError as exc:
        raise KeyError(f"no prompt named '{name}' in {__package__}/") from exc
