"""Against a REAL Label Studio (its own venv, started once per session from the migrated
template): push a batch, annotate through the REST API as reviewers would, pull twice with no
duplicates, apply into a new version, and stop the server mid-pull: a clear error, nothing lost.

Needs .venv-labelstudio (scripts/labelstudio_venv.sh creates it); the session fixture `server`
(tests/integration/conftest.py, shared with test_prefs_labelstudio.py) creates it too.
"""

from __future__ import annotations

import httpx
import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.integrations.labelstudio import server as srv
from backend.integrations.labelstudio.client import LabelStudioError
from backend.review import actions
from backend.review import labelstudio_actions as ls_actions
from backend.store import Store
from backend.store import datasets as ds
from backend.store import review as rstore
from backend.workspace import Workspace
from tests.support.labelstudio_api import annotate, delete_annotation, review_result
from tests.support.seed_review import flagged_batch, scored_dataset

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


@pytest.fixture(scope="module")
def loop(server, tmp_path_factory):
    """A dataset of 20 examples, scored, flagged (top 6 + QC) and pushed."""
    _, info, token = server
    store = Store.open(tmp_path_factory.mktemp("db") / "studio.duckdb")
    _, ids = scored_dataset(
        store,
        n=20,
        job_id="score-job-1",
        score=lambda i: 1.0 + i / 10,
        question="question {i}",
        answer="answer {i}",
    )
    batch = flagged_batch(store, "support", "score-job-1", 6, qc_share=0.05)
    pushed = ls_actions.push_batch(_ctx(store, info.url, token), batch["id"], overlap_share=0.5)
    yield store, batch, pushed, ids
    store.close()


def _ctx(store, url: str, token: str) -> Ctx:
    """The shell acting on this store, talking to the session's Label Studio at `url`."""
    settings = Settings(label_studio_url=url, label_studio_token=token)
    return Ctx(store=store, ws=Workspace(store.path.parent), settings=settings, actor=None)


def _pull(store, batch_id: str, url: str, token: str, **kw) -> dict:
    return ls_actions.pull_batch(_ctx(store, url, token), batch_id, **kw)


def _annotate(url: str, token: str, task_id: int, verdict: str, corrected: str | None = None):
    return annotate(url, token, task_id, review_result(verdict, corrected=corrected))


def test_server_is_local_and_recorded(server):
    ws, info, token = server
    assert info.url.startswith("http://127.0.0.1:")
    assert srv.status(ws)["running"] is True
    creds = ws.root / "labelstudio" / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600
    assert token not in (ws.root / "labelstudio" / "server.json").read_text()
    assert token not in (ws.root / "labelstudio" / "server.log").read_text()
    r = httpx.get(f"{info.url}/api/projects", headers={"Authorization": "Token wrong-token"})
    assert r.status_code == 401


def test_push_creates_uncertainty_sampled_project_with_predictions(server, loop):
    _, info, token = server
    store, batch, pushed, ids = loop
    assert pushed["tasks"] == batch["n_flagged"] + batch["n_qc"] == 7
    project = httpx.get(
        f"{info.url}/api/projects/{pushed['project_id']}",
        headers={"Authorization": f"Token {token}"},
    ).json()
    assert project["sampling"] == "Uncertainty sampling"
    assert project["maximum_annotations"] == 2
    items = rstore.batch_items(store, batch["id"])
    assert all(i["ls_task_id"] for i in items)
    task = httpx.get(
        f"{info.url}/api/tasks/{items[0]['ls_task_id']}",
        headers={"Authorization": f"Token {token}"},
    ).json()
    assert task["data"]["example_id"] == items[0]["example_id"] == ids[-1]  # least certain first
    assert task["total_predictions"] == 1


def test_annotate_pull_twice_and_apply(server, loop):
    _, info, token = server
    store, batch, pushed, ids = loop
    items = rstore.batch_items(store, batch["id"])
    _annotate(info.url, token, items[0]["ls_task_id"], "accept")
    _annotate(info.url, token, items[1]["ls_task_id"], "reject")
    _annotate(info.url, token, items[2]["ls_task_id"], "accept", corrected="a better answer")
    first = _pull(store, batch["id"], info.url, token)
    assert (first["new"], first["annotations"]) == (3, 3)
    second = _pull(store, batch["id"], info.url, token)
    assert (second["new"], second["updated"], second["unchanged"]) == (0, 0, 3)
    assert store.scalar("SELECT count(*) FROM reviews") == 3
    verdicts = {r["example_id"]: r["verdict"] for r in rstore.reviews(store, batch["id"])}
    assert sorted(verdicts.values()) == ["accept", "correct", "reject"]
    applied = actions.apply_batch(_ctx(store, info.url, token), batch["id"])
    assert applied["version"]["n_examples"] == 19
    new = ds.version_examples(store, applied["version"]["id"])
    fixed = [e for e in new if e["parent_id"] == items[2]["example_id"]]
    assert len(fixed) == 1 and fixed[0]["messages"][-1]["content"] == "a better answer"
    assert items[1]["example_id"] not in {e["id"] for e in new}


def test_stopped_mid_pull_gives_a_clear_error_and_loses_nothing(server, loop):
    ws, info, token = server
    store, batch, _, _ = loop
    items = rstore.batch_items(store, batch["id"])
    _annotate(info.url, token, items[3]["ls_task_id"], "reject")
    before = store.rows("SELECT * FROM reviews ORDER BY id")

    def stop_at_export(stage: str) -> None:
        if stage == "export":
            srv.down(ws)

    with pytest.raises(LabelStudioError, match="did not answer.*Nothing was changed"):
        _pull(store, batch["id"], info.url, token, on_stage=stop_at_export)
    assert store.rows("SELECT * FROM reviews ORDER BY id") == before
    again, _ = srv.up(ws, info.port)  # same data folder: the annotation is still there
    after = _pull(store, batch["id"], again.url, token)
    assert (after["new"], after["unchanged"]) == (1, 3)
    assert store.scalar("SELECT count(*) FROM reviews") == 4


def test_a_deletion_after_apply_keeps_the_verdict(live_server, loop):
    """The batch was applied (the version made from its verdicts never changes): an
    annotation deleted in Label Studio afterwards is counted, not dropped."""
    info, token = live_server
    store, batch, _, _ = loop
    first = next(r for r in rstore.reviews(store, batch["id"]) if r["source"] == "label-studio")
    delete_annotation(info.url, token, int(first["id"].split(":")[1]))
    pulled = _pull(store, batch["id"], info.url, token)
    assert (pulled["removed"], pulled["kept_deleted"]) == (0, 1)
    assert first["id"] in {r["id"] for r in rstore.reviews(store, batch["id"])}
