"""The preference actions: a role without the permission is refused and leaves no change and no
audit row; an allowed role leaves exactly one audit row naming it; double submissions (a
preference set version with the newest version's pairs, a second push of a set to Label Studio,
the same judgement twice, one after the other and from two threads at once) give one result and
an AlreadyDone for the other caller."""

from __future__ import annotations

import json
import threading

import pytest

from backend.action import AlreadyDone
from backend.auth import Actor, PermissionDenied
from backend.integrations.labelstudio.client import LabelStudioError
from backend.jobs import read as jobs
from backend.jobs import worker
from backend.prefs import actions, launch
from backend.prefs import labelstudio as pls
from backend.prefs import pairs as P
from backend.prefs.pairs import build_items
from backend.store import db
from backend.store import prefs as S
from backend.store import prefs_ls as L

ANN = Actor("ann", "analyst")
RITA = Actor("rita", "reviewer")
LEE = Actor("lee", "lead")
HH = {
    "chosen": "\n\nHuman: Reset my password?\n\nAssistant: Settings > Security > Reset.",
    "rejected": "\n\nHuman: Reset my password?\n\nAssistant: No.",
}


@pytest.fixture
def seeded(ws, store, act, monkeypatch):
    """A comparison set `cmp` (ann and bob judge every item), both analysts' verdicts on
    every item, generations of two runs, a model folder, and a Label Studio in the settings
    that is never reached (its two calls are replaced below)."""
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-real-token")
    # the judge's test endpoint is one an admin allowed (a lead may not type another)
    monkeypatch.setenv("FTSTUDIO_ALLOWED_ENDPOINTS", "http://127.0.0.1:9/v1")
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    outputs = {
        "run-a": {f"q{i}": f"good {i}" for i in range(3)},
        "run-b": {f"q{i}": f"bad {i}" for i in range(3)},
    }
    with store.transaction() as cur:
        for run, answers in outputs.items():
            cur.executemany(
                "INSERT INTO generations VALUES (?, 1, ?, ?, NULL)",
                [[run, q, a] for q, a in answers.items()],
            )
    cs = actions.create_comparison_set(
        act(), "cmp", sources=["run-a", "run-b"], analysts=["ann", "bob"], overlap=1.0
    )
    items = S.set_items(store, cs["id"])
    for it in items[:2]:
        good = "A" if it["responses"][0]["source"] == "run-a" else "B"
        for who in ("ann", "bob"):
            S.record_judgement(store, it["id"], who, good)
    model = ws.models / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    prefs_file = ws.root / "hh.jsonl"
    prefs_file.write_text(json.dumps(HH) + "\n")
    return {"cs": cs, "items": items, "model": model, "prefs_file": prefs_file}


@pytest.fixture
def fake_ls(monkeypatch):
    """Label Studio's side of a push and a pull, recorded: every project made, one annotation."""
    made: list[str] = []

    def create_project(url, token, cs, items, *, raters=2):
        made.append(cs["name"])
        return {"project_id": len(made), "task_ids": {it["id"]: i for i, it in enumerate(items)}}

    def fetch(url, token, project_id, mode, sizes, on_stage=None):
        item = sorted(sizes)[2]
        row = {
            "id": f"ls:{project_id}:1",
            "item_id": item,
            "annotator": "ann@example.com",
            "verdict": "B",
            "ranking": None,
            "detail": {"updated": "2026-01-02T03:04:05Z"},
        }
        return {"rows": [row], "skipped": [], "tasks": len(sizes)}

    monkeypatch.setattr(pls, "create_project", create_project)
    monkeypatch.setattr(pls, "fetch_annotations", fetch)
    return made


def _audit(store) -> list[tuple[str, str]]:
    rows = store.cursor().execute("SELECT actor, action FROM audit_log ORDER BY t").fetchall()
    return [tuple(r) for r in rows]


