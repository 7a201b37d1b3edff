"""Secrets never reach the workspace: with distinctive API keys set, a full flow (generate
through a loopback OpenAI-compatible server that really receives the key, a short training run
with the tiny model, ingestion, every page rendered) leaves no copy of either key in any file
under the workspace (DuckDB file and WAL, job specs, logs, run folders, exports) nor on any
rendered page."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import worker
from backend.store import Store
from backend.synth.actions import generate
from backend.train.actions import dataset_file, start_run
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OPENAI_KEY = "sk-SECRET-openai-7f3a9c1e5b"
LS_KEY = "ls-SECRET-labelstudio-4d8e2b6f0a"
PAGES = [
    "overview",
    "datasets",
    "review",
    "training",
    "compare",
    "preferences",
    "monitoring",
    "jobs",
    "settings",
    "users",
    "audit",
]


def _queue_run(ws, fields, **kwargs) -> str:
    """Queue a train job through the action, for this process to run (no worker)."""
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    return start_run(shell, fields, start_worker=False, **kwargs)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rendered(node) -> list[str]:
    """Everything an AppTest run drew, as the text of its protobufs."""
    out = [str(node.proto)] if getattr(node, "proto", None) is not None else []
    for child in getattr(node, "children", {}).values():
        out += _rendered(child)
    return out


def _leaks(root: Path) -> list[str]:
    hits = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [
                f"{path.relative_to(root)}: {name}"
                for name, key in (("OPENAI_API_KEY", OPENAI_KEY), ("LABEL_STUDIO_API_KEY", LS_KEY))
                if key.encode() in data or key.encode("utf-16-le") in data
            ]
    return hits


def test_no_secret_in_the_workspace_after_a_full_flow(ws, tiny_model_dir, run_inline, monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    with OpenAIServer() as srv:
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("FTSTUDIO_LLM_MODEL", "test-model")
        monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{_closed_port()}")
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", LS_KEY)
        monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))

        store = Store.open(ws.db_path)
        try:
            recipe = {
                "task": "Answer Tasklane customer questions",
                "per_topic": 4,
                "topics": ["billing", "gantt chart", "permissions"],
                "model": "test-model",
            }
            gen = generate(
                Ctx(store=store, ws=ws, settings=Settings(), actor=None),
                "support",
                recipe=recipe,
                base_url=srv.base_url,
                concurrency=4,
                near_dup_threshold=0.999,
            )
            assert run_inline(ws, gen).state == "succeeded"
            ingest_all(store, ws)
            # the key really went out, as a header, to the endpoint
            assert srv.authorizations and set(srv.authorizations) == {f"Bearer {OPENAI_KEY}"}

            fields = {
                "base_model": str(tiny_model_dir),
                **dataset_file(store, ws, "support"),
                "max_steps": 3,
                "batch_size": 4,
                "max_length": 64,
                "quant": "none",
                "eval_split": 0.0,
                "n_eval_prompts": 1,
                "max_new_tokens": 4,
            }
            run = _queue_run(ws, fields)
            assert run_inline(ws, run).state == "succeeded"
            ingest_all(store, ws)
        finally:
            store.close()

        st.cache_resource.clear()
        st.cache_data.clear()
        drawn: list[str] = []
        for name in PAGES:
            at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=120)
            at.run()
            assert not at.exception, (name, [e.value for e in at.exception])
            drawn += [f"{name}: {t}" for t in _rendered(at._tree)]
        settings_text = [t for t in drawn if t.startswith("settings:")]
        assert any("openai_api_key" in t for t in settings_text)  # shown, but only masked
        st.cache_resource.clear()  # closes the dashboard's store: the DB file is final
        st.cache_data.clear()

    assert not [t[:200] for t in drawn if OPENAI_KEY in t or LS_KEY in t]
    files = [p for p in ws.root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" or p.name == ws.db_path.name for p in files)
    assert any(p.name == "log.txt" for p in files) and any(p.name == "spec.json" for p in files)
    assert _leaks(ws.root) == []
    # DuckDB may compress strings on disk, so read every table back as well
    store = Store.open(ws.db_path)
    try:
        tables = [
            r["table_name"]
            for r in store.rows(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            )
        ]
        assert "jobs" in tables and "audit_log" in tables
        for table in tables:
            dump = repr(store.rows(f'SELECT * FROM "{table}"'))
            assert OPENAI_KEY not in dump and LS_KEY not in dump, table
    finally:
        store.close()


def test_the_grep_finds_a_planted_key(tmp_path):
    (tmp_path / "jobs" / "j1").mkdir(parents=True)
    (tmp_path / "jobs" / "j1" / "log.txt").write_bytes(b"x" * 100 + OPENAI_KEY.encode())
    (tmp_path / "notes.txt").write_bytes(LS_KEY.encode("utf-16-le"))
    assert _leaks(tmp_path) == [
        "jobs/j1/log.txt: OPENAI_API_KEY",
        "notes.txt: LABEL_STUDIO_API_KEY",
    ]
