"""KTO and GRPO without training: reward specs and their scores, KTO weights and rows from
verdicts, thumbs ratings, and `ftstudio prefs import|export --format kto-jsonl` and `ftstudio
train --method kto|grpo` as a script would use them (queued, not run)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from backend.action import AlreadyDone
from backend.auth import Actor
from backend.cli import app
from backend.jobs import queue, worker
from backend.prefs import kto as K
from backend.prefs import kto_actions
from backend.store import Store
from backend.store.feedback import feedback_rows, feedback_sets
from backend.train.config import ConfigError, make_config
from backend.train.grpo import log_values, prompt_rows
from backend.train.kto import kto_weights
from backend.train.rewards import (
    Recorder,
    RewardError,
    build_rewards,
    parse_spec,
    reference_score,
)

runner = CliRunner()
ROWS = [
    {"prompt": "How do I invite a teammate?", "completion": "Settings > Members.", "label": True},
    {"prompt": "How do I invite a teammate?", "completion": "You cannot.", "label": False},
    {
        "prompt": [{"role": "user", "content": "Export a board?"}],
        "completion": [{"role": "assistant", "content": "Board menu > Export."}],
        "label": True,
    },
]


@pytest.mark.parametrize(
    ("text", "kind", "arg", "weight"),
    [
        (r"regex:^\d+$", "regex", r"^\d+$", 1.0),
        ("regex:a@b@0.5", "regex", "a@b", 0.5),
        ("regex:user@example", "regex", "user@example", 1.0),
        ("reference", "reference", "", 1.0),
        ("reference:numeric:0.01@3", "reference", "numeric:0.01", 3.0),
        ("length:5-40", "length", "5-40", 1.0),
        ("file:rewards/fmt.py:score@0.25", "file", "rewards/fmt.py:score", 0.25),
    ],
)
def test_reward_specs_parse(text, kind, arg, weight):
    spec = parse_spec(text)
    assert (spec.kind, spec.arg, spec.weight) == (kind, arg, weight)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("bleu", "unknown kind 'bleu'"),
        ("regex:(", "bad regular expression"),
        ("length:9-3", "MIN <= MAX"),
        ("reference:fuzzy", "reference:numeric:TOL"),
        ("file:../x.py:f", "file:rewards/NAME.py:FUNCTION"),
        ("judge:", "needs a file"),
        ("regex:a@-1", "weight must be a number >= 0"),
    ],
)
def test_bad_reward_specs_say_why(text, why):
    with pytest.raises(RewardError, match=why.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(text)


def test_builtin_rewards_score_and_record(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"type": "object", "required": ["n"]}))
    recorder = Recorder(keep=2)
    funcs, weights = build_rewards(
        [r"regex:^\d+$@2", "json-schema:s.json", "reference:numeric:0.5", "length:1-2", "regex:x"],
        tmp_path,
        recorder,
    )
    assert [f.__name__ for f in funcs] == ["regex", "json_schema", "reference", "length", "regex_2"]
    assert weights == [2.0, 1.0, 1.0, 1.0, 1.0]
    answers = [[{"role": "assistant", "content": t}] for t in ("42", '```json\n{"n": 1}\n```')]
    kwargs = {"prompts": ["q", "q"], "completions": answers, "reference": ["42.3", "7"]}
    assert funcs[0](**kwargs) == [1.0, 0.0]
    assert funcs[1](**kwargs) == [0.0, 1.0]
    assert funcs[2](**kwargs) == [1.0, 0.0]
    assert funcs[3](**kwargs, completion_ids=[[1], [1, 2, 3]]) == [1.0, 0.0]
    rows = recorder.take(10)
    assert rows[0]["completion"] == "42" and rows[0]["rewards"]["reference"] == 1.0
    assert recorder.take(10) == []
    assert reference_score("", " yes ", "yes") == 1.0 and reference_score("", "no", None) == 0.0


def test_grpo_config_and_logs():
    with pytest.raises(ConfigError, match="rewards: give at least one"):
        make_config({"method": "grpo", "base_model": "x", "dataset": "d", "data_path": "p"})
    rows = prompt_rows(
        [
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]},
            {"messages": [{"role": "assistant", "content": "only an answer"}]},
        ]
    )
    assert rows == [
        {
            "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "reference": None,
        }
    ]
    assert log_values({"rewards/f/mean": 1, "rewards/f/std": 0, "kl": 0.1, "entropy": 2}) == {
        "reward/f": 1,
        "reward/f/std": 0,
        "kl": 0.1,
    }


def test_kto_weights_follow_the_class_counts():
    for nd, nu in ((30, 10), (10, 30), (7, 7), (1, 9)):
        dw, uw = kto_weights(nd, nu)
        assert 1.0 <= dw * nd / (uw * nu) <= 4 / 3
    assert kto_weights(5, 50, desirable=2.0, undesirable=0.5) == (2.0, 0.5)


def test_kto_rows_from_verdicts_resolve_each_example_once():
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    verdicts = [
        {
            "id": "r1",
            "batch_id": "b",
            "example_id": "e",
            "reviewer": "x",
            "verdict": "accept",
            "messages": msgs,
        },
        {
            "id": "r2",
            "batch_id": "b",
            "example_id": "e",
            "reviewer": "y",
            "verdict": "reject",
            "messages": msgs,
        },
    ]
    rows, ids = K.rows_from_verdicts(verdicts)
    assert [r["label"] for r in rows] == [False] and ids == ["r1", "r2"]  # a tie is cautious
    assert K.verdict_rows(msgs, {"verdict": "correct", "corrected": "a"})[0]["label"] is False
    with pytest.raises(ValueError, match="label must be true or false"):
        K.parse_row({"prompt": "p", "completion": "c", "label": "yes"})


def test_kto_import_export_and_queue_through_the_cli(ws, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    src = tmp_path / "kto.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS) + '{"prompt": "p"}\n')
    args = ["prefs", "import", "fb", str(src), "--format", "kto-jsonl", "--json"]
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2 and "line 4: a kto-jsonl row needs" in bad.output
    got = runner.invoke(app, [*args, "--skip-invalid"])
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["new"] == 3 and json.loads(got.stdout)["invalid"][0]["line"] == 4
    again = runner.invoke(app, [*args, "--skip-invalid"])
    assert json.loads(again.stdout)["unchanged"] == 3
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["prefs", "export", "fb", "--format", "kto-jsonl", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "2 desirable, 1 undesirable" in result.output
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert exported[0]["completion"] == [{"role": "assistant", "content": "Settings > Members."}]

    train = ["train", "--feedback", "fb", "--base-model", str(tiny_model_dir), "--detach"]
    result = runner.invoke(app, train)
    assert result.exit_code == 0, result.output
    job_id = result.output.split()[-1]
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert spec["method"] == "kto" and spec["sources"]["feedback"]["imports"] == 3
    assert (spec["sources"]["desirable"], spec["sources"]["undesirable"]) == (2, 1)
    bad = runner.invoke(app, [*train, "--method", "dpo"])
    assert bad.exit_code == 2 and "--feedback trains with method kto" in bad.output


def test_grpo_queues_through_the_cli(ws, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    data = tmp_path / "sums.jsonl"
    row = {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]}
    data.write_text((json.dumps(row) + "\n") * 2)
    base = ["train", "--dataset", str(data), "--base-model", str(tiny_model_dir), "--detach"]
    result = runner.invoke(app, [*base, "--reward", r"regex:\d", "--reward", "reference@0.5"])
    assert result.exit_code == 0, result.output
    _, spec = queue.read_spec(ws.job_dir(result.output.split()[-1]))
    assert spec["method"] == "grpo" and spec["rewards"] == [r"regex:\d", "reference@0.5"]
    bad = runner.invoke(app, [*base, "--reward", "file:rewards/none.py:f"])
    assert bad.exit_code == 2 and "no reward file" in bad.output


def test_thumbs_ratings_are_feedback(ws, store, act):
    from backend.prefs import actions as prefs
    from backend.prefs.pairs import build_items
    from backend.store import prefs as S

    items = build_items({"a": {"q?": "good"}, "b": {"q?": "bad"}}, mode="pairwise", seed=0)
    cs = prefs.create_comparison_set(act(), "cmp", items=items, mode="pairwise", analysts=["ann"])
    (item,) = S.set_items(store, cs["id"])
    ann = act(Actor("ann", "analyst"))
    kto_actions.rate_response(ann, item["id"], 0, True)
    kto_actions.rate_response(ann, item["id"], 1, False)
    with pytest.raises(AlreadyDone):
        kto_actions.rate_response(ann, item["id"], 1, False)
    kto_actions.rate_response(ann, item["id"], 1, True)  # a change of mind replaces it
    rows = feedback_rows(store, "ratings")
    assert [(r["label"], r["who"]) for r in rows] == [(True, "ann"), (True, "ann")]
    assert feedback_sets(store) == [
        {"name": "ratings", "desirable": 2, "undesirable": 0, "updated": rows[-1]["created"]}
    ]
    with pytest.raises(ValueError, match="both desirable and undesirable"):
        kto_actions.kto_fields(act(), feedback="ratings")
    assert isinstance(store, Store)


def test_grpo_and_kto_runs_appear_in_sweeps(ws, act, tmp_path, tiny_model_dir, monkeypatch):
    from backend.train.actions import start_sweep
    from backend.train.config import file_fields

    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    data = tmp_path / "sums.jsonl"
    row = {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]}
    data.write_text((json.dumps(row) + "\n") * 2)
    base = {"base_model": str(tiny_model_dir), "method": "grpo", **file_fields(data)}
    space = {"learning_rate": [1e-4, 1e-3]}
    with pytest.raises(RewardError, match="no reward file"):
        start_sweep(act(), {**base, "rewards": ["file:rewards/x.py:f"]}, space)
    assert queue.job_ids(ws) == []
    _, ids = start_sweep(act(), {**base, "rewards": ["reference@2"]}, space)
    specs = [queue.read_spec(ws.job_dir(i))[1] for i in ids]
    assert [(s["learning_rate"], s["rewards"]) for s in specs] == [
        (1e-4, ["reference@2"]),
        (1e-3, ["reference@2"]),
    ]
    kto = tmp_path / "kto.jsonl"
    kto.write_text(
        "".join(
            json.dumps(K.row([{"role": "user", "content": "q"}], "a", i % 2 == 0)) + "\n"
            for i in range(4)
        )
    )
    _, ids = start_sweep(
        act(),
        {"base_model": str(tiny_model_dir), "method": "kto", "batch_size": 2, **file_fields(kto)},
        {"learning_rate": [1e-4, 1e-3]},
    )
    assert [queue.read_spec(ws.job_dir(i))[1]["method"] for i in ids] == ["kto", "kto"]