def _counts(store, ws) -> dict:
    tables = ("comparison_sets", "comparisons", "preference_set_versions", "comparison_set_ls")
    out = {t: store.scalar(f"SELECT count(*) FROM {t}") for t in tables}
    out["skipped"] = store.scalar("SELECT count(skipped) FROM comparison_assignments")
    out["jobs"] = len(jobs.job_ids(ws))
    out["exported"] = (ws.exports / "out.jsonl").exists()
    return out


def _calls(store, seeded) -> dict:
    """Every action, as a function of the context it runs under (paths typed as a dashboard
    user would: relative to the workspace)."""
    item, model = seeded["items"][2]["id"], "models/tiny"
    return {
        "create_set": lambda c: actions.create_comparison_set(
            c, "cmp2", sources=["run-a", "run-b"], analysts=["ann"]
        ),
        "judgement": lambda c: actions.judge_item(c, item, c.actor.username, "A"),
        "skip": lambda c: actions.skip_item(c, item, "ann"),
        "build": lambda c: actions.build_preference_set(c, "prefs", ["cmp"]),
        "import": lambda c: actions.import_preferences(c, "hh", "hh.jsonl", "hh-rlhf"),
        "export": lambda c: actions.export_file(c, "prefs", "exports/out.jsonl"),
        "download": lambda c: actions.record_download(c, "prefs", S.latest_version(store, "prefs")),
        "judge": lambda c: launch.launch_judge(
            c, "cmp", model="m", base_url="http://127.0.0.1:9/v1", start_worker=False
        ),
        "answer": lambda c: launch.launch_answers(
            c, model=model, prompts_from="run-a", start_worker=False
        ),
        "train_dpo": lambda c: launch.launch_dpo(c, "prefs", base_model=model, max_steps=2),
        "ls_push": lambda c: actions.push_to_labelstudio(c, "cmp"),
        "ls_pull": lambda c: actions.pull_from_labelstudio(c, "cmp"),
    }


# (action, who may not, who may): in order, so export, DPO and pull find what they need
PERMITTED = [
    ("create_set", ANN, LEE),
    ("judgement", RITA, ANN),
    ("skip", RITA, ANN),
    ("build", ANN, LEE),
    ("import", ANN, LEE),
    ("export", ANN, LEE),
    ("download", ANN, LEE),
    ("judge", ANN, LEE),
    ("answer", ANN, LEE),
    ("train_dpo", ANN, LEE),
    ("ls_push", RITA, ANN),
    ("ls_pull", RITA, ANN),
]


def test_each_action_refuses_a_role_without_the_permission(ws, store, act, seeded, fake_ls):
    actions.build_preference_set(act(), "prefs", ["cmp"])  # so export and DPO get that far
    before, audit = _counts(store, ws), _audit(store)
    calls = _calls(store, seeded)
    for name, refused, _ in PERMITTED:
        with pytest.raises(PermissionDenied, match=f"{refused.username} \\({refused.role}\\)"):
            calls[name](act(refused))
            pytest.fail(f"{name} was allowed for a {refused.role}")
    assert _counts(store, ws) == before
    assert _audit(store) == audit
    assert fake_ls == []  # Label Studio was never asked


def test_each_action_records_one_audit_row_naming_the_actor(ws, store, act, seeded, fake_ls):
    calls = _calls(store, seeded)
    for name, _, allowed in PERMITTED:
        before = len(_audit(store))
        calls[name](act(allowed))
        rows = _audit(store)
        audited = "prefs.export" if name == "download" else f"prefs.{name}"
        assert rows[before:] == [(allowed.username, audited)], name
    assert store.scalar("SELECT count(*) FROM preference_set_versions") == 2  # prefs, hh
    assert sorted(j.kind for j in jobs.list_jobs(ws)) == ["answer", "judge", "train"]
    assert [jobs.get(ws, j).submitted_by for j in jobs.job_ids(ws)] == ["lee"] * 3


