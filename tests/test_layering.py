"""Dependencies point one way: rag ← api, rag ← eval ← bench (RAGService is the one door).

Read from the source with ``ast``: every ``import`` of every module, at module level or inside a
function, is checked against the rules below. The exceptions are named one by one."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("rag", "api", "eval", "bench")

# What each layer may not import (top-level package names).
FORBIDDEN = {
    "rag": {"api", "eval", "bench"},
    "api": {"eval", "bench"},
    "eval": {"api", "bench"},
    "bench": {"api"},
}
# The only imports across those lines, each inside a function (loaded when it runs, never when
# the module is imported): (file, module imported).
LAZY_EXCEPTIONS = {
    # `rag eval` runs the harness: loaded only when that command is invoked (rag --help is not)
    ("rag/cli.py", "eval.cli"),
    # `rag eval --url`: the harness measures a running service through its Python client
    ("eval/targets.py", "api.client"),
}


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repo root, e.g. "rag/cli.py"
    module: str  # absolute, e.g. "rag.chain"
    names: tuple[str, ...]  # what `from module import …` takes (empty for `import module`)
    lazy: bool  # inside a function
    line: int

    def __str__(self) -> str:
        what = f"from {self.module} import {', '.join(self.names)}" if self.names else self.module
        return f"{self.path}:{self.line}: {what}{' (in a function)' if self.lazy else ''}"


def _package_of(path: Path) -> str:
    """The package a relative import starts from: ``rag`` for rag/x.py and for rag/__init__.py
    alike, ``rag.facts`` for rag/facts/x.py."""
    return ".".join(path.relative_to(ROOT).parent.parts)


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(ROOT).as_posix()
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(rel, alias.name, (), lazy, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                module = child.module or ""
                if child.level:  # relative: resolved against the module's package
                    base = _package_of(path).split(".")
                    base = base[: len(base) - (child.level - 1)]
                    module = ".".join([*base, module] if module else base)
                names = tuple(alias.name for alias in child.names)
                found.append(Import(rel, module, names, lazy, child.lineno))
            visit(child, inner)

    visit(tree, False)
    return found


def modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def all_imports(layer: str) -> list[Import]:
    return [i for path in modules(layer) for i in imports_of(path)]


def top(module: str) -> str:
    return module.split(".", 1)[0]


@pytest.mark.parametrize("layer", LAYERS)
def test_dependencies_point_one_way(layer: str) -> None:
    assert modules(layer), f"no modules found under {layer}/"
    wrong = [
        str(i)
        for i in all_imports(layer)
        if top(i.module) in FORBIDDEN[layer]
        and not (i.lazy and (i.path, i.module) in LAZY_EXCEPTIONS)
    ]
    assert not wrong, f"{layer} may not import {sorted(FORBIDDEN[layer])}:\n" + "\n".join(wrong)


def test_the_exceptions_are_lazy_and_still_needed() -> None:
    """Each exception is an import inside a function of that file, and is still there (a stale
    exception would let a later module-level import of the same module through unnoticed)."""
    for path, module in sorted(LAZY_EXCEPTIONS):
        found = [i for i in imports_of(ROOT / path) if i.module == module]
        assert found, f"{path} no longer imports {module}: drop the exception"
        assert all(i.lazy for i in found), [str(i) for i in found]


def test_retrieval_does_not_import_ingest() -> None:
    """Retrieval reads the index; writing it (rag.ingest) is another side of the library."""
    wrong = [
        str(i)
        for i in imports_of(ROOT / "rag" / "retrieval.py")
        if i.module == "rag.ingest"
        or i.module.startswith("rag.ingest.")
        or (i.module == "rag" and "ingest" in i.names)
    ]
    assert not wrong, wrong


def test_bench_uses_the_harness_library_and_public_rag_names() -> None:
    """bench imports eval's library modules (targets, runner, datasets, metrics), never the
    `rag eval` command, and no private name of rag."""
    wrong = []
    for i in all_imports("bench"):
        if i.module == "eval.cli" or (i.module == "eval" and "cli" in i.names):
            wrong.append(f"{i}: the command line, not a library")
        if top(i.module) == "rag" and (
            any(part.startswith("_") for part in i.module.split("."))
            or any(name.startswith("_") for name in i.names)
        ):
            wrong.append(f"{i}: a private name of rag")
    assert not wrong, "\n".join(wrong)


def test_rag_help_does_not_load_the_harness() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from rag.cli import app; "
        "CliRunner().invoke(app, ['--help']); "
        "print('eval' in sys.modules or any(m.startswith('eval.') for m in sys.modules))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert res.stdout.strip() == "False", res.stdout + res.stderr
