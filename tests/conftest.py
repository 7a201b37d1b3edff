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


STUDIO_PROCESSES = ("backend.jobs.worker", "backend.jobs.run", "backend.train.rank")


def stop_studio_processes(under: Path) -> list[int]:
    """Kill the workers, jobs and ranks whose workspace lies under `under` (a CLI command in a
    test starts a worker that would otherwise wait out its idle time after the run)."""
    import signal

    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [a.decode(errors="replace") for a in args]
        inside = [a for a in text if a == str(under) or a.startswith(f"{under}/")]
        if not inside or not any(m in text for m in STUDIO_PROCESSES):
            continue
        pid = int(proc.name)
        try:  # a worker leads its own session: its jobs go with it
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            pass
    return killed


@pytest.fixture(scope="session", autouse=True)
def _no_studio_process_outlives_the_run(tmp_path_factory):
    yield
    stop_studio_processes(tmp_path_factory.getbasetemp())


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Workspace:
    """An empty workspace that Settings() also points at (FTSTUDIO_WORKSPACE); the workers
    and jobs a test started over it are stopped when the test ends."""
    root = tmp_path / "workspace"
    monkeypatch.setenv("FTSTUDIO_WORKSPACE", str(root))
    monkeypatch.setenv("FTSTUDIO_HEARTBEAT_S", "0.5")
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    yield Workspace(root).ensure()
    stop_studio_processes(root)


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
