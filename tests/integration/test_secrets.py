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


def _leaks(root: Path, keys: dict[str, str] | None = None, skip: tuple[str, ...] = ()) -> list[str]:
    """Files under `root` (but the `skip` ones, relative paths) that hold one of `keys`."""
    keys = keys or {"OPENAI_API_KEY": OPENAI_KEY, "LABEL_STUDIO_API_KEY": LS_KEY}
    hits = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and str(path.relative_to(root)) not in skip:
            data = path.read_bytes()
            hits += [
                f"{path.relative_to(root)}: {name}"
                for name, key in keys.items()
                if key.encode() in data or key.encode("utf-16-le") in data
            ]
    return hits


def _db_leaks(ws, keys: tuple[str, ...]) -> list[str]:
    """Tables of the studio's database whose rows hold one of `keys` (DuckDB may compress
    strings on disk, so every table is read back)."""
    store = Store.open(ws.db_path)
    try:
        tables = [
            r["table_name"]
            for r in store.rows(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            )
        ]
        assert "jobs" in tables and "audit_log" in tables
        found = []
        for table in tables:
            dump = repr(store.rows(f'SELECT * FROM "{table}"'))
            found += [table for key in keys if key in dump]
        return found
    finally:
        store.close()


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
    assert _db_leaks(ws, (OPENAI_KEY, LS_KEY)) == []


def test_the_grep_finds_a_planted_key(tmp_path):
    (tmp_path / "jobs" / "j1").mkdir(parents=True)
    (tmp_path / "jobs" / "j1" / "log.txt").write_bytes(b"x" * 100 + OPENAI_KEY.encode())
    (tmp_path / "notes.txt").write_bytes(LS_KEY.encode("utf-16-le"))
    assert _leaks(tmp_path) == [
        "jobs/j1/log.txt: OPENAI_API_KEY",
        "notes.txt: LABEL_STUDIO_API_KEY",
    ]


TYPED_KEY = "sk-TYPED-for-one-job-9b1d2e"
RECIPE = {
    "task": "Answer Tasklane customer questions",
    "per_topic": 2,
    "topics": ["billing", "permissions"],
    "model": "test-model",
}


def _generate(ctx, base_url: str, api_key: str | None) -> str:
    return generate(
        ctx,
        "support",
        recipe=RECIPE,
        base_url=base_url,
        api_key=api_key,
        concurrency=2,
        near_dup_threshold=0.999,
        start_worker=False,
    )


