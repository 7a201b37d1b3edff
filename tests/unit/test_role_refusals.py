"""Backend functions refuse by role before they write anything: hiding a page is never the
only protection. The trusted shell (actor None) and a lead may; a reviewer or analyst may not."""

from __future__ import annotations

import pytest

from backend.action import Ctx
from backend.auth import Actor, PermissionDenied
from backend.config import Settings
from backend.drift import actions as drift
from backend.jobs import queue
from backend.prefs import actions as prefs_actions
from backend.prefs.launch import launch_judge
from backend.store import datasets as dstore
from backend.store.users import audit_rows
from backend.synth import actions as synth
from backend.synth import import_actions
from backend.train import actions as train_actions

ANALYST = Actor("ann", "analyst")
REVIEWER = Actor("rita", "reviewer")
LEAD = Actor("lee", "lead")


def as_(store, ws, actor):
    return Ctx(store=store, ws=ws, settings=Settings(), actor=actor)


def test_each_guarded_call_refuses_a_role_without_the_permission(ws, store, tmp_path):
    dstore.create_dataset(store, "support")
    dstore.add_version(
        store,
        "support",
        [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}],
    )
    data = tmp_path / "in.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}\n'
    )
    prefs = tmp_path / "p.jsonl"
    prefs.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    calls = {
        "train run": lambda a: train_actions.start_run(as_(store, ws, a), {}),
        "sweep": lambda a: train_actions.start_sweep(as_(store, ws, a), {}, {"lora_r": [4]}),
        "optuna": lambda a: train_actions.start_optuna(as_(store, ws, a), {}),
        "judge": lambda a: launch_judge(as_(store, ws, a), "none", model="m"),
        "drift check": lambda a: drift.run_check(as_(store, ws, a), "none"),
        "approve plan": lambda a: drift.approve_plan(as_(store, ws, a), "plan-x"),
        "reject plan": lambda a: drift.reject_plan(as_(store, ws, a), "plan-x"),
        "export dataset": lambda a: import_actions.export_version(
            as_(store, ws, a), "support", "messages-jsonl", "exports/out.jsonl"
        ),
        "import dataset": lambda a: import_actions.import_file(as_(store, ws, a), "support", data),
        "import prefs": lambda a: prefs_actions.import_preferences(
            as_(store, ws, a), "p", prefs, "dpo-jsonl"
        ),
        "export prefs": lambda a: prefs_actions.export_file(
            as_(store, ws, a), "p", "exports/p.jsonl"
        ),
        "cancel job": lambda a: queue.cancel(ws, "job-x", actor=a),
        "resume job": lambda a: queue.resume(ws, "job-x", actor=a),
    }
    for what, call in calls.items():
        for who in (ANALYST, REVIEWER):
            with pytest.raises(PermissionDenied, match=f"{who.username} \\({who.role}\\)"):
                call(who)
                pytest.fail(f"{what} was allowed for a {who.role}")
    assert queue.job_ids(ws) == []
    assert not (ws.exports / "out.jsonl").exists()
    assert [v["number"] for v in dstore.list_versions(store, "support")] == [1]
    # nothing refused left a trace as if it had happened (only the seeding shell's create)
    assert set(audit_rows(store)["action"]) <= {"dataset.create"}


def test_import_and_export_record_who(ws, store, tmp_path):
    dstore.create_dataset(store, "support")
    line = (
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "%s"}]}\n'
    )
    (ws.root / "in.jsonl").write_text(line % "b")  # a dashboard user's path: in the workspace
    import_actions.import_file(as_(store, ws, LEAD), "support", "in.jsonl", label="team.jsonl")
    import_actions.export_version(
        as_(store, ws, LEAD), "support", "messages-jsonl", "exports/out.jsonl"
    )
    data = tmp_path / "in.jsonl"
    data.write_text(line % "c")
    import_actions.import_file(as_(store, ws, None), "support", data)  # the shell
    rows = [r for r in audit_rows(store).to_dict("records") if r["action"] != "dataset.create"]
    assert [(r["actor"], r["action"]) for r in reversed(rows)] == [
        ("lee", "dataset.import"),
        ("lee", "dataset.export"),
        ("shell", "dataset.import"),
    ]
    assert '"team.jsonl"' in rows[-1]["detail"]


def test_data_changes_refuse_reviewers_and_are_audited(ws, store):
    reviewer, lead = Actor("rita", "reviewer"), Actor("lee", "lead")
    with pytest.raises(PermissionDenied):
        synth.create_dataset(as_(store, ws, reviewer), "nope")
    assert dstore.list_datasets(store) == []
    synth.create_dataset(as_(store, ws, lead), "support")
    with pytest.raises(PermissionDenied):
        synth.save_recipe(as_(store, ws, reviewer), "support", {"format": "messages"})
    synth.save_recipe(as_(store, ws, lead), "support", {"format": "messages"})
    rows = audit_rows(store).to_dict("records")
    assert [(r["actor"], r["action"], r["target"]) for r in reversed(rows)] == [
        ("lee", "dataset.create", "support"),
        ("lee", "dataset.recipe", "support"),
    ]
