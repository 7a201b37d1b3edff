"""Training and Compare in a real browser, live:

- the version list follows the dataset picked (and the URL keeps the dataset);
- a run queued from the New run form opens in the Run tab (that run, not the previous one);
  the dashboard's own worker trains it on the tiny model; when the job ends, the Run tab and a
  Compare page opened before it (empty then) update by themselves, with no reload. The seconds
  from the job's end (its status file) to each view updating are printed (`-s` shows them);
- a second run queued after going back to New run opens in the Run tab too; Cancel and Resume
  keep the tab and the run, and so does a reload.
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Dashboard

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from backend.store import Store
    from backend.store import datasets as dstore
    from backend.train.demo_model import build_tiny_model
    from backend.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("e2e-training") / "workspace").ensure()
    build_tiny_model(ws.models / "tiny-llama")  # the form's default base model; no demo job
    (ws.root / "demo.json").write_text(json.dumps({"train_job": "skipped: e2e"}))  # no demo run
    store = Store.open(ws.db_path)
    try:
        dstore.create_dataset(store, "support")
        dstore.add_version(store, "support", [chat(f"Old {i}?", "Old.") for i in range(6)])
        rows = [chat(f"How do I export sprint {i}?", "Open Reports.") for i in range(9)]
        dstore.add_version(store, "support", rows)
        dstore.create_dataset(store, "billing")
        dstore.add_version(store, "billing", [chat(f"Invoice {i}?", "Settings.") for i in range(5)])
    finally:
        store.close()
    server = Dashboard(ws.root)
    try:
        yield server, ws
    finally:
        server.stop()


def status_of(ws, job_id: str) -> dict:
    try:
        return json.loads((ws.job_dir(job_id) / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def wait_state(ws, job_id: str, states: tuple[str, ...], timeout_s: float = 300) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = status_of(ws, job_id)
        if status.get("state") in states:
            return status
        time.sleep(0.1)
    raise AssertionError(f"{job_id} never reached {states}: {status_of(ws, job_id)}")


def seconds_until(page, check, deadline_s: float = 60) -> float:
    """Poll `check()` (a cheap DOM count) every 0.1 s; the time it first held."""
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if check():
            return time.time()
        time.sleep(0.1)
    metrics = page.get_by_test_id("stMetric").all_inner_texts()
    raise AssertionError(f"the view did not update: {page.url} {metrics}")


def select(where, label: str, option: str) -> None:
    where.get_by_role("combobox", name=label).first.click()
    where.page.get_by_role("option", name=option, exact=True).click()


def selectbox(page, label: str):
    """A selectbox's input (its value is the option shown)."""
    return page.get_by_role("combobox", name=label).first


def settle(page) -> None:
    """Let the rerun a click started finish, as a person's pace would."""
    page.wait_for_timeout(300)
    idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    expect(idle).to_be_attached(timeout=30_000)


def metric(page, label_re: str):
    return page.get_by_test_id("stMetric").filter(has_text=re.compile(label_re))


def run_tab_open(page):
    return page.get_by_role("tab", name="Run", exact=True, selected=True)


def test_the_version_list_follows_the_dataset(studio, page):
    server, _ = studio
    page.goto(f"{server.url}/training")
    expect(page.get_by_role("heading", name="Training")).to_be_visible(timeout=60_000)
    new_run = page.get_by_role("tabpanel", name="New run")
    expect(selectbox(new_run, "Version")).to_have_value("v2", timeout=30_000)
    expect(new_run.get_by_text("support v2: 9 examples")).to_be_visible()
    select(new_run, "Dataset", "billing")
    expect(new_run.get_by_text("billing v1: 5 examples")).to_be_visible(timeout=30_000)
    expect(selectbox(new_run, "Version")).to_have_value("v1")
    expect(page).to_have_url(re.compile(r"training_dataset=billing"))
    selectbox(new_run, "Version").click()
    assert page.get_by_role("option").all_inner_texts() == ["v1"]  # billing's versions only
    page.keyboard.press("Escape")
    select(new_run, "Dataset", "support")
    expect(new_run.get_by_text("support v2: 9 examples")).to_be_visible(timeout=30_000)
    expect(selectbox(new_run, "Version")).to_have_value("v2")
    selectbox(new_run, "Version").click()
    assert page.get_by_role("option").all_inner_texts() == ["v2", "v1"]
    page.keyboard.press("Escape")


def queue_run(page, steps: int) -> str:
    """Fill the New run form's step limit, start the run, return its id from the message."""
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Start run"))
    box = form.get_by_label("Stop after this many steps", exact=True)
    box.fill(str(steps))
    box.press("Tab")
    form.get_by_role("button", name="Start run").click()
    queued = page.get_by_text(re.compile(r"Queued run \S+ on support v2"))
    expect(queued).to_be_visible(timeout=60_000)
    return re.search(r"Queued run (\S+) on", queued.inner_text()).group(1)