def test_a_key_typed_for_one_job_reaches_that_url_and_nothing_else(
    ws, store, act, run_inline, monkeypatch
):
    """An admin types another URL and its key: the key goes beside the spec (a 0600 file the
    job takes at its start), reaches only that server, and is nowhere after the job; the
    configured key never goes to that URL; a lead may neither type a key nor another URL."""
    import stat

    from backend.auth import Actor, PermissionDenied

    with OpenAIServer() as configured, OpenAIServer() as other:
        monkeypatch.setenv("OPENAI_BASE_URL", configured.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        admin, lead = Actor("ada", "admin"), Actor("lee", "lead")
        with pytest.raises(PermissionDenied):
            _generate(act(lead), other.base_url, TYPED_KEY)
        with pytest.raises(PermissionDenied):
            _generate(act(lead), other.base_url, None)
        assert list(ws.jobs.iterdir()) == []  # refused: no job, no key file

        job = _generate(act(admin), other.base_url, TYPED_KEY)
        key_file = ws.job_dir(job) / "secret.json"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert TYPED_KEY not in (ws.job_dir(job) / "spec.json").read_text()
        assert run_inline(ws, job).state == "succeeded"
        assert not key_file.exists()  # taken at the job's start
        assert other.authorizations and set(other.authorizations) == {f"Bearer {TYPED_KEY}"}
        assert configured.authorizations == []

        # the next job to that URL, with no key typed, gets none (not the typed one again,
        # and never the configured one)
        job2 = _generate(act(admin), other.base_url, None)
        assert run_inline(ws, job2).state == "succeeded"
        assert set(other.authorizations[-2:]) == {"Bearer not-needed"}  # the SDK's filler
        ingest_all(store, ws)

    keys = {"typed": TYPED_KEY, "OPENAI_API_KEY": OPENAI_KEY}
    assert _leaks(ws.root, keys) == []
    store.close()
    assert _db_leaks(ws, (TYPED_KEY, OPENAI_KEY)) == []


def test_a_key_left_for_a_job_goes_when_the_job_ends_in_any_way(ws, act, monkeypatch):
    """Cancelled while queued, or its process gone before it read the key: the key file is
    removed (by the cancel, and by the worker when the job's process ends)."""
    from backend.auth import Actor
    from backend.jobs import queue
    from backend.jobs.context import write_job_key

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    admin = Actor("ada", "admin")
    job = _generate(act(admin), "http://127.0.0.1:8/v1", TYPED_KEY)
    assert (ws.job_dir(job) / "secret.json").exists()
    queue.cancel(ws, job, actor=admin)
    assert not (ws.job_dir(job) / "secret.json").exists()

    job2 = _generate(act(admin), "http://127.0.0.1:8/v1", TYPED_KEY)
    assert queue.claim_next(ws) == job2
    worker._finish(ws, job2, -9)  # its process was killed before it started
    assert not (ws.job_dir(job2) / "secret.json").exists()
    write_job_key(ws.job_dir(job2), None, TYPED_KEY)  # and whatever is left: the next end
    worker._finish(ws, job2, 1)
    assert _leaks(ws.root, {"typed": TYPED_KEY}) == []


def test_a_typed_key_through_a_real_worker(ws, act):
    """The worker's own job process (python -m backend.jobs.run) takes the key, sends it, and
    leaves nothing behind."""
    from backend.auth import Actor
    from backend.jobs import queue

    with OpenAIServer() as other:
        job = _generate(act(Actor("ada", "admin")), other.base_url, TYPED_KEY)
        worker.ensure_worker(ws, idle_exit_s=5)
        status = queue.wait(ws, job, timeout_s=120)
        assert status.state == "succeeded", status.error
        assert set(other.authorizations) == {f"Bearer {TYPED_KEY}"}
    assert _leaks(ws.root, {"typed": TYPED_KEY}) == []


def test_secrets_saved_in_the_browser_stay_in_their_one_private_file(ws, store, act):
    """Keys saved on the Settings page live only in workspace/secrets.json (0600): not in the
    database, its audit rows, settings.json, nor anywhere on the rendered Settings page."""
    import stat

    from backend.auth import Actor
    from backend.settings.actions import save_settings

    save_settings(
        act(Actor("ada", "admin")),
        values={
            "openai_base_url": "http://127.0.0.1:9/v1",
            "allowed_endpoints": ["http://127.0.0.1:7/v1"],
        },
        secrets={"openai_api_key": OPENAI_KEY, "label_studio_token": LS_KEY},
        endpoint_keys={"http://127.0.0.1:7/v1": TYPED_KEY},
    )
    assert stat.S_IMODE((ws.root / "secrets.json").stat().st_mode) == 0o600
    store.close()
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(ROOT / "pages" / "settings.py"), default_timeout=120)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        drawn = "\n".join(_rendered(at._tree))
        shown = at.dataframe[0].value.set_index("name")["value"]
    finally:
        st.cache_resource.clear()
    assert shown["openai_api_key"] == "•••• (set)" and "API key: set" in drawn
    assert OPENAI_KEY not in drawn and LS_KEY not in drawn and TYPED_KEY not in drawn
    keys = {"OPENAI_API_KEY": OPENAI_KEY, "LABEL_STUDIO_API_KEY": LS_KEY, "typed": TYPED_KEY}
    assert _leaks(ws.root, keys, skip=("secrets.json",)) == []
    assert _db_leaks(ws, tuple(keys.values())) == []


def test_the_cli_api_key_goes_to_that_url_only(ws):
    """`ftstudio generate --base-url URL --api-key KEY`: the key reaches URL, through the
    worker's job process, and is in no file afterwards (not the spec, log or database)."""
    from typer.testing import CliRunner

    from backend.cli import app

    with OpenAIServer() as other:
        result = CliRunner().invoke(
            app,
            [
                "generate",
                "--dataset",
                "support",
                "--provider",
                "openai",
                "--model",
                "test-model",
                "--topics",
                "billing,permissions",
                "--per-topic",
                "1",
                "--base-url",
                other.base_url,
                "--api-key",
                TYPED_KEY,
            ],
        )
        assert result.exit_code == 0, result.output
        assert other.authorizations and set(other.authorizations) == {f"Bearer {TYPED_KEY}"}
    assert TYPED_KEY not in result.output
    assert _leaks(ws.root, {"typed": TYPED_KEY}) == []
    assert _db_leaks(ws, (TYPED_KEY,)) == []
