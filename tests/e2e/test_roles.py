"""Three people, three roles, one studio, in Chromium at the same time: each signs in and sees
only their pages; the reviewer reviews (and an HTML/script probe shows as text and never runs),
the analyst ranks a pair, the lead launches a short run and opens Compare, and the lead's Audit
page attributes the verdict and the judgement to who made them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Dashboard
from tests.support.seed_team import PASSWORD, PROBE, seed_team

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VISIBLE = {
    "rita": {"Overview", "Review"},
    "ann": {"Overview", "Compare", "Playground", "Preferences"},
    "lee": {
        "Overview",
        "Datasets",
        "Review",
        "Training",
        "Compare",
        "Playground",
        "Preferences",
        "Monitoring",
        "Jobs",
        "Audit",
    },
}


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from backend.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("e2e-roles") / "workspace").ensure()
    seed_team(ws)
    server = Dashboard(ws.root)
    yield server
    server.stop()


def sign_in(browser, url: str, username: str) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=60_000)
    page.get_by_label("User name", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {username}")).to_be_visible(timeout=30_000)
    return page


def nav_titles(page: Page) -> set[str]:
    links = page.locator('[data-testid="stSidebarNav"] a')
    expect(links.first).to_be_visible()
    # each link's text is its icon's ligature name, then its title
    return {t.split()[-1] for t in links.all_inner_texts() if t.strip()}


def open_page(page: Page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=30_000)


def metric(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).first


def commit(page: Page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    page.wait_for_timeout(600)  # the rerun the new value starts


def audit_row(page: Page, who: str, prefix: str) -> list[str]:
    """The one audit row for this actor and action; a job launch is audited when the dashboard
    ingests the job folder, so the filter is applied again for a few seconds if need be."""
    cells: list[str] = []
    for _ in range(30):
        commit(page, "Actor", who)
        commit(page, "Action starts with", prefix)
        cells = page.locator('[data-testid="stDataFrame"] [role="gridcell"]').all_inner_texts()
        if len(cells) == 5 and cells[1] == who:
            return cells
        commit(page, "Action starts with", "")
        page.wait_for_timeout(400)
    raise AssertionError(f"no single audit row for {who} {prefix}: {cells}")


def test_three_roles_work_at_once_and_are_attributed(studio, browser, tmp_path):
    pages = {name: sign_in(browser, studio.url, name) for name in ("rita", "ann", "lee")}
    for name, page in pages.items():
        assert nav_titles(page) == VISIBLE[name], name
        page.screenshot(path=str(tmp_path / f"{name}-signed-in.png"))

    # the reviewer: Review -> Review here; the probe shows literally and never runs
    rita = pages["rita"]
    open_page(rita, "Review")
    rita.get_by_role("tab", name="Review here").click()
    probe = rita.get_by_text(PROBE, exact=True)
    expect(probe).to_be_visible()
    assert rita.evaluate("() => window.__probe") is None
    assert rita.locator('[data-testid="stMain"] b', has_text="bold").count() == 0
    rita.screenshot(path=str(tmp_path / "rita-probe.png"), full_page=True)
    rita.get_by_role("button", name="Submit and next").click()
    expect(metric(rita, "Reviewed")).to_contain_text("1", timeout=30_000)
    expect(probe).to_have_count(0, timeout=30_000)
    assert rita.evaluate("() => window.__probe") is None

    # the analyst ranks a pair
    ann = pages["ann"]
    open_page(ann, "Preferences")
    expect(ann.get_by_text("0/3 judged by ann")).to_be_visible(timeout=30_000)
    ann.get_by_role("button", name="A is better").click()
    expect(ann.get_by_text("1/3 judged by ann")).to_be_visible(timeout=30_000)
    ann.screenshot(path=str(tmp_path / "ann-ranked.png"), full_page=True)

    # the lead launches a short run, then opens Compare
    lee = pages["lee"]
    open_page(lee, "Training")
    form = (
        lee.get_by_test_id("stForm").filter(has=lee.get_by_role("button", name="Start run")).first
    )
    expect(form.get_by_label("Base model", exact=True)).to_have_value("models/tiny-llama")
    steps = form.get_by_label("Stop after this many steps", exact=True)
    steps.fill("2")
    steps.press("Tab")
    form.get_by_role("button", name="Start run").click()
    expect(lee.get_by_text(re.compile(r"Queued run \S*train-"))).to_be_visible(timeout=60_000)
    lee.screenshot(path=str(tmp_path / "lee-launched.png"), full_page=True)
    open_page(lee, "Compare")
    expect(lee.get_by_text(re.compile(r"\d+ of \d+ runs"))).to_be_visible(timeout=60_000)
    lee.screenshot(path=str(tmp_path / "lee-compare.png"), full_page=True)

    # the lead's Audit page names who did what (cells read from the grid's accessible table)
    open_page(lee, "Audit")
    for who, prefix in (
        ("rita", "review.verdict"),
        ("ann", "prefs.judgement"),
        ("lee", "job.launch"),
    ):
        row = audit_row(lee, who, prefix)
        assert row[1:3] == [who, prefix], row
        lee.screenshot(path=str(tmp_path / f"audit-{who}.png"), full_page=True)
    for page in pages.values():
        page.context.close()
