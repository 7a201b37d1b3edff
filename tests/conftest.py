"""Shared fixtures: an isolated workspace per test, the tiny model built once per session,
a store, and a way to run a queued job in this process (fast) or through a real worker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.store import Store  # noqa: E402
from backend.workspace import Workspace  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny Llama demo model, built locally once per test session."""
    from backend.train.demo_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Workspace:
    """An empty workspace that Settings() also points at (FTSTUDIO_WORKSPACE)."""
    root = tmp_path / "workspace"
    monkeypatch.setenv("FTSTUDIO_WORKSPACE", str(root))
    monkeypatch.setenv("FTSTUDIO_HEARTBEAT_S", "0.5")
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return Workspace(root).ensure()


@pytest.fixture
def store(ws) -> Store:
    s = Store.open(ws.db_path)
    yield s
    s.close()


@pytest.fixture
def act(ws, store):
    """`act(actor)`: an action context on the test's store and workspace (None: the shell)."""
    from backend.action import Ctx
    from backend.config import Settings

    return lambda actor=None: Ctx(store=store, ws=ws, settings=Settings(), actor=actor)


@pytest.fixture
def run_inline():
    """Run a queued job to its end in this process (no worker, no subprocess start-up)."""
    from backend.jobs import queue
    from backend.jobs.run import run_job

    def _run(ws: Workspace, job_id: str):
        claimed = queue.claim_next(ws)
        assert claimed == job_id, f"expected to claim {job_id}, got {claimed}"
        run_job(ws, job_id, heartbeat_s=0.5)
        queue.release(ws, job_id)
        return queue.get(ws, job_id)

    return _run
