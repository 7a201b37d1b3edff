"""The Review page in a real browser: a real score job on the tiny model ends and the page
shows its scores by itself (no reload), and the page keeps its tab through an action, a
reload, typing a reviewer's name and a download.

The seconds from the job's end (its status.json) to the page showing the scores are printed
(`-s` shows them) and kept in <tmp>/review_live_seconds.txt."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Dashboard

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

N = 12
LIVE_WITHIN_S = 15.0  # the page follows within ~2 s of the ingest; generous on a busy machine


@pytest.fixture(scope="module")
def review_ws(tmp_path_factory, tiny_model_dir):
    """A workspace with the tiny model and a 12-example dataset `support`, not scored."""
    from backend.store import Store
    from backend.store import datasets as ds
    from backend.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("e2e-review") / "workspace").ensure()
    shutil.copytree(tiny_model_dir, ws.models / "tiny-llama")
    (ws.root / "demo.json").write_text(json.dumps({"train_job": "skipped: a review test"}))
    store = Store.open(ws.db_path)
    try:
        ds.create_dataset(store, "support")
        ds.add_version(
            store,
            "support",
            [
                {
                    "messages": [
                        {"role": "user", "content": f"How do I reset board {i}?"},
                        {"role": "assistant", "content": f"Open settings, then board {i}."},
                    ]
                }
                for i in range(N)
            ],
        )
    finally:
        store.close()
    server = Dashboard(ws.root)
    yield server, ws
    server.stop()


def _finished_score_job(ws, timeout_s: float = 300) -> tuple[str, float]:
    """(job id, the time it ended) of the workspace's score job, waiting for it to end."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for path in ws.root.glob("jobs/*/status.json"):
            try:
                status = json.loads(path.read_text())
            except ValueError:
                continue  # being replaced
            if status.get("kind") == "score" and status.get("finished"):
                assert status["state"] == "succeeded", status
                return status["id"], status["finished"]
        time.sleep(0.1)
    raise AssertionError(f"no score job ended within {timeout_s}s")


def test_scores_show_up_by_themselves_when_the_job_ends(review_ws, page, tmp_path):
    server, ws = review_ws
    page.goto(f"{server.url}/review?review_dataset=support")
    expect(page.get_by_role("heading", name="Review")).to_be_visible(timeout=60_000)
    not_yet = page.get_by_text("Not scored yet")
    expect(not_yet).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Score this dataset").click()
    expect(page.get_by_text(f"Scoring {N} examples of support")).to_be_visible(timeout=60_000)
    page.evaluate("window.__still_this_page = true")  # gone if the page were reloaded

    job_id, ended = _finished_score_job(ws)
    seen = None
    deadline = time.time() + 120
    while time.time() < deadline:
        if not_yet.count() == 0 and page.get_by_text(job_id).count():
            seen = time.time()
            break
        page.wait_for_timeout(100)
    assert seen is not None, "the page still says 'Not scored yet' two minutes after the job"
    lag = seen - ended
    (tmp_path / "review_live_seconds.txt").write_text(f"{lag:.2f}\n")
    print(f"\nReview page showed job {job_id}'s scores {lag:.2f} s after the job ended")  # noqa: T201
    assert page.evaluate("window.__still_this_page === true"), "the page was reloaded"
    assert lag < LIVE_WITHIN_S
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Scored examples")
    expect(metric).to_contain_text(str(N))
    page.get_by_role("tab", name="Flag").click()  # the Flag tab drew its histogram as well
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=30_000)


def _selected(page, name: str) -> None:
    expect(page.get_by_role("tab", name=name)).to_have_attribute(
        "aria-selected", "true", timeout=30_000
    )


def test_actions_reload_typing_and_download_keep_the_tab(review_ws, page, tmp_path):
    server, ws = review_ws
    _finished_score_job(ws)  # the first test's job (this one may run alone)
    page.goto(f"{server.url}/review?review_dataset=support&review_tab=Flag")
    _selected(page, "Flag")
    create = page.get_by_role("button", name="Create review batch")
    expect(create).to_be_visible(timeout=60_000)
    create.click()
    expect(page.get_by_text("flagged +", exact=False)).to_be_visible(timeout=60_000)
    _selected(page, "Flag")
    assert "review_tab=Flag" in page.url

    page.reload()
    _selected(page, "Flag")
    expect(page.get_by_role("button", name="Create review batch")).to_be_visible(timeout=60_000)

    page.get_by_role("tab", name="Review here").click()
    _selected(page, "Review here")
    name = page.get_by_label("Your name")
    name.fill("ana")
    name.press("Enter")
    expect(page.get_by_role("button", name="Submit and next")).to_be_visible(timeout=60_000)
    _selected(page, "Review here")

    page.get_by_role("tab", name="Label Studio").click()
    _selected(page, "Label Studio")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download this batch's verdicts (JSON lines)").click()
    assert download.value.suggested_filename.endswith("-verdicts.jsonl")
    page.wait_for_timeout(1500)  # a rerun after the download would have switched tabs by now
    _selected(page, "Label Studio")
    page.reload()
    _selected(page, "Label Studio")
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
