"""The generate job against a real loopback OpenAI-compatible server, through the real SDK."""

from __future__ import annotations

import json

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import queue
from backend.store import datasets as dstore
from backend.store import synth as sstore
from backend.synth.actions import generate
from tests.support.openai_server import OpenAIServer

SECRET = "sk-test-do-not-leak-123"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with OpenAIServer(timeout_sleep_s=1.0) as srv:
        yield srv


def recipe(**kw) -> dict:
    base = {
        "task": "Answer Tasklane customer questions",
        "topics": ["billing", "gantt chart", "permissions"],
        "per_topic": 4,
        "system_prompt": "You are Tasklane support.",
        "model": "test-model",
    }
    return {**base, **kw}


def submit(store, ws, srv, **kw):
    recipe_kw = kw.pop("recipe_kw", {})
    fields = {
        "base_url": srv.base_url,
        "concurrency": 4,
        "backoff_s": 0.01,
        "timeout_s": 0.5,
        "max_retries": 3,
        "near_dup_threshold": 0.999,
    }
    fields.update(kw)
    ctx = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
    return generate(ctx, "support", recipe=recipe(**recipe_kw), start_worker=False, **fields)


def test_faults_are_retried_or_rejected_with_reasons(ws, store, server, run_inline):
    server.inject("429", "500", "timeout", "malformed", "disconnect", "bad_json", "schema")
    job_id = submit(store, ws, server)
    status = run_inline(ws, job_id)
    assert status.state == "succeeded", status.error
    ingest_all(store, ws)
    rejects = sstore.rejects(store, job_id=job_id)
    stages = sorted(r["stage"] for r in rejects)
    assert stages == ["parse", "validate"], rejects
    assert any("no JSON object" in r["reason"] for r in rejects)
    assert any("messages" in r["reason"] and r["stage"] == "validate" for r in rejects)
    version = dstore.resolve_version(store, "support")
    assert version["n_examples"] == 10
    items = dstore.version_examples(store, version["id"])
    assert all(
        e["messages"][0] == {"role": "system", "content": "You are Tasklane support."}
        for e in items
    )
    origin = items[0]["origin"]
    assert origin["job"] == job_id and origin["provider"] == "openai"
    assert origin["model"] == "test-model" and origin["recipe"]
    # retries happened: 12 items + 5 retried faults + the 2 content faults are answered once
    assert len(server.requests) == 12 + 5
    assert all("response_format" in r for r in server.requests)
    run = sstore.run_for_job(store, job_id)
    assert run["version_id"] == version["id"] and run["report"]["kept"] == 10
    assert run["report"]["rejected"] == 2
    qc_rows = sstore.qc_samples(store, version_id=version["id"])
    assert len(qc_rows) == 1  # ceil(7% of 10)
    # the key never reaches the spec, the job folder or the database
    for path in ws.job_dir(job_id).iterdir():
        assert SECRET not in path.read_text(errors="replace"), path.name
    cur = store.cursor()
    dump = json.dumps(
        [
            list(map(str, r))
            for t in ("jobs", "job_events", "synth_rejects", "examples", "datasets")
            for r in cur.execute(f"SELECT * FROM {t}").fetchall()
        ]
    )
    assert SECRET not in dump


def test_endpoint_refusing_response_format_falls_back_to_prompt_json(ws, store, server, run_inline):
    server.refuse_response_format = True
    job_id = submit(store, ws, server, concurrency=1)
    assert run_inline(ws, job_id).state == "succeeded"
    ingest_all(store, ws)
    assert dstore.resolve_version(store, "support")["n_examples"] == 12
    assert "response_format" in server.requests[0]
    assert all("response_format" not in r for r in server.requests[2:])
    events = store.rows("SELECT message FROM job_events WHERE job_id = ?", [job_id])
    assert any("refused response_format" in e["message"] for e in events)


def test_cancelled_job_resumes_without_redoing_or_duplicating(ws, store, server, run_inline):
    job_id = submit(store, ws, server, concurrency=1)
    job_dir = ws.job_dir(job_id)

    def cancel_after_five(body):
        from tests.support.openai_server import default_responder

        if len(server.requests) == 5:
            (job_dir / "cancel").write_text("test")
        return default_responder(body)

    server.responder = cancel_after_five
    assert run_inline(ws, job_id).state == "cancelled"
    assert len(server.requests) == 5
    ingest_all(store, ws)  # the dashboard may ingest between attempts
    with open(job_dir / "generated.jsonl", "a") as fh:
        fh.write('{"item": "torn')  # a crash mid-line
    queue.resume(ws, job_id)
    assert run_inline(ws, job_id).state == "succeeded"
    assert len(server.requests) == 12  # nothing redone
    ingest_all(store, ws)
    assert store.scalar("SELECT count(*) FROM synth_items WHERE job_id = ?", [job_id]) == 12
    version = dstore.resolve_version(store, "support")
    assert version["n_examples"] == 12 and version["number"] == 1


def test_second_run_appends_a_version_and_skips_duplicates(ws, store, server, run_inline):
    first = submit(store, ws, server)
    run_inline(ws, first)
    ingest_all(store, ws)
    second = submit(store, ws, server, recipe_kw={"topics": ["billing", "exports"]})
    run_inline(ws, second)
    ingest_all(store, ws)
    v2 = dstore.resolve_version(store, "support")
    # billing/0-3 repeat word for word: removed as duplicates of the existing version
    assert v2["number"] == 2 and v2["n_examples"] == 12 + 4
    reasons = [r["reason"] for r in sstore.rejects(store, job_id=second)]
    assert reasons.count("exact duplicate") == 4
    assert v2["parent_version_id"] == dstore.resolve_version(store, "support", 1)["id"]


def test_rpm_limit_spaces_requests(ws, store, server, run_inline):
    import time

    job_id = submit(store, ws, server, rpm=600, recipe_kw={"topics": ["billing"], "per_topic": 4})
    t0 = time.perf_counter()
    assert run_inline(ws, job_id).state == "succeeded"
    # 4 starts at 0.1 s spacing: at least 0.3 s, concurrency notwithstanding
    assert time.perf_counter() - t0 >= 0.3


def test_cli_generate_builds_a_version(ws, server):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "FTSTUDIO_WORKSPACE": str(ws.root)}
    cmd = [
        sys.executable,
        "-m",
        "backend.cli",
        "generate",
        "--dataset",
        "cli-gen",
        "--provider",
        "openai",
        "--base-url",
        server.base_url,
        "--model",
        "m",
        "--topics",
        "billing,exports",
        "--per-topic",
        "3",
        "--concurrency",
        "4",
        "--json",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["state"] == "succeeded" and out["report"]["generated"] == 6
    shown = subprocess.run(
        [sys.executable, "-m", "backend.cli", "dataset", "show", "cli-gen", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    versions = json.loads(shown.stdout)["versions"]
    assert len(versions) == 1 and versions[0]["id"] == out["version_id"]
    assert versions[0]["examples"] == out["report"]["kept"] > 0
