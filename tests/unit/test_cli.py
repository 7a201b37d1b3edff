"""The `ftstudio` command as a script would use it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from backend.cli import app
from backend.jobs import queue

runner = CliRunner()


def test_jobs_list_and_show_json(ws, run_inline):
    assert json.loads(runner.invoke(app, ["jobs", "list", "--json"]).stdout) == []
    job_id = queue.submit(ws, "sleep", {"steps": 2, "seconds_per_step": 0})
    run_inline(ws, job_id)
    listed = json.loads(runner.invoke(app, ["jobs", "list", "--json"]).stdout)
    assert [(j["id"], j["state"]) for j in listed] == [(job_id, "succeeded")]
    shown = json.loads(runner.invoke(app, ["jobs", "show", job_id, "--json"]).stdout)
    assert shown["spec"]["steps"] == 2 and shown["state"] == "succeeded"
    assert any("start sleep job" in line for line in shown["log_tail"])


def test_unknown_job_is_a_clear_error(ws):
    result = runner.invoke(app, ["jobs", "show", "nope"])
    assert result.exit_code == 1
    assert "no job 'nope'" in result.stderr


def test_cancel_and_resume_from_the_cli(ws):
    job_id = queue.submit(ws, "sleep", {"steps": 2})
    result = runner.invoke(app, ["jobs", "cancel", job_id])
    assert result.exit_code == 0 and "cancelled" in result.stdout
    result = runner.invoke(app, ["jobs", "resume", job_id, "--detach"])
    assert result.exit_code == 0 and queue.get(ws, job_id).state == "queued"


def test_doctor_json_names_the_database_holder(ws, store):
    report = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
    assert report["workspace"] == str(ws.root)
    assert report["cuda"] in (True, False)
    assert "pid" in report["database_holder"]  # this test process holds it
    assert report["llm_endpoint"].startswith("no LLM endpoint configured")


def test_demo_model_builds_a_loadable_model(tmp_path):
    out = tmp_path / "tiny"
    result = runner.invoke(app, ["demo-model", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "noise" in result.stdout
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    assert 0 < sum(enc["assistant_masks"]) < len(enc["input_ids"])
    assert model.config.model_type == "llama"
