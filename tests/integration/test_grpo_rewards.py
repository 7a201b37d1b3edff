"""GRPO on the tiny model with every kind of reward a run form offers: a regular expression, a
JSON schema, a reward function from the workspace's rewards/ folder, and an LLM judge on the
loopback OpenAI-compatible server (batched, cached, its cost counted). Each function's mean and
spread are metrics reward/<function>; sampled answers are kept with their rewards per step."""

from __future__ import annotations

import json
import re

import pytest

from backend.action import Ctx
from backend.auth import Actor
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.store.feedback import run_completions
from backend.store.runs import get_run, run_metrics
from backend.train.actions import dataset_file, start_run
from backend.train.judge_reward import JudgeReward
from backend.train.reward_actions import add_reward_file
from backend.train.rewards import parse_spec
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.slow

REWARD_FILE = '''
def has_digit(prompts, completions, **kwargs):
    """1 when the answer holds a digit."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [float(any(ch.isdigit() for ch in t)) for t in texts]
'''


def _judge(body: dict) -> dict:
    """A judge whose score follows the answer's length, so answers in a group differ."""
    text = body["messages"][-1]["content"]
    answer = text.split("[Answer]\n", 1)[1].rsplit("\n\nScore", 1)[0]
    return {"score": len(answer) % 11, "reason": "length"}


@pytest.fixture
def math_dataset(store, ws):
    from backend.store import datasets as ds

    ds.create_dataset(store, "sums")
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}? Answer in JSON."},
                {"role": "assistant", "content": json.dumps({"answer": 2 * i})},
            ]
        }
        for i in range(8)
    ]
    ds.add_version(store, "sums", rows)
    return dataset_file(store, ws, "sums")


def test_grpo_run_with_regex_schema_file_and_judge_rewards(
    store, ws, tiny_model_dir, run_inline, monkeypatch, math_dataset
):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)  # run_inline runs it
    ctx = Ctx(store=store, ws=ws, settings=Settings())
    (ws.root / "schema.json").write_text(
        json.dumps({"type": "object", "required": ["answer"]}), encoding="utf-8"
    )
    (ws.root / "rubric.txt").write_text("Reward short, correct sums.", encoding="utf-8")
    added = add_reward_file(ctx, "checks", REWARD_FILE)
    assert added == {"path": "rewards/checks.py", "functions": ["has_digit"]}
    with OpenAIServer() as srv:
        srv.responder = _judge
        fields = {
            "base_model": str(tiny_model_dir),
            "method": "grpo",
            **math_dataset,
            "rewards": [
                r"regex:\d@1",
                "json-schema:schema.json@2",
                "file:rewards/checks.py:has_digit@0.5",
                "judge:rubric.txt@1",
            ],
            "judge_model": "judge-model",
            "judge_base_url": srv.base_url,
            "num_generations": 4,
            "batch_size": 4,
            "max_completion_length": 8,
            "max_steps": 2,
            "eval_split": 0.0,
            "save_steps": 2,
            "learning_rate": 5e-2,
            "lora_r": 4,
            "lora_alpha": 8,
            "n_eval_prompts": 1,
            "max_new_tokens": 2,
            "completions_logged": 4,
            "quant": "none",
        }
        job_id = start_run(ctx, fields, start_worker=False)
        status = run_inline(ws, job_id)
        assert status.state == "succeeded", status.error
        judged = srv.served
    assert judged >= 4  # 2 steps x 4 answers, fewer only where an answer repeated
    events = [json.loads(x) for x in (ws.job_dir(job_id) / "events.jsonl").read_text().splitlines()]
    lineage = next(e for e in events if e["message"].startswith("rewards: "))
    assert lineage["message"] == "rewards: regex x1, json_schema x2, has_digit x0.5, judge x1"
    assert set(lineage["data"]["files"]) == set(fields["rewards"][1:])  # each file's sha256
    ingest_all(store, ws)

    metrics = run_metrics(store, [job_id])
    names = set(metrics["name"])
    for fn in ("regex", "json_schema", "has_digit", "judge"):
        assert {f"reward/{fn}", f"reward/{fn}/std"} <= names, fn
    assert {"reward", "judge/requests", "judge/tokens"} <= names
    requests = metrics[metrics["name"] == "judge/requests"]["value"].max()
    assert requests == judged
    samples = run_completions(store, job_id)
    assert samples and {"regex", "json_schema", "has_digit", "judge"} <= set(samples[0]["rewards"])
    for s in samples:  # what was kept is what the functions gave
        assert s["rewards"]["regex"] == float(bool(re.search(r"\d", s["completion"])))
        assert s["rewards"]["judge"] == pytest.approx(len(s["completion"]) % 11 / 10)
    run = get_run(store, job_id)
    assert run["method"] == "grpo" and run["config"]["rewards"][1] == "json-schema:schema.json@2"
    from safetensors.torch import load_file

    weights = load_file(ws.runs / job_id / "adapter" / "adapter_model.safetensors")
    assert any(float(t.abs().max()) > 0 for k, t in weights.items() if "lora_B" in k)


