"""The Datasets page with a recipe that has tools (set by `ftstudio generate --tools`): the
Recipe tab names them, and saving the form keeps them."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.store import Store
from backend.store import datasets as dstore
from backend.synth.recipe import Recipe
from tests.unit.test_generation_tools import TOOLS

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "datasets.py")


def test_recipe_tab_names_the_tools_and_saving_keeps_them(ws):
    recipe = Recipe(task="Trips", topics=["hiking"], tools=TOOLS).model_dump(mode="json")
    store = Store.open(ws.db_path)
    try:
        dstore.create_dataset(store, "trips", recipe=recipe)
    finally:
        store.close()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    texts = [t.value for t in at.text]
    assert "Tools the assistant may call in generated turns: get_weather, find_task" in texts
    at.text_area[0].input("Trips, by day")  # the task
    [b for b in at.button if b.label == "Save recipe"][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = Store.open(ws.db_path)
    try:
        saved = dstore.get_dataset(store, "trips")["recipe"]
    finally:
        store.close()
    assert saved["task"] == "Trips, by day" and saved["tools"] == TOOLS
