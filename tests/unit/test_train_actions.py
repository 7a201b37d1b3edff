"""Training actions: a role without the permission changes nothing and leaves no audit row; an
allowed call queues its job(s) with exactly one audit row naming the actor; a second cancel or
resume answers "already"; and the run config is split by method (SFT has no beta, DPO has it)
while specs stored before the split still validate. No training here (fast)."""

from __future__ import annotations

import json

import pytest

from backend.action import AlreadyDone, Ctx
from backend.auth import Actor, PermissionDenied
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.jobs.kinds import validate_spec
from backend.store import audit
from backend.store.datasets import add_version, create_dataset
from backend.train import actions
from backend.train.config import (
    METHODS,
    ConfigError,
    DPORunConfig,
    RunConfig,
    SFTRunConfig,
    file_fields,
)

ANALYST = Actor("ann", "analyst")
REVIEWER = Actor("rita", "reviewer")
LEAD = Actor("lee", "lead")


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Queued jobs stay queued: nothing here trains."""
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ctx_as(store, ws, actor):
    return Ctx(store=store, ws=ws, settings=Settings(), actor=actor)


def run_fields(model, data, **extra):
    return {"base_model": str(model), **file_fields(data), "max_steps": 2, **extra}


def audit_actions(store) -> list[tuple[str, str]]:
    return [(r["actor"], r["action"]) for r in audit.rows(store).to_dict("records")]


def test_refused_roles_queue_nothing_and_leave_no_audit_row(ws, store, tiny_model_dir, data):
    create_dataset(store, "support")
    add_version(store, "support", [json.loads(line) for line in data.read_text().splitlines()])
    existing = queue.submit(ws, "train", SFTRunConfig(**run_fields(tiny_model_dir, data)))
    before = audit_actions(store)
    fields = run_fields(tiny_model_dir, data)
    calls = {
        "start run": lambda c: actions.start_run(c, fields),
        "sweep": lambda c: actions.start_sweep(c, fields, {"lora_r": [4, 8]}),
        "optuna": lambda c: actions.start_optuna(c, fields, n_trials=2),
        "resume": lambda c: actions.resume_run(c, existing),
        "cancel": lambda c: actions.cancel_run(c, existing),
        "dataset export": lambda c: actions.data_fields(c, "support"),
        "form": lambda c: actions.form_fields(c, {"base_model": "models/x"}, "support"),
    }
    for what, call in calls.items():
        for who in (ANALYST, REVIEWER):
            with pytest.raises(PermissionDenied, match=f"{who.username} \\({who.role}\\)"):
                call(ctx_as(store, ws, who))
                pytest.fail(f"{what} was allowed for a {who.role}")
    assert queue.job_ids(ws) == [existing]
    assert queue.get(ws, existing).state == "queued"
    assert not (ws.job_dir(existing) / "cancel").exists()
    assert not list(ws.exports.glob("*.jsonl"))  # no dataset export written either
    assert audit_actions(store) == before


def test_each_allowed_call_writes_one_audit_row_naming_the_actor(ws, store, tiny_model_dir, data):
    lead = ctx_as(store, ws, LEAD)
    fields = run_fields(tiny_model_dir, data)

    job = actions.start_run(lead, fields)
    assert audit_actions(store) == [("lee", "train.start")]
    _, spec = queue.read_spec(ws.job_dir(job))
    assert spec["method"] == "sft" and queue.get(ws, job).submitted_by == "lee"

    group, ids = actions.start_sweep(lead, fields, {"lora_r": [4, 8]})
    assert len(ids) == 2 and {queue.get(ws, i).group_id for i in ids} == {group}
    [row] = audit.rows(store, action="train.sweep").to_dict("records")
    assert row["actor"] == "lee" and row["target"] == group
    assert json.loads(row["detail"])["jobs"] == ids

    optuna = actions.start_optuna(lead, fields, n_trials=2, ranks=[4])
    assert queue.get(ws, optuna).kind == "sweep-optuna"
    assert audit_actions(store)[0] == ("lee", "train.optuna")
    assert len(audit_actions(store)) == 3  # one row per call, not one per queued job

    # cancel and resume are recorded in the job folder and audited once at ingest
    assert actions.cancel_run(lead, job).state == "cancelled"
    ingest_all(store, ws)
    assert actions.resume_run(lead, job).state == "queued"
    ingest_all(store, ws)
    for name in ("job.cancel", "job.resume"):
        rows = audit.rows(store, action=name).to_dict("records")
        assert [(r["actor"], r["target"]) for r in rows] == [("lee", job)]


def test_second_cancel_and_second_resume_answer_already(ws, store, tiny_model_dir, data):
    lead = ctx_as(store, ws, LEAD)
    job = actions.start_run(lead, run_fields(tiny_model_dir, data))
    actions.cancel_run(lead, job)
    with pytest.raises(AlreadyDone, match="already cancelled"):
        actions.cancel_run(lead, job)
    actions.resume_run(lead, job)
    with pytest.raises(AlreadyDone, match="queued already"):
        actions.resume_run(lead, job)
    assert queue.pending_count(ws) == 1


def test_bad_configs_and_other_jobs_are_refused_before_anything_is_queued(
    ws, store, tiny_model_dir, data
):
    lead = ctx_as(store, ws, LEAD)
    with pytest.raises(ConfigError, match="learning_rate"):
        actions.start_sweep(lead, run_fields(tiny_model_dir, data), {"learning_rate": [1e-4, 0]})
    with pytest.raises(ConfigError, match="eval_split"):
        actions.start_optuna(lead, run_fields(tiny_model_dir, data, eval_split=0.0))
    assert queue.job_ids(ws) == [] and audit_actions(store) == []
    sleep = queue.submit(ws, "sleep", {"steps": 1})
    with pytest.raises(ValueError, match="not a training run"):
        actions.cancel_run(lead, sleep)


def test_form_fields_confine_typed_paths(ws, store, monkeypatch, tiny_model_dir):
    from backend.security import UnsafePathError

    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    lead = ctx_as(store, ws, LEAD)
    for typed in (str(tiny_model_dir), f"../{tiny_model_dir.name}"):
        with pytest.raises(UnsafePathError):
            actions.form_fields(lead, {"base_model": typed}, "support")
    with pytest.raises(UnsafePathError):
        actions.form_fields(
            lead, {"base_model": tiny_model_dir.name, "init_adapter": "../x"}, "support"
        )


def test_the_config_is_split_by_method_and_old_specs_still_load(tiny_model_dir, data):
    assert "beta" not in SFTRunConfig.model_fields and "beta" in DPORunConfig.model_fields
    assert "init_adapter" in SFTRunConfig.model_fields
    assert "init_adapter" not in DPORunConfig.model_fields
    assert set(METHODS) == {"sft", "dpo", "kto", "grpo"} and "beta" not in RunConfig.model_fields
    fields = run_fields(tiny_model_dir, data)
    assert type(validate_spec("train", fields)) is SFTRunConfig  # no method: sft
    dpo = validate_spec("train", {**fields, "method": "dpo", "beta": 0.3})
    assert type(dpo) is DPORunConfig and dpo.beta == 0.3

    # a spec.json written before the split held every field of the one config class
    old = {
        **SFTRunConfig(**fields).model_dump(mode="json"),
        "beta": 0.1,
    }
    assert type(validate_spec("train", old)) is SFTRunConfig
    old_dpo = {**old, "method": "dpo", "beta": 0.5}
    loaded = validate_spec("train", old_dpo)
    assert type(loaded) is DPORunConfig and loaded.beta == 0.5
    assert "packing" not in loaded.model_dump()

    # a field of the other method that was actually set is refused, naming it
    with pytest.raises(ValueError, match="beta: only dpo runs"):
        validate_spec("train", {**fields, "beta": 0.5})
    with pytest.raises(ValueError, match="init_adapter: only sft runs"):
        validate_spec("train", {**fields, "method": "dpo", "init_adapter": "runs/x/adapter"})