def test_the_same_version_twice_is_already_done(store, act, seeded):
    v = actions.build_preference_set(act(LEE), "prefs", ["cmp"])
    with pytest.raises(AlreadyDone, match="prefs v1 already holds these 2 pairs") as again:
        actions.build_preference_set(act(LEE), "prefs", ["cmp"])
    assert again.value.result["id"] == v["id"]
    imported = actions.import_preferences(act(LEE), "hh", "hh.jsonl", "hh-rlhf")
    with pytest.raises(AlreadyDone, match="hh v1 already holds these 1 pairs"):
        actions.import_preferences(act(LEE), "hh", "hh.jsonl", "hh-rlhf")
    assert imported["number"] == 1
    assert store.scalar("SELECT count(*) FROM preference_set_versions") == 2
    assert [a for (a,) in store.cursor().execute("SELECT action FROM audit_log").fetchall()][
        -2:
    ] == ["prefs.build", "prefs.import"]
    item = seeded["items"][2]
    S.record_judgement(store, item["id"], "ann", "B")  # a new decided pair: a new version
    assert actions.build_preference_set(act(LEE), "prefs", ["cmp"])["number"] == 2


def test_the_same_judgement_twice_stores_one(store, act, seeded):
    item = seeded["items"][2]["id"]
    first = actions.judge_item(act(ANN), item, "ann", "tie")
    with pytest.raises(AlreadyDone, match="ann already judged this item: tie") as again:
        actions.judge_item(act(ANN), item, "ann", "tie")
    assert again.value.result == first
    actions.judge_item(act(ANN), item, "ann", "A")  # a change of mind supersedes
    rows = S.judgements(store, set_id=seeded["cs"]["id"], latest=False)
    assert [r["verdict"] for r in rows if r["item_id"] == item] == ["tie", "A"]
    with pytest.raises(ValueError, match="ann judges under their own name, not 'bob'"):
        actions.judge_item(act(ANN), item, "bob", "A")


def test_a_push_twice_makes_one_project_and_a_failed_push_can_be_retried(
    store, act, seeded, fake_ls, monkeypatch
):
    real = pls.create_project

    def down(*a, **k):
        raise LabelStudioError("creating the project: Label Studio did not answer")

    monkeypatch.setattr(pls, "create_project", down)
    with pytest.raises(LabelStudioError):
        actions.push_to_labelstudio(act(ANN), "cmp")
    assert store.scalar("SELECT count(*) FROM comparison_set_ls") == 0  # the claim is released
    monkeypatch.setattr(pls, "create_project", real)
    pushed = actions.push_to_labelstudio(act(ANN), "cmp")
    with pytest.raises(AlreadyDone, match="already in Label Studio: .*/projects/1/data"):
        actions.push_to_labelstudio(act(ANN), "cmp")
    assert fake_ls == ["cmp"] and pushed["tasks"] == 3
    assert L.project_link(store, seeded["cs"]["id"]) == pushed["url"]
    assert _audit(store)[1:] == [("ann", "prefs.ls_push")]  # after the seeding create_set


def _race(calls: list) -> tuple[list, list]:
    """Run each call on its own thread, started together: (results, AlreadyDone errors)."""
    start = threading.Barrier(len(calls))
    results, done, errors = [], [], []

    def run(call) -> None:
        start.wait(timeout=10)
        try:
            results.append(call())
        except AlreadyDone as exc:
            done.append(exc)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results, done


def _after_first_call_wait(monkeypatch, module, name: str, parties: int = 2) -> list:
    """Make each thread's first call of `module.name` wait for the other threads' once it
    returned: both transactions have read the state before either writes, so one of them
    loses the race on a key. Returns the list of races lost (filled as they happen)."""
    real, meet, seen = getattr(module, name), threading.Barrier(parties), threading.local()
    lost, real_race = [], db.is_race
    monkeypatch.setattr(db, "is_race", lambda exc: real_race(exc) and not lost.append(exc))

    def wrapped(*args, **kwargs):
        out = real(*args, **kwargs)
        if not getattr(seen, "done", False):
            seen.done = True
            meet.wait(timeout=10)
        return out

    monkeypatch.setattr(module, name, wrapped)
    return lost


