"""The review actions: each refuses a role without its permission (nothing changed, no audit
row), records exactly one audit row naming an allowed actor, and answers a double submission
(applying a batch twice, pushing it twice, flagging the same run twice), made one after the
other or by two threads at once, with one result and `AlreadyDone` for the other caller.
Label Studio and the local server are stand-ins here (tests/integration has the real one)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from backend.action import AlreadyDone, Ctx
from backend.auth import Actor, PermissionDenied
from backend.config import Settings
from backend.integrations.labelstudio import client as lsc
from backend.integrations.labelstudio import server as lss
from backend.integrations.labelstudio import webhook as hook
from backend.jobs import queue, worker
from backend.review import actions
from backend.review import labelstudio_actions as ls_actions
from backend.review.flagging import FlagPolicy
from backend.review.verdicts import Verdict
from backend.store import datasets as ds
from backend.store import review as rstore
from backend.store.users import audit_rows
from tests.support.seed_review import flagged_batch, scored_dataset

ANALYST = Actor("ann", "analyst")
REVIEWER = Actor("rita", "reviewer")
LEAD = Actor("lee", "lead")
ADMIN = Actor("ada", "admin")
LS = {"label_studio_url": "http://ls.test", "label_studio_token": "tok"}


class FakeServer:
    """Label Studio as the actions see it: projects made, webhooks, an export to pull."""

    def __init__(self):
        self.projects: list[int] = []
        self.export: list[dict] = []
        self.hooks: dict[int, list[str]] = {}

    def create_project(self, url, token, tasks, *, key, **options):
        time.sleep(0.2)  # a push takes a while: a second one arrives meanwhile
        self.projects.append(len(self.projects) + 41)
        return self.projects[-1], {t["data"][key]: 500 + i for i, t in enumerate(tasks)}

    def export_with_users(self, url, token, project_id, stage=lambda _s: None):
        return self.export, {1: "ann@example.com"}

    def register(self, url, token, project_id, receiver_url, secret):
        self.hooks.setdefault(project_id, []).append(receiver_url)
        return {"project_id": project_id, "webhook_id": 9, "created": True, "removed": 0}

    def unregister(self, url, token, project_id, receiver_url=None):
        return len(self.hooks.pop(project_id, []))


class FakeReceiver:
    url, secret = "http://127.0.0.1:8091/", "s3cret"

    def __init__(self):
        self.registered: set[int] = set()


@pytest.fixture
def ls(monkeypatch, ws):
    fake = FakeServer()
    monkeypatch.setattr(lsc, "create_project", fake.create_project)
    monkeypatch.setattr(lsc, "export_with_users", fake.export_with_users)
    monkeypatch.setattr(hook, "register", fake.register)
    monkeypatch.setattr(hook, "unregister", fake.unregister)
    running = {"pid": None}

    def up(ws, port=8080, **_):
        running["pid"] = 4242
        return lss.ServerInfo(f"http://127.0.0.1:{port}", port, 4242, "data", 0.0, 1.0), "tok"

    def down(ws):
        was, running["pid"] = running["pid"] is not None, None
        return was

    monkeypatch.setattr(lss, "up", up)
    monkeypatch.setattr(lss, "down", down)
    monkeypatch.setattr(lss, "status", lambda ws: {"running": running["pid"] is not None})
    creds = {"url": "http://127.0.0.1:8080", "username": "a", "password": "p", "token": "tok"}
    monkeypatch.setattr(lss, "local_credentials", lambda ws: creds if running["pid"] else None)
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    return fake


@pytest.fixture
def ctx(store, ws):
    """`ctx(actor)`: an action context that reaches the stand-in Label Studio."""
    # the judge's test endpoint is one an admin allowed (a lead may not type another)
    cfg = Settings(**LS, allowed_endpoints=["http://127.0.0.1:9/v1"])
    return lambda actor=None: Ctx(store, ws, cfg, actor)


@pytest.fixture
def batch(store):
    _, ids = scored_dataset(store, n=6, job_id="score-1")
    return flagged_batch(store, "support", "score-1", 3)


def _annotation(ann_id: int, example_id: str, verdict: str) -> dict:
    ann = {
        "id": ann_id,
        "completed_by": 1,
        "was_cancelled": False,
        "created_at": "2026-11-29T10:00:00Z",
        "updated_at": "2026-11-29T10:00:00Z",
        "result": [{"from_name": "verdict", "value": {"choices": [verdict]}}],
    }
    return {"data": {"example_id": example_id}, "annotations": [ann]}


def _pushed(store, batch_id) -> None:
    items = rstore.batch_items(store, batch_id)
    rstore.set_project(store, batch_id, "http://ls.test", 7, {i["example_id"]: 1 for i in items})


def _item(store, batch_id, n: int = 0) -> str:
    return rstore.batch_items(store, batch_id)[n]["example_id"]


def _audit(store) -> list[tuple[str, str]]:
    rows = audit_rows(store).to_dict("records")
    return [(r["actor"], r["action"]) for r in reversed(rows)]


def _calls(store, batch_id: str) -> dict:
    """Every review action once, as `call(ctx)` (`_prepare` seeds what each one needs)."""
    tiny = "models/tiny-llama"  # as a dashboard user types it: relative to the workspace
    verdict = lambda who: Verdict(  # noqa: E731
        example_id=_item(store, batch_id), reviewer=who.username, verdict="accept"
    )
    return {
        "score": ("launch_job", lambda c: actions.launch_scoring(c, "support", tiny)),
        "judge": (
            "launch_job",
            lambda c: actions.launch_judge(c, "support", "j1", base_url="http://127.0.0.1:9/v1"),
        ),
        "flag": (
            "edit_data",
            lambda c: actions.create_batch(c, "support", "score-1", FlagPolicy(value=2)),
        ),
        "verdict": ("review", lambda c: actions.record_verdict(c, batch_id, verdict(c.actor))),
        "apply": ("edit_data", lambda c: actions.apply_batch(c, batch_id)),
        "push": ("edit_data", lambda c: ls_actions.push_batch(c, batch_id)),
        "pull": ("review", lambda c: ls_actions.pull_batch(c, batch_id)),
        "webhook": ("review", lambda c: ls_actions.register_webhook(c, 41, FakeReceiver())),
        "unhook": ("edit_data", lambda c: ls_actions.delete_webhook(c, 41)),
        "ls up": ("settings", lambda c: ls_actions.start_labelstudio(c, 8080)),
        "ls down": ("settings", lambda c: ls_actions.stop_labelstudio(c)),
        "ls reveal": ("settings", lambda c: ls_actions.reveal_labelstudio_credentials(c)),
    }


def _prepare(name: str, store, ctx, ls, batch_id: str) -> None:
    (ctx().ws.models / "tiny-llama").mkdir(parents=True, exist_ok=True)
    if name == "apply":
        actions.record_verdict(
            ctx(),
            batch_id,
            Verdict(example_id=_item(store, batch_id, 1), reviewer="bo", verdict="reject"),
        )
    if name == "pull":
        _pushed(store, batch_id)
        ls.export = [_annotation(1, _item(store, batch_id), "reject")]
    if name == "unhook":
        ls.hooks[41] = ["http://127.0.0.1:8091/"]
    if name in ("ls down", "ls reveal"):
        lss.up(None)


def test_each_action_refuses_a_role_without_its_permission(ws, store, ctx, ls, batch):
    for name, (permission, call) in _calls(store, batch["id"]).items():
        _prepare(name, store, ctx, ls, batch["id"])
        before = len(_audit(store))
        refused = [a for a in (ANALYST, REVIEWER, LEAD) if not a.can(permission)]
        assert refused, name
        for who in refused:
            with pytest.raises(PermissionDenied, match=f"{who.username} \\({who.role}\\)"):
                call(ctx(who))
                pytest.fail(f"{name} was allowed for a {who.role}")
        assert len(_audit(store)) == before, name
    # nothing refused happened: no job, no batch, no version, no verdict, no project
    assert queue.job_ids(ws) == []
    assert [b["id"] for b in rstore.batches(store)] == [batch["id"]]
    assert [v["number"] for v in ds.list_versions(store, "support")] == [1]
    assert [r["reviewer"] for r in rstore.reviews(store, batch["id"])] == ["bo"]
    assert ls.projects == [] and ls.hooks == {41: ["http://127.0.0.1:8091/"]}
    assert not list((ws.root / "review" / "inputs").glob("*.jsonl"))


@pytest.mark.parametrize(
    "name", ["score", "judge", "flag", "verdict", "apply", "push", "pull", "webhook", "unhook",
             "ls up", "ls down", "ls reveal"]
)  # fmt: skip
def test_each_action_writes_one_audit_row_naming_the_actor(name, store, ctx, ls, batch):
    permission, call = _calls(store, batch["id"])[name]
    who = next(a for a in (REVIEWER, ANALYST, LEAD, ADMIN) if a.can(permission))
    _prepare(name, store, ctx, ls, batch["id"])
    before = _audit(store)
    call(ctx(who))
    after = _audit(store)
    assert after[: len(before)] == before
    (row,) = after[len(before) :]
    assert row[0] == who.username and row[1].startswith(("review.", "labelstudio.")), row


def test_applying_twice_gives_one_version_and_already_done(store, ctx, batch):
    example = _item(store, batch["id"])
    actions.record_verdict(
        ctx(), batch["id"], Verdict(example_id=example, reviewer="bo", verdict="reject")
    )
    first = actions.apply_batch(ctx(LEAD), batch["id"])
    number = first["version"]["number"]
    with pytest.raises(AlreadyDone, match=f"already applied as version v{number}"):
        actions.apply_batch(ctx(LEAD), batch["id"])
    assert [v["number"] for v in ds.list_versions(store, "support")] == [1, 2]
    assert _audit(store).count(("lee", "review.apply")) == 1


def _race(fn, n: int = 2) -> tuple[list, list[BaseException]]:
    results, errors = [], []
    barrier = threading.Barrier(n)

    def run() -> None:
        barrier.wait()
        try:
            results.append(fn())
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_two_applies_at_once_give_one_version(store, ctx, batch):
    example = _item(store, batch["id"])
    actions.record_verdict(
        ctx(), batch["id"], Verdict(example_id=example, reviewer="bo", verdict="reject")
    )
    results, errors = _race(lambda: actions.apply_batch(ctx(LEAD), batch["id"]))
    assert len(results) == 1 and len(errors) == 1, errors
    assert isinstance(errors[0], AlreadyDone) and "already applied" in str(errors[0])
    assert errors[0].result["version"]["id"] == results[0]["version"]["id"]
    assert [v["number"] for v in ds.list_versions(store, "support")] == [1, 2]
    assert rstore.get_batch(store, batch["id"])["applied_version_id"] == results[0]["version"]["id"]
    assert _audit(store).count(("lee", "review.apply")) == 1


def test_pushing_twice_creates_one_project(store, ctx, ls, batch):
    first = ls_actions.push_batch(ctx(LEAD), batch["id"])
    with pytest.raises(AlreadyDone, match=f"already in Label Studio project {first['project_id']}"):
        ls_actions.push_batch(ctx(LEAD), batch["id"])
    assert ls.projects == [first["project_id"]]
    assert rstore.get_batch(store, batch["id"])["ls_project_id"] == first["project_id"]
    assert all(i["ls_task_id"] for i in rstore.batch_items(store, batch["id"]))
    assert _audit(store).count(("lee", "review.push")) == 1


def test_two_pushes_at_once_create_one_project(store, ctx, ls, batch):
    results, errors = _race(lambda: ls_actions.push_batch(ctx(LEAD), batch["id"]))
    assert len(results) == 1 and len(errors) == 1, errors
    assert isinstance(errors[0], AlreadyDone) and "already" in str(errors[0])
    assert ls.projects == [results[0]["project_id"]]
    assert rstore.get_batch(store, batch["id"])["ls_project_id"] == results[0]["project_id"]
    assert _audit(store).count(("lee", "review.push")) == 1


def test_a_failed_push_releases_its_claim(store, ctx, ls, batch, monkeypatch):
    def down(*a, **k):
        raise lsc.LabelStudioError("creating the project: Label Studio did not answer")

    monkeypatch.setattr(lsc, "create_project", down)
    with pytest.raises(lsc.LabelStudioError):
        ls_actions.push_batch(ctx(LEAD), batch["id"])
    row = rstore.get_batch(store, batch["id"])
    assert (row["ls_claimed"], row["ls_project_id"], row["ls_url"]) == (None, None, None)
    assert ("lee", "review.push") not in _audit(store)
    monkeypatch.undo()
    monkeypatch.setattr(lsc, "create_project", ls.create_project)
    assert ls_actions.push_batch(ctx(LEAD), batch["id"])["project_id"] == 41


def test_a_claim_left_by_a_dead_push_is_taken_over(store, ctx, ls, batch):
    from datetime import datetime, timedelta

    rstore.claim_push(store, batch["id"], "http://ls.test", datetime.now())
    with pytest.raises(AlreadyDone, match="already being pushed"):
        ls_actions.push_batch(ctx(LEAD), batch["id"])
    stale = datetime.now() - ls_actions.STALE_PUSH - timedelta(minutes=1)
    rstore.claim_push(store, batch["id"], "http://ls.test", stale)
    assert ls_actions.push_batch(ctx(LEAD), batch["id"])["project_id"] == 41


def test_flagging_the_same_run_twice_gives_one_batch(store, ctx, batch):
    policy = FlagPolicy(kind="top_k", value=2, qc_share=0)
    made = actions.create_batch(ctx(LEAD), "support", "score-1", policy)
    with pytest.raises(AlreadyDone, match="already flags scoring run score-1"):
        actions.create_batch(ctx(LEAD), "support", "score-1", policy)
    other = FlagPolicy(kind="top_k", value=3, qc_share=0.05)
    results, errors = _race(lambda: actions.create_batch(ctx(LEAD), "support", "score-1", other))
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], AlreadyDone)
    ids = [b["id"] for b in rstore.batches(store, "support")]
    assert ids == [batch["id"], made["id"], results[0]["id"]]
    assert [b["round"] for b in rstore.batches(store, "support")] == [1, 2, 3]


def test_a_verdict_submitted_twice_is_kept_once_and_only_under_ones_own_name(store, ctx, batch):
    example = _item(store, batch["id"])
    for verdict in ("accept", "reject"):
        actions.record_verdict(
            ctx(REVIEWER),
            batch["id"],
            Verdict(example_id=example, reviewer="rita", verdict=verdict),
        )
    (row,) = rstore.reviews(store, batch["id"])
    assert (row["reviewer"], row["verdict"]) == ("rita", "reject")
    with pytest.raises(ValueError, match="rita cannot record a verdict as 'raj'"):
        actions.record_verdict(
            ctx(REVIEWER),
            batch["id"],
            Verdict(example_id=example, reviewer="raj", verdict="accept"),
        )
    assert len(rstore.reviews(store, batch["id"])) == 1


def test_a_pull_that_changes_nothing_writes_no_audit_row(store, ctx, ls, batch):
    _pushed(store, batch["id"])
    ls.export = [_annotation(1, _item(store, batch["id"]), "accept")]
    assert ls_actions.pull_batch(ctx(REVIEWER), batch["id"])["new"] == 1
    again = ls_actions.pull_batch(ctx(REVIEWER), batch["id"])
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, 1)
    assert _audit(store).count(("rita", "review.pull")) == 1


def test_dashboard_paths_are_confined_and_the_shell_is_trusted(ws, store, ctx, batch, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(ValueError, match="relative to"):
        actions.launch_scoring(ctx(LEAD), "support", str(outside))
    with pytest.raises(ValueError, match="'..' is not allowed"):
        actions.launch_scoring(ctx(LEAD), "support", "../elsewhere")
    assert queue.job_ids(ws) == []
    with pytest.raises(ValueError, match="base URL"):
        actions.launch_judge(ctx(LEAD), "support", "j1", base_url="file:///etc/passwd")


def test_label_studio_server_actions_work_beside_a_dashboard(ws, ls):
    """No store (a dashboard holds it): the role check stands, no row can be written."""
    shell = Ctx(None, ws, Settings(), None)
    info, token = ls_actions.start_labelstudio(shell, 8080)
    assert (info.pid, token) == (4242, "tok")
    assert ls_actions.stop_labelstudio(shell) is True
    with pytest.raises(PermissionDenied):
        ls_actions.start_labelstudio(replace(shell, actor=LEAD))


def test_cli_push_and_apply_twice_say_already_done(ws, store, ls, batch, monkeypatch):
    from typer.testing import CliRunner

    from backend.cli import app

    monkeypatch.setenv("LABEL_STUDIO_URL", LS["label_studio_url"])
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", LS["label_studio_token"])
    runner = CliRunner()
    push = ["review", "push", "--dataset", "support", "--top", "2", "--qc-share", "0"]
    first = runner.invoke(app, push)
    assert first.exit_code == 0, first.output
    assert "2 flagged + 0 QC -> http://ls.test/projects/41/data" in first.stdout
    again = runner.invoke(app, [*push, "--json"])
    assert again.exit_code == 0, again.output
    assert "already in Label Studio project 41" in again.stdout and ls.projects == [41]
    pushed = rstore.latest_batch(store, "support")
    ls.export = [_annotation(1, _item(store, pushed["id"]), "reject")]
    pull = runner.invoke(app, ["review", "pull", "--dataset", "support", "--apply"])
    assert pull.exit_code == 0, pull.output
    assert "1 new" in pull.stdout and "new version v2" in pull.stdout
    apply = runner.invoke(app, ["review", "apply", "--dataset", "support"])
    assert apply.exit_code == 0 and "already applied as version v2" in apply.stdout
    assert [v["number"] for v in ds.list_versions(store, "support")] == [1, 2]
