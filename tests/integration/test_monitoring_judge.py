"""LLM-judge quality on a real loopback OpenAI-compatible server: with a judge model set on a
monitor, a check has the judge rate the window's (prompt, response) pairs and, once per run,
the newest run's held-out examples; training-like answers stay above training mean x (1 -
margin), unrelated ones fall below it and fire exactly one alert and plan. Without a judge
model no judge job is queued and no judge report is written. The key comes from Settings at
run time and never appears in a spec."""

from __future__ import annotations

import json
import re

import pytest
import streamlit as st

from backend.drift import actions
from backend.ingest.jobs import ingest_all
from backend.jobs import worker
from backend.store import monitoring as mon
from backend.store.datasets import add_version, create_dataset
from tests.app.test_monitoring_page import run_page
from tests.integration.test_monitoring_quality import NOISE, train, window
from tests.integration.test_train_job import ANSWERS, fields, write_data
from tests.support.openai_server import OpenAIServer
from tests.unit.test_monitoring import ingest, rules, shell, submit

pytestmark = pytest.mark.slow

KEY = "sk-judge-test-key"
CFG = {  # vocabulary and length only; the prompts never drift here, the NLL side is off
    "classifier": {"enabled": False},
    "mmd": {"enabled": False},
    "topics": {"enabled": False},
    "min_window": 10,
    "quality": {"enabled": False},
}
_RESPONSE = re.compile(r"\[Response\]\n(.*)\n\nRate the response", re.S)


def responder(body: dict) -> dict:
    """High for the training answers, low for anything else (what a real judge would say)."""
    text = body["messages"][-1]["content"]
    response = _RESPONSE.search(text).group(1)
    if response in ANSWERS:
        return {"score": 9, "rationale": "answers the question"}
    return {"score": 2, "rationale": "unrelated to the question"}


def check(store, ws, run_inline):
    sub = submit(store, ws)
    assert "job_id" in sub, sub
    for job in [sub["job_id"], *sub.get("quality_jobs", []), *sub.get("judge_jobs", [])]:
        status = run_inline(ws, job)
        assert status.state == "succeeded", status.error
    ingest_all(store, ws)
    return sub, rules(store, ws)


def judge_report(store, sub):
    reps = [
        r for r in mon.reports(store, check_id=sub["check_id"]) if r["method"] == "quality_judge"
    ]
    assert len(reps) <= 1
    return reps[0] if reps else None


def test_judge_crossing_fires_one_plan(
    store, ws, tiny_model_dir, run_inline, tmp_path, monkeypatch
):
    monkeypatch.setattr(worker, "ensure_worker", lambda ws, **kw: False)  # jobs run inline
    data = write_data(tmp_path / "data.jsonl")
    create_dataset(store, "support")
    add_version(store, "support", [json.loads(line) for line in data.read_text().splitlines()])
    mon.create_monitor(store, "prod", reference="support", config=CFG)
    run_id = train(store, ws, fields(tiny_model_dir, data, max_steps=2, eval_split=0.25))
    assert run_inline(ws, run_id).state == "succeeded"
    ingest_all(store, ws)

    with OpenAIServer(responder=responder) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)

        # no judge configured: no judge job, no judge report, no request
        ingest(store, ws, window(ANSWERS, 1), "plain.jsonl")
        sub, fired = check(store, ws, run_inline)
        assert "judge_jobs" not in sub and "judge" not in sub and not fired
        assert judge_report(store, sub) is None and srv.requests == []

        judge_cfg = {**CFG, "quality": {"enabled": False, "judge_model": "j1"}}
        actions.set_config(shell(store, ws), "prod", judge_cfg)
        ingest(store, ws, window(ANSWERS, 2), "same.jsonl")
        sub, fired = check(store, ws, run_inline)
        assert len(sub["judge_jobs"]) == 2 and sub["judge_run"] == run_id  # baseline + window
        same = judge_report(store, sub)
        assert same["details"]["baseline_source"] == "held-out" and same["n_reference"] == 6
        assert same["details"]["training_mean"] == pytest.approx(9.0)
        assert same["n_window"] == 24 and same["statistic"] == pytest.approx(9.0)
        assert same["threshold"] == pytest.approx(9.0 * (1 - 0.2))
        assert same["verdict"] == "ok" and fired == [], (same, fired)
        n_requests = len(srv.requests)
        assert n_requests == 6 + 24

        for day in (3, 4):  # unrelated answers to the same prompts, twice: one crossing
            ingest(store, ws, window(NOISE, day), f"noise{day}.jsonl")
            sub, fired = check(store, ws, run_inline)
            assert len(sub["judge_jobs"]) == 1  # the run's judge baseline is scored once
            rep = judge_report(store, sub)
            assert rep["verdict"] == "drift" and rep["statistic"] == pytest.approx(2.0)
            assert rep["threshold"] == pytest.approx(same["threshold"])
            assert len(fired) == (1 if day == 3 else 0)
        assert len(srv.requests) == n_requests + 48
        assert {a for a in srv.authorizations} == {f"Bearer {KEY}"}
        fmt = srv.requests[-1]["response_format"]
        assert fmt["type"] == "json_schema"
        assert fmt["json_schema"]["schema"]["properties"]["score"]["maximum"] == 10

    alerts, plans = mon.alerts(store), mon.plans(store)
    assert len(plans) == 1 and len(alerts) == 1 and alerts[0]["n_checks"] == 2
    assert alerts[0]["methods"] == ["quality_judge"]
    for job_id in sub["judge_jobs"]:  # the key never reaches a spec
        assert KEY not in (ws.job_dir(job_id) / "spec.json").read_text()

    # the Monitoring page draws the judge score against its training-time line
    store.close()  # the page opens the workspace's store itself
    st.cache_resource.clear()
    st.cache_data.clear()
    at = run_page()
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    judge = [s for s in specs if "mean LLM-judge score" in s]
    assert len(specs) == 3 and len(judge) == 1  # vocabulary, length, judge
    assert "training time (held-out data)" in judge[0]
    assert [t.value for t in at.text_input if "judge model" in t.label] == ["j1"]
    st.cache_resource.clear()