def test_two_builds_at_once_make_one_version(store, act, seeded, monkeypatch):
    lost = _after_first_call_wait(monkeypatch, S, "latest_version")
    build = lambda: actions.build_preference_set(act(LEE), "prefs", ["cmp"])  # noqa: E731
    results, done = _race([build, build])
    assert len(results) == 1 and len(done) == 1 and lost
    assert "already holds" in str(done[0])
    assert store.scalar("SELECT count(*) FROM preference_set_versions") == 1
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'prefs.build'") == 1


def test_two_same_judgements_at_once_store_one(store, act, seeded, monkeypatch):
    item = seeded["items"][2]["id"]
    lost = _after_first_call_wait(monkeypatch, S, "annotator_judgements")
    judge = lambda: actions.judge_item(act(ANN), item, "ann", "B")  # noqa: E731
    results, done = _race([judge, judge])
    assert len(results) == 1 and len(done) == 1 and lost
    assert store.scalar("SELECT count(*) FROM comparisons WHERE item_id = ?", [item]) == 1
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'prefs.judgement'") == 1


def test_two_pushes_at_once_make_one_project(store, act, seeded, fake_ls, monkeypatch):
    lost = _after_first_call_wait(monkeypatch, L, "now")  # both read "no claim", then insert
    push = lambda: actions.push_to_labelstudio(act(ANN), "cmp")  # noqa: E731
    results, done = _race([push, push])
    assert len(results) == 1 and len(done) == 1 and lost
    assert "already" in str(done[0]) and fake_ls == ["cmp"]
    assert store.scalar("SELECT count(*) FROM comparison_set_ls") == 1
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'prefs.ls_push'") == 1


def test_a_judge_job_queued_twice_and_a_set_made_twice_are_already_done(ws, act, seeded):
    kw = {"model": "m", "base_url": "http://127.0.0.1:9/v1", "start_worker": False}
    job_id = launch.launch_judge(act(LEE), "cmp", **kw)
    with pytest.raises(AlreadyDone, match=f"judge job {job_id} .* is already queued"):
        launch.launch_judge(act(LEE), "cmp", **kw)
    assert jobs.job_ids(ws) == [job_id]
    with pytest.raises(AlreadyDone, match="a comparison set named 'cmp' already exists"):
        actions.create_comparison_set(act(), "cmp", sources=["run-a", "run-b"], analysts=["x"])
    with pytest.raises(ValueError, match="not an http"):
        launch.launch_judge(act(LEE), "cmp", model="m", base_url="file:///etc/passwd")


def test_typed_paths_are_confined_for_dashboard_users(tmp_path, act, seeded):
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text(json.dumps(HH) + "\n")
    with pytest.raises(ValueError):
        actions.import_preferences(act(LEE), "hh", str(outside), "hh-rlhf")
    assert actions.import_preferences(act(), "hh", outside, "hh-rlhf")["n_pairs"] == 1


def test_stored_verdicts_match_the_domain():
    assert set(S.STORED_VERDICTS) == {*P.JUDGE_VERDICTS, "ranking"}


def test_items_built_by_the_caller(act, store):
    items = build_items({"r1": {"q": "a"}, "r2": {"q": "b"}})
    cs = actions.create_comparison_set(act(LEE), "c", items=items, analysts=["ann"])
    assert cs["n_items"] == 1 and S.progress(store, cs["id"])[0]["assigned"] == 1


def test_a_dashboard_export_of_a_set_goes_under_exports_only(act, seeded, ws):
    """The workspace itself, its database or a studio folder is refused; exports/ is fine."""
    from backend.action import ActionError

    actions.build_preference_set(act(LEE), "prefs", ["cmp"])
    for bad in (".", "studio.duckdb", "jobs/x.jsonl", "exports"):
        with pytest.raises(ActionError, match="cannot export"):
            actions.export_file(act(LEE), "prefs", bad)
    assert (ws.root / "studio.duckdb").exists()
    done = actions.export_file(act(LEE), "prefs", "exports/prefs.jsonl")
    assert done["written"] > 0 and (ws.exports / "prefs.jsonl").exists()
