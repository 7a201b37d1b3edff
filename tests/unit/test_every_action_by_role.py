"""Every action, as every role: a role without the action's permission is refused before
anything is read or written (PermissionDenied, no change, no audit row), whatever arguments it
sends. The table below names each action's permission; a new public function in an actions
module fails this test until it is added, so no action goes unchecked. (Each feature's own
action tests check the allowed roles' audit rows.)"""

from __future__ import annotations

import importlib
import inspect

import pytest

from backend.auth import PERMISSIONS, ROLES, Actor, PermissionDenied
from backend.store.audit import rows as audit_rows

MODULES = [
    "backend.synth.actions",
    "backend.synth.import_actions",
    "backend.synth.version_actions",
    "backend.review.actions",
    "backend.review.labelstudio_actions",
    "backend.prefs.actions",
    "backend.prefs.launch",
    "backend.prefs.kto_actions",
    "backend.train.reward_actions",
    "backend.train.actions",
    "backend.drift.actions",
    "backend.users.actions",
    "backend.jobs.actions",
    "backend.evaluate.actions",
    "backend.settings.actions",
    "backend.export.actions",
]

# action -> the permission it checks first
ACTIONS = {
    "backend.synth.actions.create_dataset": "edit_data",
    "backend.synth.actions.save_recipe": "edit_data",
    "backend.synth.actions.generate": "launch_job",
    "backend.synth.import_actions.import_file": "import_export",
    "backend.synth.import_actions.import_upload": "import_export",
    "backend.synth.import_actions.preview_upload": "import_export",
    "backend.synth.import_actions.export_version": "import_export",
    "backend.synth.import_actions.download_version": "import_export",
    "backend.synth.version_actions.edit_example": "edit_data",
    "backend.synth.version_actions.save_selection": "edit_data",
    "backend.synth.version_actions.save_filtered": "edit_data",
    "backend.synth.version_actions.save_version": "edit_data",
    "backend.synth.actions.seed_demo_dataset": "edit_data",
    "backend.review.actions.launch_scoring": "launch_job",
    "backend.review.actions.launch_judge": "launch_job",
    "backend.review.actions.create_batch": "edit_data",
    "backend.review.actions.apply_batch": "edit_data",
    "backend.review.actions.record_verdict": "review",
    "backend.review.labelstudio_actions.push_batch": "edit_data",
    "backend.review.labelstudio_actions.pull_batch": "review",
    "backend.review.labelstudio_actions.register_webhook": "review",
    "backend.review.labelstudio_actions.delete_webhook": "edit_data",
    "backend.review.labelstudio_actions.start_labelstudio": "settings",
    "backend.review.labelstudio_actions.stop_labelstudio": "settings",
    "backend.review.labelstudio_actions.reveal_labelstudio_credentials": "settings",
    "backend.prefs.actions.create_comparison_set": "edit_data",
    "backend.prefs.actions.judge_item": "rank",
    "backend.prefs.actions.skip_item": "rank",
    "backend.prefs.actions.build_preference_set": "edit_data",
    "backend.prefs.actions.import_preferences": "import_export",
    "backend.prefs.actions.export_jsonl": "import_export",
    "backend.prefs.actions.record_download": "import_export",
    "backend.prefs.actions.export_file": "import_export",
    "backend.prefs.actions.push_to_labelstudio": "rank",
    "backend.prefs.actions.pull_from_labelstudio": "rank",
    "backend.prefs.launch.launch_judge": "launch_job",
    "backend.prefs.launch.launch_answers": "launch_job",
    "backend.prefs.launch.launch_dpo": "launch_job",
    "backend.prefs.kto_actions.rate_response": "rank",
    "backend.prefs.kto_actions.import_feedback": "import_export",
    "backend.prefs.kto_actions.export_feedback": "import_export",
    "backend.train.reward_actions.add_reward_file": "launch_job",
    "backend.train.reward_actions.vet_rewards": "launch_job",
    "backend.train.actions.start_run": "launch_job",
    "backend.train.actions.start_sweep": "launch_job",
    "backend.train.actions.start_optuna": "launch_job",
    "backend.train.actions.resume_run": "launch_job",
    "backend.train.actions.cancel_run": "cancel_job",
    "backend.train.actions.form_fields": "launch_job",
    "backend.train.actions.rerun_run": "launch_job",
    "backend.evaluate.actions.create_suite": "edit_data",
    "backend.evaluate.actions.create_suite_from_file": "edit_data",
    "backend.evaluate.actions.create_suite_from_dataset": "edit_data",
    "backend.evaluate.actions.create_suite_from_monitor": "edit_data",
    "backend.evaluate.actions.run_suite": "launch_job",
    "backend.evaluate.actions.gate_run": "approve_plan",
    "backend.evaluate.actions.run_harness": "launch_job",
    "backend.evaluate.actions.rate_answer": "rank",
    "backend.evaluate.actions.import_ratings": "import_export",
    "backend.drift.actions.create_monitor": "edit_data",
    "backend.drift.actions.set_config": "edit_data",
    "backend.drift.actions.ingest": "edit_data",
    "backend.drift.actions.ingest_file": "edit_data",
    "backend.drift.actions.ingest_upload": "edit_data",
    "backend.drift.actions.run_check": "launch_job",
    "backend.drift.actions.run_checks": "launch_job",
    "backend.drift.actions.approve_plan": "approve_plan",
    "backend.drift.actions.reject_plan": "approve_plan",
    "backend.drift.actions.apply_rules": "approve_plan",
    "backend.drift.actions.acknowledge_alert": "approve_plan",
    "backend.drift.actions.resolve_alert": "approve_plan",
    "backend.users.actions.add_user": "manage_users",
    "backend.users.actions.set_role": "manage_users",
    "backend.users.actions.set_email": "manage_users",
    "backend.users.actions.set_disabled": "manage_users",
    "backend.users.actions.reset_password": "manage_users",
    "backend.jobs.actions.cancel": "cancel_job",
    "backend.jobs.actions.resume": "launch_job",
    "backend.settings.actions.save_settings": "settings",
    "backend.settings.actions.reveal_local_labelstudio": "settings",
    "backend.export.actions.start_export": "launch_job",
}

