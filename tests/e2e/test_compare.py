"""Compare in a real browser: select two runs in the table, a plotly chart is drawn."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Dashboard
from tests.support.seed_runs import seed_runs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    from backend.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("e2e-compare") / "workspace").ensure()
    (ws.models / "tiny-llama").mkdir()  # no demo-model job: this test is about runs
    seed_runs(ws, 4, steps=60)
    server = Dashboard(ws.root)
    yield server
    server.stop()


def test_select_two_runs_and_see_their_curves(seeded, page, tmp_path):
    page.goto(seeded.url)
    page.get_by_role("link", name="Compare").click()
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()
    # the dashboard ingests the seeded run folders in the background: reload until all show
    for _ in range(30):
        try:
            expect(page.get_by_text("4 of 4 runs")).to_be_visible(timeout=2_000)
            break
        except AssertionError:
            page.reload()
    expect(page.get_by_text("4 of 4 runs")).to_be_visible(timeout=10_000)
    grid = page.locator('[data-testid="stDataFrame"]').first
    expect(grid).to_be_visible(timeout=60_000)
    row_h = 35
    box = grid.bounding_box()  # tick the first row's selection box (a canvas grid)
    page.mouse.click(box["x"] + 18, box["y"] + row_h + row_h / 2)
    expect(page.get_by_text("1 selected")).to_be_visible(timeout=30_000)
    # the second run from "Runs to compare", which the table's ticks fill and follow
    page.get_by_role("combobox", name="Runs to compare").click()
    page.get_by_role("option", name=re.compile(r"-train-")).first.click()
    page.keyboard.press("Escape")
    expect(page.get_by_text("2 selected")).to_be_visible(timeout=30_000)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    expect(chart).to_be_visible(timeout=60_000)
    expect(chart.locator(".main-svg").first).to_be_attached()
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
