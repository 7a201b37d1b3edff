"""Eval suites end to end on CPU: `ftstudio eval create` from a JSONL file (a second create
of the same rows is "already"), `ftstudio eval run` against the tiny base model and a local
OpenAI-compatible endpoint with every scorer (the judges on the same local server; pairwise
asked in both orders) through a real worker, `ftstudio eval results --json` from DuckDB; a run
target is its base model with its adapter."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from backend.cli import app
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.slow

ROWS = [
    {"prompt": "What is 2+2?", "reference": "4"},
    {
        "prompt": "Give the ticket priority as JSON",
        "criteria": {
            "schema": {
                "type": "object",
                "properties": {"priority": {"enum": ["low", "high"]}},
                "required": ["priority"],
            }
        },
    },
    {"prompt": "Say hello", "reference": "hello there", "criteria": {"regex": "^hello"}},
]
ANSWERS = {
    "What is 2+2?": "4",
    "Give the ticket priority as JSON": {"priority": "low"},
    "Say hello": "hello there",
}
SCORERS = "exact regex numeric json_schema rouge_l chrf judge pairwise latency tokens".split()


def responder(body: dict):
    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
    if "strict evaluator" in system:
        return {"score": 7, "reason": "fine"}
    if "compare two responses" in system:
        return {"winner": "A", "reason": "always the first"}  # a judge with position bias
    return ANSWERS.get(body["messages"][-1]["content"], "no idea")


def test_create_run_and_read_a_suite(ws, tiny_model_dir, tmp_path):
    cli = CliRunner()
    suite = tmp_path / "faq.jsonl"
    suite.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    made = cli.invoke(app, ["eval", "create", "faq", str(suite), "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["id"] == "faq-v1"
    again = cli.invoke(app, ["eval", "create", "faq", str(suite), "--json"])
    assert again.exit_code == 0 and "already_done" in json.loads(again.stdout)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"question": "no prompt"}\n')
    refused = cli.invoke(app, ["eval", "create", "bad", str(bad)])
    assert refused.exit_code == 2 and "bad.jsonl line 2" in refused.output

    with OpenAIServer(responder=responder) as srv:
        base, endpoint = f"base:{tiny_model_dir}", f"endpoint:m1@{srv.base_url}"
        args = ["eval", "run", "faq", "--target", base, "--target", endpoint]
        args += [x for s in SCORERS for x in ("--scorer", s)]
        args += ["--judge-url", srv.base_url, "--judge-model", "judge", "--max-new-tokens", "8"]
        ran = cli.invoke(app, [*args, "--json"])
        judge_asks = [r for r in srv.requests if r["model"] == "judge"]
    assert ran.exit_code == 0, ran.output
    board = {(r["target"], r["scorer"]): r for r in json.loads(ran.stdout)["leaderboard"]}
    ep = {s: board[(endpoint, s)]["mean"] for s in SCORERS if (endpoint, s) in board}
    assert ep["exact"] == 1.0 and ep["regex"] == 1.0 and ep["numeric"] == 1.0
    assert ep["json_schema"] == 1.0 and ep["rouge_l"] == 1.0 and ep["chrf"] == 1.0
    assert ep["judge"] == 7.0 and ep["tokens"] == 20.0 and ep["latency"] > 0
    assert ep["pairwise"] == 0.5  # won as A, lost as B: the position bias cancels out
    assert (base, "pairwise") not in board  # the baseline is not compared with itself
    assert board[(base, "exact")]["n"] == 2  # the JSON row has no reference: not scored
    assert board[(endpoint, "judge")]["ci_low"] == board[(endpoint, "judge")]["ci_high"] == 7.0
    # 3 pointwise asks per target, 2 pairwise asks (both orders) per prompt of the endpoint
    assert len(judge_asks) == 3 * 2 + 3 * 2

    shown = cli.invoke(app, ["eval", "results", "faq", "--json"])
    assert shown.exit_code == 0, shown.output
    results = json.loads(shown.stdout)["results"]
    assert len(results) == 6
    mine = [r for r in results if r["target"] == endpoint and r["idx"] == 1][0]
    assert json.loads(mine["output"]) == {"priority": "low"} and mine["completion_tokens"] == 20


def test_a_dataset_heldout_suite_runs_against_a_run_and_its_base(
    ws, store, act, tiny_model_dir, run_inline, tmp_path
):
    from backend.evaluate.actions import create_suite_from_dataset, run_suite
    from backend.evaluate.suites import SuiteError
    from backend.ingest.jobs import ingest_all
    from backend.jobs.status import JobState
    from backend.store import evals
    from backend.store.datasets import add_version, create_dataset
    from backend.train.actions import start_run
    from backend.train.common import split
    from tests.integration.test_train_job import fields, write_data

    examples = [
        {
            "messages": [
                {"role": "user", "content": f"How do I export sprint {i}?"},
                {"role": "assistant", "content": f"Open Reports, pick sprint {i}, choose Export."},
            ]
        }
        for i in range(20)
    ]
    create_dataset(store, "support")
    add_version(store, "support", examples)
    suite = create_suite_from_dataset(act(), "support-heldout", "support", eval_split=0.2)
    _, held = split(examples, 0.2, 42)  # the split a run with eval_split 0.2, seed 42 holds out
    rows = evals.suite_rows(store, suite["id"])
    assert [r["prompt"] for r in rows] == [e["messages"][0]["content"] for e in held]
    assert suite["source"].startswith("dataset:support@") and suite["n_prompts"] == 4

    spec = fields(tiny_model_dir, write_data(tmp_path / "d.jsonl"), max_steps=2, save_steps=2)
    run_id = start_run(act(), {**spec, "n_eval_prompts": 0}, start_worker=False)
    ingest_all(store, ws)  # queued: a run without an adapter yet
    with pytest.raises(SuiteError, match="has no adapter yet"):
        run_suite(act(), "support-heldout", [run_id], ["rouge_l"], start_worker=False)
    assert run_inline(ws, run_id).state == JobState.succeeded
    ingest_all(store, ws)
    with pytest.raises(SuiteError, match="pairwise: add the baseline"):
        run_suite(act(), "support-heldout", [run_id], ["pairwise"], start_worker=False)
    with pytest.raises(SuiteError, match="no suite 'nope'"):
        run_suite(act(), "nope", [run_id], ["exact"], start_worker=False)

    base = f"base:{tiny_model_dir}"
    job_id = run_suite(
        act(), "support-heldout", [run_id, base], ["rouge_l", "tokens"], start_worker=False
    )
    assert run_inline(ws, job_id).state == JobState.succeeded
    ingest_all(store, ws)
    board = evals.leaderboard(store, suite["id"])
    assert {(r["target"], r["scorer"]) for r in board} == {
        (t, s) for t in (run_id, base) for s in ("rouge_l", "tokens")
    }
    assert all(r["n"] == 4 and r["ci_low"] <= r["mean"] <= r["ci_high"] for r in board)
    diff = evals.prompt_diff(store, suite["id"], base, run_id, "rouge_l")
    assert len(diff) == 4 and all(d["output_a"] is not None for d in diff)
    gaps = [abs(d["diff"]) for d in diff]
    assert gaps == sorted(gaps, reverse=True)  # the largest difference first
