"""The LLM judge as a second review signal, on a real loopback OpenAI-compatible server: the
Review page queues a `quality-judge` job over the dataset, the job rates every example, the
ratings land in `scores` as judge_flaw = 10 - rating with the dataset, version and round, and
a top-k cut on them flags exactly the answers the judge rated lowest. The key comes from
Settings at run time and never reaches the spec; no endpoint gives a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.review import actions
from backend.review.flagging import FlagPolicy
from backend.review.inputs import prepare_judge_spec
from backend.store import Store
from backend.store import datasets as ds
from backend.store import review as rstore
from tests.support.openai_server import OpenAIServer

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "review.py")
KEY = "sk-review-judge-key"
_RESPONSE = re.compile(r"\[Response\]\n(.*)\n\nRate the response", re.S)
BAD = {3, 7, 10}  # examples whose answer is unrelated to the question


def responder(body: dict) -> dict:
    """A judge that can tell: unrelated answers get 2, the rest 8 or 9."""
    response = _RESPONSE.search(body["messages"][-1]["content"]).group(1)
    if response.startswith("Bananas"):
        return {"score": 2, "rationale": "unrelated to the question"}
    return {"score": 9 if len(response) % 2 else 8, "rationale": "answers the question"}


def _seed(ws) -> tuple[dict, dict[str, int]]:
    store = Store.open(ws.db_path)
    try:
        ds.create_dataset(store, "support")
        examples = [
            {
                "messages": [
                    {"role": "user", "content": f"How do I export board {i} to CSV?"},
                    {
                        "role": "assistant",
                        "content": "Bananas are rich in potassium."
                        if i in BAD
                        else f"Open board {i}, then Export, then choose CSV.",
                    },
                ]
            }
            for i in range(12)
        ]
        ver = ds.add_version(store, "support", examples)
        by_question = {
            e["messages"][0]["content"]: e["id"] for e in ds.version_examples(store, ver["id"])
        }
        index = {by_question[f"How do I export board {i} to CSV?"]: i for i in range(12)}
        return ver, index
    finally:
        store.close()


@pytest.fixture
def page_env(ws, monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def _run() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_queues_the_judge_and_its_ratings_flag_the_worst(
    ws, run_inline, page_env, monkeypatch
):
    ver, index = _seed(ws)
    with OpenAIServer(responder=responder) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        at = _run()
        [t for t in at.text_input if t.label == "Judge model"][0].set_value("judge-1").run()
        [b for b in at.button if b.label == "Judge this dataset"][0].click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        (job,) = [j for j in queue.list_jobs(ws) if j.kind == "quality-judge"]
        assert KEY not in (ws.job_dir(job.id) / "spec.json").read_text()
        assert run_inline(ws, job.id).state == "succeeded"
        assert len(srv.requests) == 12
        assert {a for a in srv.authorizations} == {f"Bearer {KEY}"}

    store = Store.open(ws.db_path)
    try:
        ingest_all(store, ws)
        flaws = rstore.scores_of(store, job.id, "judge_flaw")
        assert {index[e]: s for e, s in flaws.items() if s == 8.0}.keys() == BAD
        assert all(s in (1.0, 2.0) for e, s in flaws.items() if index[e] not in BAD)
        (run,) = rstore.score_jobs(store, "support")
        assert (run["job_id"], run["model"], run["version_id"]) == (job.id, "judge-1", ver["id"])
        assert run["round"] == 1 and run["n"] == 12
        assert rstore.latest_score_job(store, "support", "judge_flaw") == job.id
        with pytest.raises(ValueError, match="no 'nll' scores yet.*review score"):
            rstore.latest_score_job(store, "support", "nll")
        batch = actions.create_batch(
            Ctx(store, ws, Settings()),
            "support",
            job.id,
            FlagPolicy(kind="top_k", value=len(BAD), qc_share=0),
            method="judge_flaw",
        )
        items = rstore.batch_items(store, batch["id"])
        assert {index[i["example_id"]] for i in items if i["reason"] == "flagged"} == BAD
    finally:
        store.close()

    st.cache_resource.clear()
    at = _run()  # the Flag tab offers the judge's signal for that run, with its unit
    radio = at.radio(key="review_signal")  # labelled in words, the library term in help
    assert radio.options == ["How little an LLM judge liked it"]
    assert radio.value == "judge_flaw" and "judge_flaw" in radio.help
    assert any("10 - judge rating" in c.proto.spec for c in at.get("plotly_chart"))


def test_no_endpoint_or_no_model_is_a_clear_error(ws, store):
    _seed(ws)
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        actions.launch_judge(Ctx(store, ws, Settings()), "support", "judge-1")
    with pytest.raises(ValueError, match="name the judge model"):
        prepare_judge_spec(store, ws, "support", "  ", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="no dataset|not found|unknown"):
        prepare_judge_spec(store, ws, "nope", "judge-1", base_url="http://127.0.0.1:9/v1")
    assert not list((ws.root / "review" / "inputs").glob("*.jsonl"))


def test_cli_judge_queues_the_job_and_refuses_without_an_endpoint(ws, run_inline, monkeypatch):
    import json

    from typer.testing import CliRunner

    from backend.cli import app

    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)  # run_inline runs it
    _, index = _seed(ws)
    args = ["review", "judge", "--dataset", "support", "--judge-model", "j1", "--detach"]
    runner = CliRunner()
    bad = runner.invoke(app, args)
    assert bad.exit_code == 1 and "OPENAI_BASE_URL" in bad.stderr
    with OpenAIServer(responder=responder) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        res = runner.invoke(app, [*args, "--json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert (out["examples"], out["judge_model"], out["round"]) == (12, "j1", 1)
        assert run_inline(ws, out["job_id"]).state == "succeeded"
    again = Store.open(ws.db_path)
    try:
        ingest_all(again, ws)
        flaws = rstore.scores_of(again, out["job_id"], "judge_flaw")
    finally:
        again.close()
    assert {index[e] for e, s in flaws.items() if s == 8.0} == BAD


def test_label_studio_tasks_carry_the_judges_certainty():
    """Pushed tasks' prediction (what uncertainty sampling orders by, and the pre-filled
    verdict) follows the judge: rated 9 is sure and accepted, rated 2 unsure and rejected;
    nll keeps exp(-nats), lower certainty for the more surprising response."""
    from backend.review.labelstudio import task_payload

    def pred(score, method):
        item = {
            "example_id": "e1",
            "reason": "flagged",
            "score": score,
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a"},
            ],
        }
        (p,) = task_payload(item, "rb-1", "judge-1", method)["predictions"]
        return round(p["score"], 3), p["result"][0]["value"]["choices"][0]

    assert pred(10 - 9, "judge_flaw") == (0.889, "accept")
    assert pred(10 - 2, "judge_flaw") == (0.111, "reject")
    assert pred(0.1, "nll")[0] > pred(2.0, "nll")[0]


@pytest.mark.labelstudio
@pytest.mark.slow
def test_reviewers_see_the_judges_note_here_and_in_label_studio(ws, live_server, page_env):
    """A batch flagged on the judge carries each rating's rationale: the in-app queue shows
    it under the answer, and the Label Studio project shows it in the task (config + data)."""
    import httpx

    from backend.review import labelstudio_actions as ls_actions
    from tests.support.seed_review import flagged_batch, scored_dataset

    info, token = live_server
    store = Store.open(ws.db_path)
    try:
        scored_dataset(
            store, n=4, job_id="judge-1", methods=("judge_flaw",), note="why {i}: off topic"
        )
        batch = flagged_batch(store, "support", "judge-1", 2, method="judge_flaw")
        items = rstore.batch_items(store, batch["id"])
        assert [i["note"] for i in items] == ["why 3: off topic", "why 2: off topic"]
        settings = Settings(label_studio_url=info.url, label_studio_token=token)
        pushed = ls_actions.push_batch(Ctx(store, ws, settings), batch["id"])
    finally:
        store.close()
    auth = {"Authorization": f"Token {token}"}
    project = httpx.get(f"{info.url}/api/projects/{pushed['project_id']}", headers=auth).json()
    assert '<Text name="note" value="$note"/>' in project["label_config"]
    listed = httpx.get(
        f"{info.url}/api/tasks/", params={"project": pushed["project_id"]}, headers=auth
    ).json()
    tasks = listed["tasks"] if isinstance(listed, dict) else listed
    assert sorted(t["data"]["note"] for t in tasks) == ["why 2: off topic", "why 3: off topic"]

    at = _run()
    at.text_input(key="reviewer").set_value("ana").run()
    texts = [t.value for t in at.text]
    assert "why 3: off topic" in texts
