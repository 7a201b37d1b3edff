"""The layering rules: backend never imports streamlit; pages stay light at import time."""

from __future__ import annotations

import ast
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
