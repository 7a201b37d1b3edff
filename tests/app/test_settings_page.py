"""The Settings page: an admin saves the endpoint, model, key and allowed endpoints, and the
studio uses them at once (no restart); each value says where it comes from and when the
environment overrides it; secrets never show back; connection tests; the local Label Studio's
sign-in only on request. And the one endpoint picker: non-admins pick from the list, admins may
type another URL and its key."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.store import audit
from studio import resources
from tests.support.openai_server import OpenAIServer

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "settings.py")
ADMIN, LEAD = ("ada", "admin"), ("lee", "lead")
KEY = "sk-settings-page-5e7c21"


def _page(who=ADMIN) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["actor"] = who
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _field(at: AppTest, label: str):
    return next(t for t in at.text_input if t.label == label)


def _drawn(at: AppTest) -> str:
    def walk(node) -> list[str]:
        out = [str(node.proto)] if getattr(node, "proto", None) is not None else []
        for child in getattr(node, "children", {}).values():
            out += walk(child)
        return out

    return "\n".join(walk(at._tree))


def _effective(at: AppTest, tab: int = 0):
    return at.dataframe[tab].value.set_index("name")


def _submit(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_an_admin_saves_the_endpoint_and_it_is_in_effect_at_once(ws, monkeypatch):
    monkeypatch.delenv("FTSTUDIO_LLM_MODEL", raising=False)
    at = _page()
    before = resources.settings()
    assert before.openai_base_url is None
    _field(at, "Endpoint base URL").input("http://127.0.0.1:8111/v1")
    _field(at, "Model").input("model-one")
    _field(at, "Replace API key").input(KEY)
    next(t for t in at.text_area if t.label.startswith("Allowed endpoints")).input(
        "http://127.0.0.1:8222/v1\nhttp://127.0.0.1:8333/v1/"
    )
    _submit(at, "Save endpoint settings")

    # this process's cached settings moved with the save: no restart, no cache clearing
    cfg = resources.settings()
    assert cfg.openai_base_url == "http://127.0.0.1:8111/v1" and cfg.llm_model == "model-one"
    assert cfg.openai_api_key.get_secret_value() == KEY
    assert cfg.allowed_endpoints == ["http://127.0.0.1:8222/v1", "http://127.0.0.1:8333/v1"]
    shown = _effective(at)
    assert shown.loc["openai_base_url", "value"] == "http://127.0.0.1:8111/v1"
    assert shown.loc["openai_base_url", "from"] == "saved here"
    assert shown.loc["openai_api_key", "value"] == "•••• (set)"
    assert any("Saved:" in s.value for s in at.success)
    assert _field(at, "Replace API key").value == ""  # drawn afresh: the key is not kept
    assert KEY not in _drawn(at)
    assert json.loads((ws.root / "settings.json").read_text())["llm_model"] == "model-one"

    # the same again: already so, nothing written
    _submit(at, "Save endpoint settings")
    assert any("nothing to change" in i.value for i in at.info)

    rows = audit.rows(resources.store(), action="settings.save")
    assert len(rows) == 1 and KEY not in rows.to_string() + str(rows["detail"].tolist())


def test_where_each_value_comes_from_and_the_environment_overriding_a_saved_one(ws, monkeypatch):
    from backend.config import write_saved

    write_saved(ws.root, {"openai_base_url": "http://saved.invalid/v1"}, {})
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.invalid/v1")
    at = _page()
    shown = _effective(at)
    assert shown.loc["openai_base_url", "value"] == "http://env.invalid/v1"
    assert shown.loc["openai_base_url", "from"] == "environment (OPENAI_BASE_URL)"
    assert any("OPENAI_BASE_URL" in w.value and "wins over" in w.value for w in at.warning)
    assert shown.loc["llm_model", "from"] in ("default", ".env", ".streamlit/secrets.toml")


def test_a_lead_may_not_open_settings(ws):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["actor"] = LEAD
    at.run()
    assert any("may not open this page" in e.value for e in at.error)
    assert not at.text_input


def test_test_connection_tries_the_endpoint_in_effect(ws, monkeypatch):
    with OpenAIServer() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        at = _page()
        _submit(at, "Test connection")
        assert any("reachable: 1 model" in s.value for s in at.success)
    at = _page()
    _submit(at, "Test connection")  # the server is gone now
    assert any("unreachable" in e.value for e in at.error)


def test_label_studio_settings_and_the_local_servers_sign_in_on_request(ws):
    at = _page()
    _field(at, "Label Studio URL").input("http://127.0.0.1:9/")
    _field(at, "Replace token").input("ls-token-never-shown")
    _submit(at, "Save Label Studio settings")
    cfg = resources.settings()
    assert cfg.label_studio_url == "http://127.0.0.1:9"
    assert cfg.label_studio_token.get_secret_value() == "ls-token-never-shown"
    assert "ls-token-never-shown" not in _drawn(at)

    buttons = {b.label: b for b in at.button}
    assert buttons["Stop"].disabled and not buttons["Start"].disabled  # none runs here
    _submit(at, "Show sign-in")
    assert any("no local Label Studio was started" in e.value for e in at.error)

    folder = ws.root / "labelstudio"
    (folder / "data").mkdir(parents=True)
    creds = {"username": "admin@localhost", "password": "pw-local-ls-77", "token": "tok-local"}
    (folder / "credentials.json").write_text(json.dumps(creds))
    at = _page()
    assert "pw-local-ls-77" not in _drawn(at)  # never by default
    _submit(at, "Show sign-in")
    assert "pw-local-ls-77" in at.code[0].value and "tok-local" in at.code[0].value
    at.run()  # the next run hides it again
    assert "pw-local-ls-77" not in _drawn(at)
    rows = audit.rows(resources.store(), action="settings.reveal_labelstudio")
    assert len(rows) == 1 and "pw-local-ls-77" not in rows.to_string()


PICKER = """
import streamlit as st
from studio.components import endpoint

