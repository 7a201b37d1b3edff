"""lm-evaluation-harness offline: `ftstudio eval --harness TASK --include DIR` runs a task
whose YAML points at a local JSONL (through a real worker) and stores its per-sample scores as
the suite lm-eval.<task>, read like any suite; a hub task fails saying it needs the network;
an unknown task is named."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from backend.cli import app
from backend.evaluate.actions import run_harness

pytestmark = pytest.mark.slow

TASK = """task: tasklane_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: tasklane_mc.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: "{{answer}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
DOCS = [
    {
        "question": "Where do you invite a teammate?",
        "choices": ["Settings", "Reports"],
        "answer": 0,
    },
    {"question": "Which view needs due dates?", "choices": ["Timeline", "Inbox"], "answer": 0},
    {"question": "Where is Export?", "choices": ["Members", "Reports"], "answer": 1},
    {"question": "When are invoices sent?", "choices": ["Monthly", "Never"], "answer": 0},
]


def test_a_local_task_runs_offline_and_is_stored_as_a_suite(ws, tiny_model_dir, tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tasklane_mc.yaml").write_text(TASK)
    (tasks / "tasklane_mc.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    base = f"base:{tiny_model_dir}"
    args = ["eval", "--harness", "tasklane_mc", "--target", base, "--include", str(tasks)]
    ran = CliRunner().invoke(app, [*args, "--json"])
    assert ran.exit_code == 0, ran.output
    [row] = json.loads(ran.stdout)["suites"]["lm-eval.tasklane_mc"]
    assert (row["target"], row["scorer"], row["n"]) == (base, "acc", 4)
    assert 0 <= row["mean"] <= 1 and row["ci_low"] <= row["mean"] <= row["ci_high"]

    shown = CliRunner().invoke(app, ["eval", "results", "lm-eval.tasklane_mc", "--json"])
    results = json.loads(shown.stdout)["results"]
    assert [r["prompt"] for r in results] == [f"Question: {d['question']}\nAnswer:" for d in DOCS]
    for r, d in zip(results, DOCS, strict=True):
        assert r["output"] in d["choices"] and r["scores"]["acc"] in (0.0, 1.0)
        assert r["scores"]["acc"] == float(r["output"] == d["choices"][d["answer"]])


def test_hub_and_unknown_tasks_say_why(ws, store, act, tiny_model_dir, run_inline, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    base = f"base:{tiny_model_dir}"
    for task, why in (
        ("arc_easy", "reads its data from the Hugging Face hub (allenai/ai2_arc): it needs"),
        ("no_such_task_xyz", "lm-eval knows no task 'no_such_task_xyz'"),
    ):
        job_id = run_harness(act(), task, base, start_worker=False)
        status = run_inline(ws, job_id)
        assert status.state == "failed" and why in status.error, status.error
