"""The layering rules: backend never imports streamlit; pages stay light at import time."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {
    "torch",
    "transformers",
    "peft",
    "trl",
    "bitsandbytes",
    "datasets",
    "sentence_transformers",
    "accelerate",
}


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_backend_never_imports_streamlit_or_studio():
    offenders = [
        f"{path.relative_to(ROOT)}: {sorted(bad)}"
        for path in sorted((ROOT / "backend").rglob("*.py"))
        if (bad := _imports(path, top_level_only=False) & {"streamlit", "studio", "pages"})
    ]
    assert offenders == []


def test_pages_and_shell_do_not_import_heavy_libraries_at_top():
    files = sorted((ROOT / "pages").glob("*.py")) + sorted((ROOT / "studio").rglob("*.py"))
    offenders = [
        f"{path.relative_to(ROOT)}: {sorted(bad)}"
        for path in files
        if (bad := _imports(path, top_level_only=True) & HEAVY)
    ]
    assert offenders == []


def test_only_the_store_talks_to_duckdb():
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "backend").rglob("*.py"))
        if "duckdb" in _imports(path, top_level_only=False)
        and "store" not in path.relative_to(ROOT).parts
    ]
    assert offenders == []


# --- the action layer (issue: every change goes through an action) ---------------------------

SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|WITH|BEGIN|COMMIT)\b")
QUEUE_MODULES = {"backend.jobs.queue", "backend.jobs.worker"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _qualified_imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (inside functions too), fully qualified;
    `from a import b` counts as both `a` and `a.b` (b may be a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = (package or _module_name(path)).split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_import_linter_contracts_hold():
    """The contracts in pyproject.toml: backend never imports streamlit/studio; the store no
    feature, integration, ingestion or job package; job runners no store and no duckdb; duckdb
    only under backend.store; CLI and shell reach the queue only through actions."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_pages_reach_the_job_queue_only_through_actions():
    offenders = {
        str(path.relative_to(ROOT)): sorted(bad)
        for path in sorted((ROOT / "pages").glob("*.py"))
        if (bad := {m for m in _qualified_imports(path) if m in QUEUE_MODULES})
    }
    assert offenders == {}


def test_no_sql_runs_outside_the_store():
    files = [
        p
        for p in sorted((ROOT / "backend").rglob("*.py"))
        if "store" not in p.relative_to(ROOT).parts
    ]
    files += sorted((ROOT / "studio").rglob("*.py")) + sorted((ROOT / "pages").glob("*.py"))
    offenders = []
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SQL.match(node.value):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} SQL text")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"execute", "executemany", "sql"}
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.func.attr}()")
    assert offenders == []


def test_no_import_circles_in_backend_counting_imports_inside_functions():
    modules = {_module_name(p): p for p in sorted((ROOT / "backend").rglob("*.py"))}
    graph = {
        name: {m for m in _qualified_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    # a package's __init__ importing its own modules is not a circle with them
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                circles.append(sorted(part))

    sys.setrecursionlimit(10000)
    for name in graph:
        if name not in index:
            visit(name)
    assert circles == []


def test_the_duckdb_contract_names_every_backend_module_but_the_store():
    """A new top-level backend module must be added to the duckdb contract in pyproject."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["name"].startswith("duckdb")]
    listed = set(contract["source_modules"])
    present = {
        f"backend.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "backend").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert present - {"backend.store"} <= listed