chosen = endpoint.picker("t_pick", current=st.session_state.get("current"),
                         follow_configured=st.session_state.get("follow", False))
st.text(f"url={chosen.base_url} key={'yes' if chosen.api_key else 'no'}")
if st.button("launched"):
    endpoint.forget("t_pick")
    st.rerun()
"""


def _picker(who, **state) -> AppTest:
    at = AppTest.from_string(PICKER, default_timeout=60)
    at.session_state["actor"] = who
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_endpoint_picker_offers_the_list_and_admins_more(ws, monkeypatch):
    from backend.config import write_saved

    write_saved(
        ws.root,
        {"openai_base_url": "http://conf.invalid/v1", "allowed_endpoints": ["http://b.invalid/v1"]},
        {"endpoint_keys": {"http://b.invalid/v1": "sk-b"}},
    )
    lead = _picker(LEAD)
    box = lead.selectbox[0]
    assert box.options == [
        "http://conf.invalid/v1 (configured)",
        "http://b.invalid/v1 (allowed, key saved)",
    ]
    assert not lead.text_input  # no other URL, no key field
    assert lead.text[0].value == "url=http://conf.invalid/v1 key=no"
    box.set_value("http://b.invalid/v1").run()
    assert lead.text[0].value == "url=http://b.invalid/v1 key=no"

    # a URL an admin saved on a monitor stays what a lead sees
    kept = _picker(LEAD, current="http://admins.invalid/v1")
    assert kept.selectbox[0].value == "http://admins.invalid/v1"

    admin = _picker(ADMIN)
    assert admin.selectbox[0].options[-1] == "Another base URL (admins)…"
    admin.text_input[0].input("http://typed.invalid:9000/v1")
    admin.text_input[1].input("sk-typed")
    admin.run()
    assert admin.text[0].value == "url=http://typed.invalid:9000/v1 key=yes"
    admin.button[0].click().run()  # after a launch the key field is drawn empty
    assert admin.text_input[1].value == ""
    assert admin.text[0].value == "url=http://typed.invalid:9000/v1 key=no"

    follows = _picker(LEAD, follow=True)
    assert follows.text[0].value == "url=None key=no"  # follows Settings
