"""The Playground page on the tiny model: the base, two runs and a loopback OpenAI-compatible
endpoint answer one prompt side by side (the endpoint streamed, with the configured key sent
to its origin), and the side-by-side is saved as a comparison set for the Preferences page."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.store import Store
from backend.store.prefs import find_comparison_set
from tests.integration.test_playground import _alone, _seed_runs
from tests.support.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "playground.py")
REPLY = "Open Settings, then Members, and invite them by email."


def test_empty_workspace_says_what_to_do(ws):
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception
    assert any("No finished run" in i.value for i in at.info)


def test_side_by_side_with_an_endpoint_and_saved_as_a_comparison_set(
    ws, tiny_model_dir, monkeypatch
):
    a, b = _seed_runs(ws, tiny_model_dir)
    with OpenAIServer(responder=lambda body: REPLY) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-playground")
        monkeypatch.setenv("FTSTUDIO_LLM_MODEL", "test-model")
        at = AppTest.from_file(PAGE, default_timeout=90).run()
        assert not at.exception
        at.multiselect(key="playground_runs").set_value([a, b])
        at.toggle(key="playground_endpoint_on").set_value(True)
        at.text_area[0].input("How do I add a teammate?")
        at.number_input[0].set_value(12)
        at.slider[0].set_value(0.0).run()
        at.button[0].click().run()
        assert not at.exception, at.exception
        assert [e.value for e in at.error] == []
        heads = [h.value for h in at.subheader]
        assert heads == ["Base model", f"Run {a}", f"Run {b}", "Endpoint test-model"]
        texts = [t.value for t in at.text]
        assert texts[0] == _alone(tiny_model_dir, None)
        assert texts[3] == REPLY and len(set(texts)) == 4
        assert server.requests[-1]["stream"] is True
        assert server.requests[-1]["temperature"] == 0.0
        assert server.authorizations[-1] == "Bearer sk-playground"
    name_box = [t for t in at.text_input if t.label == "Comparison set name"][0]
    name_box.input("playground-1")
    [b for b in at.button if b.label == "Save as a comparison set"][0].click().run()
    assert not at.exception
    assert any("Saved comparison set" in s.value for s in at.success)
    store = Store.open(ws.db_path)
    try:
        found = find_comparison_set(store, "playground-1")
    finally:
        store.close()
    assert found is not None and found["n_items"] == 1 and found["mode"] == "ranking"