def test_a_run_opens_in_the_run_tab_and_the_views_update_when_it_ends(studio, page, tmp_path):
    server, ws = studio
    compare = page.context.new_page()  # a second tab: Compare, open before any run exists
    compare.goto(f"{server.url}/compare")
    expect(compare.get_by_role("heading", name="Compare runs")).to_be_visible(timeout=60_000)
    expect(compare.get_by_text("No training runs yet")).to_be_visible(timeout=30_000)
    compare.evaluate("window.__not_reloaded = 'yes'")

    page.goto(f"{server.url}/training")
    expect(page.get_by_role("heading", name="Training")).to_be_visible(timeout=60_000)
    job_id = queue_run(page, 3)
    # the Run tab is open on THIS run, and the URL says so
    expect(run_tab_open(page)).to_be_visible(timeout=30_000)
    expect(page).to_have_url(re.compile(r"training_tab=Run"), timeout=30_000)
    expect(page).to_have_url(re.compile(f"training_run={re.escape(job_id)}"))
    expect(selectbox(page, "Run")).to_have_value(job_id)
    page.evaluate("window.__not_reloaded = 'yes'")
    spec = json.loads((ws.job_dir(job_id) / "spec.json").read_text())
    assert spec["spec"]["max_steps"] == 3 and spec["spec"]["dataset"] == "support"

    # Compare saw the run arrive by itself (queued or running by now)
    expect(compare.get_by_text("No training runs yet")).to_have_count(0, timeout=60_000)

    status = wait_state(ws, job_id, TERMINAL)
    assert status["state"] == "succeeded", status
    ended = status["finished"]
    run_eval = metric(page, r"^Eval loss\s*\d")
    seen_run = seconds_until(page, lambda: run_eval.count() > 0)
    best = metric(compare, r"^Lowest SFT eval loss on support v2\s*\d")
    seen_compare = seconds_until(compare, lambda: best.count() > 0)
    for where, seen in (("Training Run tab", seen_run), ("Compare", seen_compare)):
        sys.stdout.write(f"\njob end -> {where} updated: {seen - ended:.2f} s\n")
        assert seen - ended < 15, (where, seen - ended)
    expect(metric(page, r"^Running\s*0")).to_be_visible()
    expect(metric(compare, r"^Running\s*0")).to_be_visible()
    expect(page.get_by_text("adapter: ")).to_be_visible()
    assert page.evaluate("window.__not_reloaded") == "yes"
    assert compare.evaluate("window.__not_reloaded") == "yes"
    page.screenshot(path=str(tmp_path / "training-run.png"), full_page=True)
    compare.screenshot(path=str(tmp_path / "compare-live.png"), full_page=True)

    # back to New run, a longer run: it opens in the Run tab too
    page.get_by_role("tab", name="New run").click()
    settle(page)
    long_id = queue_run(page, 400)
    assert long_id != job_id
    expect(run_tab_open(page)).to_be_visible(timeout=30_000)
    expect(selectbox(page, "Run")).to_have_value(long_id, timeout=30_000)
    expect(page).to_have_url(re.compile(f"training_run={re.escape(long_id)}"))
    wait_state(ws, long_id, ("running",))
    expect(metric(page, r"^Running\s*1")).to_be_visible(timeout=30_000)  # live, no reload

    # Cancel and Resume keep the Run tab and the run (in the URL too); so does a reload
    cancel = page.get_by_role("button", name="Cancel")
    expect(cancel).to_be_enabled(timeout=60_000)
    cancel.click()
    expect(page.get_by_text(f"Cancel requested for {long_id}")).to_be_visible(timeout=30_000)
    expect(run_tab_open(page)).to_be_visible()
    expect(page).to_have_url(re.compile(f"training_run={re.escape(long_id)}"))
    wait_state(ws, long_id, ("cancelled",))
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_enabled(timeout=30_000)  # the view followed the cancel by itself
    resume.click()
    expect(page.get_by_text(f"Run {long_id} queued again")).to_be_visible(timeout=30_000)
    expect(run_tab_open(page)).to_be_visible()
    expect(page).to_have_url(re.compile(r"training_tab=Run"))
    expect(page).to_have_url(re.compile(f"training_run={re.escape(long_id)}"))
    page.reload()
    expect(page.get_by_role("heading", name="Training")).to_be_visible(timeout=60_000)
    expect(selectbox(page, "Run")).to_have_value(long_id, timeout=30_000)
    expect(run_tab_open(page)).to_be_visible()
    page.screenshot(path=str(tmp_path / "training-kept.png"), full_page=True)
    wait_state(ws, long_id, ("running", *TERMINAL))
    if status_of(ws, long_id).get("state") == "running":
        page.get_by_role("button", name="Cancel").click()  # leave the CPU to the others
        expect(page.get_by_text(f"Cancel requested for {long_id}")).to_be_visible()