def test_the_judge_is_batched_cached_and_counted(ws, tmp_path):
    (ws.root / "rubric.txt").write_text("Be brief.", encoding="utf-8")
    with OpenAIServer() as srv:
        srv.responder = _judge
        judge = JudgeReward(
            parse_spec("judge:rubric.txt"),
            ws.root,
            model="judge-model",
            base_url=srv.base_url,
            cache_dir=tmp_path,
        )
        prompts = [[{"role": "user", "content": "hi"}]] * 3
        answers = [[{"role": "assistant", "content": t}] for t in ("abc", "abcdef", "abc")]
        first = judge(prompts, answers)
        assert first == [0.3, 0.6, 0.3] and srv.served == 2  # the repeat is asked once
        assert judge(prompts, answers) == first and srv.served == 2
        assert judge.cost == {"requests": 2, "cache_hits": 4, "failed": 0, "tokens": 60}
        srv.inject("bad_json")
        assert judge(prompts[:1], [[{"role": "assistant", "content": "new"}]]) == [None]
        again = JudgeReward(
            parse_spec("judge:rubric.txt"),
            ws.root,
            model="judge-model",
            base_url=srv.base_url,
            cache_dir=tmp_path,
        )  # a resumed run reads the cache from the job folder
        assert again(prompts, answers) == first and srv.served == 3


def test_rewards_are_checked_before_the_run_is_queued(store, ws, tiny_model_dir, math_dataset):
    ctx = Ctx(store=store, ws=ws, settings=Settings())
    (ws.root / "rewards").mkdir()
    (ws.root / "rewards" / "bad.py").write_text("def score(texts):\n    return []\n")
    base = {"base_model": str(tiny_model_dir), "method": "grpo", **math_dataset}
    cases = {
        "file:rewards/bad.py:score": "has no reward function score(prompts, completions",
        "file:rewards/none.py:f": "no reward file",
        "json-schema:missing.json": "cannot read",
        "judge:nothing.txt": "missing or empty",
        "regex:(": "bad regular expression",
    }
    for spec, why in cases.items():
        with pytest.raises(ValueError, match=re.escape(why)):
            start_run(ctx, {**base, "rewards": [spec]}, start_worker=False)
    assert queue.job_ids(ws) == []
    lead = Ctx(store=store, ws=ws, settings=Settings(), actor=Actor("lee", "lead"))
    outside = ws.root.parent / "schema.json"
    outside.write_text("{}")
    with pytest.raises(ValueError, match="not an absolute one"):
        start_run(lead, {**base, "rewards": [f"json-schema:{outside}"]}, start_worker=False)
    (ws.root / "rubric.txt").write_text("Be brief.")
    judge = {**base, "rewards": ["judge:rubric.txt"], "judge_model": "m"}
    with pytest.raises(ValueError, match="only admins may type another base URL"):
        start_run(lead, {**judge, "judge_base_url": "http://127.0.0.1:9/v1"}, start_worker=False)
    assert queue.job_ids(ws) == []
    with pytest.raises(ValueError, match="defines no reward function"):
        add_reward_file(ctx, "empty", "x = 1\n")
    with pytest.raises(ValueError, match="does not parse"):
        add_reward_file(ctx, "broken", "def f(:\n")
    assert not (ws.root / "rewards" / "empty.py").exists()


def test_grpo_on_4bit_qlora_cancels_and_resumes(
    store, ws, tiny_model_dir, run_inline, monkeypatch, math_dataset
):
    """QLoRA (4-bit NF4 through bitsandbytes, float32 compute on CPU) with a held-out split:
    a cancel saves checkpoint-1, the resumed job finishes from it, and both parts kept their
    sampled answers."""
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    from backend.jobs.status import JobState
    from backend.train.common import last_checkpoint

    ctx = Ctx(store=store, ws=ws, settings=Settings())
    fields = {
        "base_model": str(tiny_model_dir),
        "method": "grpo",
        **math_dataset,
        "rewards": [r"regex:\d", "length:2-6@0.5"],
        "num_generations": 2,
        "batch_size": 2,
        "max_completion_length": 6,
        "max_steps": 2,
        "eval_split": 0.25,
        "save_steps": 100,
        "lora_r": 4,
        "lora_alpha": 8,
        "n_eval_prompts": 1,
        "max_new_tokens": 2,
        "quant": "4bit",
    }
    job_id = start_run(ctx, fields, start_worker=False)
    (ws.job_dir(job_id) / "cancel").write_text("test")  # seen at the end of step 1
    assert run_inline(ws, job_id).state == JobState.cancelled
    assert last_checkpoint(ws.runs / job_id / "checkpoints").name == "checkpoint-1"
    queue.resume(ws, job_id)
    status = run_inline(ws, job_id)
    assert status.state == JobState.succeeded, status.error
    events = (ws.job_dir(job_id) / "events.jsonl").read_text()
    assert "resumed from step 1" in events and "4-bit" in events
    ingest_all(store, ws)
    assert {s["step"] for s in run_completions(store, job_id)} == {1, 2}
    run = get_run(store, job_id)
    assert run["runtime"]["quantize_4bit"] is True and run["eval_loss"] is not None
