"""The judge job against the loopback OpenAI-compatible server, through the real SDK: verdicts
with positions swapped, a position-biased judge recorded as inconsistent (never a win), and an
endpoint returning garbage or 500s leaving clear errors and no half-written rows."""

from __future__ import annotations

import json
import re

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.prefs import actions
from backend.prefs.launch import launch_judge
from backend.prefs.pairs import build_items
from backend.store import prefs as S
from tests.support.openai_server import OpenAIServer

_RESP = re.compile(r"\[Response A\]\n(.*?)\n\n\[Response B\]\n(.*?)\n\nWhich", re.S)


def _ctx(store, ws) -> Ctx:
    return Ctx(store=store, ws=ws, settings=Settings(), actor=None)


def submit_judge(store, ws, comparison_set: str, **kw) -> str:
    """The judge action, queued for `run_inline` (no worker started)."""
    return launch_judge(_ctx(store, ws), comparison_set, start_worker=False, **kw)


def _create(store, ws, name: str, items: list[dict], **kw) -> dict:
    return actions.create_comparison_set(_ctx(store, ws), name, items=items, **kw)


def fair(body: dict) -> str:
    """Prefers whichever response says 'good', wherever it stands."""
    a, _ = _RESP.search(body["messages"][-1]["content"]).groups()
    verdict = "A" if a.startswith("good") else "B"
    return json.dumps({"verdict": verdict, "rationale": f"{verdict} is more helpful"})


def biased(body: dict) -> str:
    """Always picks the first position: its verdict flips when the pair is swapped."""
    return json.dumps({"verdict": "A", "rationale": "the first one"})


@pytest.fixture
def comparison(store, ws):
    outputs = {
        "run-good": {f"q{i}": f"good answer {i}" for i in range(4)},
        "run-bad": {f"q{i}": f"bad answer {i}" for i in range(4)},
    }
    items = build_items(outputs, mode="pairwise", seed=1)
    return _create(store, ws, "cmp", items, mode="pairwise", analysts=["ann"])


def run(store, ws, srv, run_inline, **kw):
    job_id = submit_judge(
        store,
        ws,
        "cmp",
        model="judge-model",
        base_url=srv.base_url,
        backoff_s=0.01,
        timeout_s=2.0,
        max_retries=1,
        **kw,
    )
    status = run_inline(ws, job_id)
    ingest_all(store, ws)
    return job_id, status


def test_consistent_judge_wins_and_swap(store, ws, comparison, run_inline):
    with OpenAIServer(responder=fair) as srv:
        job_id, status = run(store, ws, srv, run_inline)
        assert status.state == "succeeded", status.error
        assert len(srv.requests) == 8  # two passes per pair
    rows = S.judgements(store, source="judge")
    assert len(rows) == 4
    assert {r["winner"] for r in rows} == {"run-good"}
    assert all(r["annotator"] == "judge:judge-model" and r["job_id"] == job_id for r in rows)
    assert all([p["order"] for p in r["detail"]] == ["AB", "BA"] for r in rows)
    assert all(r["rationale"] for r in rows)
    with pytest.raises(ValueError, match="already judged every item"):
        submit_judge(store, ws, "cmp", model="judge-model")


def test_position_biased_judge_is_inconsistent_not_a_win(store, ws, comparison, run_inline):
    with OpenAIServer(responder=biased) as srv:
        _, status = run(store, ws, srv, run_inline)
    assert status.state == "succeeded", status.error
    rows = S.judgements(store, source="judge")
    assert [r["verdict"] for r in rows] == ["inconsistent"] * 4
    assert all(r["winner"] is None for r in rows)
    assert all([p["verdict"] for p in r["detail"]] == ["A", "A"] for r in rows)


def test_garbage_and_500s_leave_errors_and_no_half_rows(store, ws, comparison, run_inline):
    with OpenAIServer(responder=fair) as srv:
        # one pair's second pass gets 500 twice (out of retries); another pair gets prose
        def when(body: dict) -> str | None:
            content = body["messages"][-1]["content"]
            if "good answer 1" in content and content.index("good answer 1") > content.index(
                "[Response B]"
            ):
                return "500"
            return None

        srv.fault_when = when
        srv.responder = lambda body: (
            "I think the first is nicer."
            if "answer 2" in body["messages"][-1]["content"]
            else fair(body)
        )
        job_id, status = run(store, ws, srv, run_inline)
    assert status.state == "succeeded", status.error
    rows = S.judgements(store, source="judge")
    prompts = sorted(r["prompt"][0]["content"] for r in rows)
    assert prompts == ["q0", "q3"]  # q1 (500s) and q2 (garbage) stored nothing
    events = store.rows(
        "SELECT level, message FROM job_events WHERE job_id = ? AND level = 'warning'", [job_id]
    )
    text = " ".join(e["message"] for e in events)
    assert "HTTP 500 after 2 attempts" in text
    assert "not JSON" in text