# public functions of those modules that are not role-checked actions, and why
NOT_ACTIONS = {
    "backend.train.actions.dataset_file": "writes the run's input file from a version; no change",
    "backend.train.actions.data_fields": "prepares a form's data fields; start_run checks",
    "backend.prefs.launch.check_url": "validates a typed URL",
    "backend.prefs.launch.dpo_fields": "prepares a DPO run's data; launch_dpo checks",
    "backend.prefs.kto_actions.kto_fields": "prepares a KTO run's data; start_run checks",
    "backend.prefs.kto_actions.kto_counts": "reads what a KTO run would train on",
    "backend.train.reward_actions.reward_files": "lists the workspace's reward files",
    "backend.train.reward_actions.rewards_dir": "names the workspace's rewards folder",
    "backend.users.actions.sign_in": "anyone may try to sign in (audited, backed off)",
    "backend.users.actions.session_actor": "reads who a session is",
    "backend.users.actions.sign_out": "ends the caller's own session",
    "backend.users.actions.oidc_actor": "reads who a provider's sign-in is",
    "backend.users.actions.new_handoff": "a code for the caller's own session",
    "backend.users.actions.take_handoff": "trades a code for its session's cookie",
}


def _public_functions() -> dict[str, object]:
    found = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, fn in vars(module).items():
            if (
                inspect.isfunction(fn)
                and fn.__module__ == name
                and not attr.startswith("_")
                and "ctx" in inspect.signature(fn).parameters
            ):
                found[f"{name}.{attr}"] = fn
    return found


def test_every_action_is_in_the_table():
    found = set(_public_functions())
    assert found - set(ACTIONS) - set(NOT_ACTIONS) == set(), "add each new action to ACTIONS"
    assert set(ACTIONS) - found == set(), "an action in the table no longer exists"
    assert set(ACTIONS.values()) <= set(PERMISSIONS)


def _dummy(param: inspect.Parameter):
    """Any value will do: the role check comes before the arguments are looked at."""
    return {int: 1, float: 1.0, bool: False, list: [], dict: {}}.get(param.annotation, "x")


@pytest.mark.parametrize("qualified", sorted(ACTIONS))
def test_roles_without_the_permission_are_refused_before_anything_happens(qualified, act, store):
    fn = _public_functions()[qualified]
    refused_roles = [r for r in ROLES if r not in PERMISSIONS[ACTIONS[qualified]]]
    params = [
        p
        for p in list(inspect.signature(fn).parameters.values())[1:]
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    before = len(audit_rows(store))
    tables_before = store.rows("SELECT table_name, estimated_size FROM duckdb_tables()")
    for role in refused_roles:
        args = [_dummy(p) for p in params if p.kind != p.KEYWORD_ONLY]
        kwargs = {p.name: _dummy(p) for p in params if p.kind == p.KEYWORD_ONLY}
        with pytest.raises(PermissionDenied):
            fn(act(Actor(f"someone-{role}", role)), *args, **kwargs)
    assert len(audit_rows(store)) == before
    assert store.rows("SELECT table_name, estimated_size FROM duckdb_tables()") == tables_before
