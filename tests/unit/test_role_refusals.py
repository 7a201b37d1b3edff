"""Backend functions refuse by role before they write anything: hiding a page is never the
only protection. The trusted shell (actor None) and a lead may; a reviewer or analyst may not."""

from __future__ import annotations

import pytest

from backend.auth import Actor, PermissionDenied
from backend.drift import checks, triggers
from backend.jobs import queue
from backend.prefs.submit import export_preference_jsonl, import_preference_file, submit_judge
from backend.store import datasets as dstore
from backend.store.users import audit_rows
from backend.synth.exporters import export_version
from backend.synth.importers import import_file
from backend.train.launch import submit_run
from backend.train.sweep import submit_optuna, submit_sweep

ANALYST = Actor("ann", "analyst")
REVIEWER = Actor("rita", "reviewer")
LEAD = Actor("lee", "lead")


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
        "train run": lambda a: submit_run(ws, {}, actor=a),
        "sweep": lambda a: submit_sweep(ws, {}, {"lora_r": [4]}, actor=a),
        "optuna": lambda a: submit_optuna(ws, {}, actor=a),
        "judge": lambda a: submit_judge(store, ws, "none", model="m", actor=a),
        "drift check": lambda a: checks.submit_check(store, ws, "none", actor=a),
        "approve plan": lambda a: triggers.approve(store, ws, "plan-x", actor=a),
        "reject plan": lambda a: triggers.reject(store, "plan-x", actor=a),
        "export dataset": lambda a: export_version(
            store, "support", "messages-jsonl", tmp_path / "out.jsonl", actor=a
        ),
        "import dataset": lambda a: import_file(store, "support", data, actor=a),
        "import prefs": lambda a: import_preference_file(store, "p", prefs, "dpo", actor=a),
        "export prefs": lambda a: export_preference_jsonl(store, "p", actor=a),
        "cancel job": lambda a: queue.cancel(ws, "job-x", actor=a),
        "resume job": lambda a: queue.resume(ws, "job-x", actor=a),
    }
    for what, call in calls.items():
        for who in (ANALYST, REVIEWER):
            with pytest.raises(PermissionDenied, match=f"{who.username} \\({who.role}\\)"):
                call(who)
                pytest.fail(f"{what} was allowed for a {who.role}")
    assert queue.job_ids(ws) == []
    assert not (tmp_path / "out.jsonl").exists()
    assert [v["number"] for v in dstore.list_versions(store, "support")] == [1]
    # nothing refused left a trace as if it had happened (only the seeding shell's create)
    assert set(audit_rows(store)["action"]) <= {"dataset.create"}


def test_import_and_export_record_who(ws, store, tmp_path):
    dstore.create_dataset(store, "support")
    data = tmp_path / "in.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}\n'
    )
    import_file(store, "support", data, actor=LEAD, label="team.jsonl")
    export_version(store, "support", "messages-jsonl", tmp_path / "out.jsonl", actor=LEAD)
    import_file(store, "support", data)  # the shell
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
        dstore.create_dataset(store, "nope", actor=reviewer)
    assert dstore.list_datasets(store) == []
    dstore.create_dataset(store, "support", actor=lead)
    with pytest.raises(PermissionDenied):
        dstore.set_recipe(store, "support", {"format": "messages"}, actor=reviewer)
    dstore.set_recipe(store, "support", {"format": "messages"}, actor=lead)
    rows = audit_rows(store).to_dict("records")
    assert [(r["actor"], r["action"], r["target"]) for r in reversed(rows)] == [
        ("lee", "dataset.create", "support"),
        ("lee", "dataset.recipe", "support"),
    ]