def test_all_failing_endpoint_fails_the_job_clearly(store, ws, comparison, run_inline):
    with OpenAIServer() as srv:
        srv.fault_when = lambda body: "500"
        _, status = run(store, ws, srv, run_inline)
    assert status.state == "failed"
    assert "no verdict on any of 4 items" in status.error
    assert S.judgements(store, source="judge") == []


def test_answer_job_adds_an_endpoint_source(store, ws, run_inline):
    from backend.jobs import queue

    with OpenAIServer() as srv:
        srv.inject("500")  # retried once, then answered
        job_id = queue.submit(
            ws,
            "answer",
            {
                "provider": "openai",
                "model": "test-model",
                "base_url": srv.base_url,
                "prompts": ["q0", "q1"],
            },
        )
        status = run_inline(ws, job_id)
    assert status.state == "succeeded", status.error
    ingest_all(store, ws)
    outputs = S.generation_outputs(store, ["endpoint:test-model"])
    assert outputs == {"endpoint:test-model": {"q0": "echo: q0", "q1": "echo: q1"}}


def fuller(body: dict) -> str:
    """Prefers the longer response wherever it stands (a position-fair judge)."""
    a, b = _RESP.search(body["messages"][-1]["content"]).groups()
    verdict = "tie" if len(a) == len(b) else "A" if len(a) > len(b) else "B"
    return json.dumps({"verdict": verdict, "rationale": f"{verdict}: the fuller answer"})


def test_ranking_items_get_a_round_robin_ranking(store, ws, run_inline):
    """Three responses per item: every pair judged both ways (6 calls an item), ranked by
    Copeland score; the rows feed the leaderboard like an analyst's ranking."""
    from backend.prefs.leaderboard import leaderboard, outcome_groups

    outputs = {
        "run-short": {f"q{i}": f"ok {i}" for i in range(3)},
        "run-mid": {f"q{i}": f"a fuller answer {i}" for i in range(3)},
        "run-long": {f"q{i}": f"the fullest answer of the three {i}" for i in range(3)},
    }
    items = build_items(outputs, mode="ranking", seed=2)
    _create(store, ws, "rank", items, mode="ranking", analysts=["ann"])
    with OpenAIServer(responder=fuller) as srv:
        job_id = submit_judge(
            store, ws, "rank", model="judge-model", base_url=srv.base_url, backoff_s=0.01
        )
        assert run_inline(ws, job_id).state == "succeeded"
        assert len(srv.requests) == 3 * 6
    ingest_all(store, ws)
    rows = S.judgements(store, source="judge")
    assert len(rows) == 3 and {r["verdict"] for r in rows} == {"ranking"}
    for r in rows:
        assert [r["responses"][i]["source"] for i in r["ranking"]] == [
            "run-long",
            "run-mid",
            "run-short",
        ]
        assert sorted(tuple(p["pair"]) for p in r["detail"]) == [
            (0, 1),
            (0, 1),
            (0, 2),
            (0, 2),
            (1, 2),
            (1, 2),
        ]
        assert "Copeland" in r["rationale"] and r["winner"] is None
    board = leaderboard(outcome_groups(rows), n_boot=0)
    assert [r["source"] for r in board["ratings"]] == ["run-long", "run-mid", "run-short"]
    with pytest.raises(ValueError, match="already judged every item"):
        submit_judge(store, ws, "rank", model="judge-model")


def test_ranking_agreement_compares_the_orders(store, ws, run_inline):
    """Rankings agree only when they order every response alike: an analyst who ranks like
    the judge agrees with it, one who swaps the last two does not."""
    from backend.prefs.agreement import annotator_agreement, judge_human_agreement

    outputs = {
        "run-short": {"q0": "ok"},
        "run-mid": {"q0": "a fuller answer"},
        "run-long": {"q0": "the fullest answer of the three"},
    }
    _create(
        store,
        ws,
        "rank",
        build_items(outputs, mode="ranking", seed=3),
        mode="ranking",
        analysts=["ann", "bo"],
    )
    with OpenAIServer(responder=fuller) as srv:
        job_id = submit_judge(store, ws, "rank", model="judge-model", base_url=srv.base_url)
        assert run_inline(ws, job_id).state == "succeeded"
    ingest_all(store, ws)
    (judged,) = S.judgements(store, source="judge")
    order = judged["ranking"]
    S.record_judgement(store, judged["item_id"], "ann", "ranking", ranking=order)
    swapped = [order[0], order[2], order[1]]
    S.record_judgement(store, judged["item_id"], "bo", "ranking", ranking=swapped)
    human = S.judgements(store, source="human")
    assert annotator_agreement(human)["agreement"] == 0.0
    ann = [r for r in human if r["annotator"] == "ann"]
    assert judge_human_agreement(ann, [judged])["agreement"] == 1.0
    bo = [r for r in human if r["annotator"] == "bo"]
    assert judge_human_agreement(bo, [judged])["agreement"] == 0.0
