"""Settings: the LLM endpoint, the endpoints users may pick, Label Studio, the workspace and the
device. Admins change them here, in effect at once (no restart); each value says where it comes
from, secrets show only whether they are set, and "Test connection" tries what is in effect."""

import pandas as pd
import streamlit as st

from backend import connections
from backend.action import AlreadyDone
from backend.config import explain, normal_url
from backend.integrations.labelstudio import client as lsc
from backend.integrations.labelstudio import server as lss
from backend.review import labelstudio_actions as ls_actions
from backend.settings import actions
from backend.settings.endpoints import choices
from studio import auth, live, resources, state
from studio.components.safe_text import md_escape

auth.guard("settings")
live.follow("settings")

TAB = "settings_tab"  # the open tab, bound to the URL
SECRET_NONCE = "settings_secret_nonce"  # renews the secret fields after each save: never kept
SOURCE = {
    "environment": "environment ({env})",
    "saved in Settings": "saved here",
    ".env": ".env",
    "secrets.toml": ".streamlit/secrets.toml",
    "default": "default",
}
LABELS = {
    "openai_base_url": "Endpoint base URL",
    "llm_model": "Model",
    "openai_api_key": "API key",
    "allowed_endpoints": "Allowed endpoints",
    "endpoint_keys": "Keys of allowed endpoints",
    "local_model_dir": "Local model folder",
    "label_studio_url": "Label Studio URL",
    "label_studio_token": "Label Studio token",
    "workspace": "Workspace",
    "heartbeat_s": "Job heartbeat (s)",
    "stale_after_s": "Job stale after (s)",
    "watch_interval_s": "Watched folders read every (s)",
    "session_hours": "Sign-in lasts (hours)",
    "device": "Device",
}

st.title("Settings")
st.caption(
    "Where the studio's endpoints and Label Studio are, and which endpoints users may pick. "
    "A change saved here is in effect at once, without a restart. Secrets show only whether "
    "they are set: they are kept in a private file of the workspace and never shown back."
)
state.show_flash()

cfg = resources.settings()
ws = resources.workspace()
sources = explain(ws.root)
masked = cfg.masked()
fields = type(cfg).model_fields
device = connections.device_summary()
cols = st.columns(4)
cols[0].metric("LLM endpoint", "set" if cfg.openai_base_url else "not set")
cols[1].metric("Endpoints users may pick", len(choices(cfg)))
cols[2].metric("Label Studio", "set" if cfg.label_studio_url else "not set")
cols[3].metric("Device", device["device"])


def in_effect(names: list[str]) -> None:
    """The effective values (secrets masked) and where each comes from; a saved value that an
    environment variable hides is said so."""
    rows = []
    for name in names:
        info = sources[name]
        rows.append(
            {
                "setting": LABELS.get(name, name),
                "value": masked[name],
                "from": SOURCE[info["source"]].format(env=info["env"] or name),
                "name": name,
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    for name in names:
        if sources[name]["overrides_saved"]:
            st.warning(
                f"{LABELS.get(name, name)}: the environment variable {sources[name]['env']} "
                "is set, so it wins over the value saved here. Unset it and restart the "
                "studio to use the saved value."
            )


def secret_key(name: str) -> str:
    return f"settings_{name}_{st.session_state.get(SECRET_NONCE, 0)}"


def save(**kwargs) -> None:
    """Call the settings action and show its result where the user is. The secret fields are
    drawn afresh (empty) on the next run, whatever the result."""
    st.session_state[SECRET_NONCE] = st.session_state.get(SECRET_NONCE, 0) + 1
    try:
        out = actions.save_settings(auth.ctx(), **kwargs)
    except AlreadyDone as exc:
        st.info(md_escape(exc))
    except ValueError as exc:  # it may quote what was typed: shown as text
        st.error(md_escape(exc))
    else:
        names = ", ".join(LABELS.get(n, n) for n in out["changed"])
        state.flash(f"Saved: {names}. In effect now.")
        st.rerun()


def changed(name: str, typed: str) -> dict:
    """{name: typed} when it differs from the value in effect (blank: None, which removes
    the saved value); {} when the same."""
    now = getattr(cfg, name) or ""
    typed = typed.strip()
    if name.endswith("_url") and typed and now:
        return {} if normal_url(typed) == normal_url(now) else {name: typed}
    return {} if typed == now else {name: typed or None}


def secret_change(name: str, replace: str, remove: bool) -> dict:
    if replace.strip():
        return {name: replace.strip()}
    return {name: None} if remove else {}


tab_llm, tab_ls, tab_ws, tab_device = st.tabs(
    ["LLM endpoint", "Label Studio", "Workspace", "Device"], key=TAB, bind="query-params"
)

with tab_llm:
    in_effect(
        [
            "openai_base_url",
            "llm_model",
            "openai_api_key",
            "allowed_endpoints",
            "endpoint_keys",
            "local_model_dir",
        ]
    )
    with st.form("settings_llm"):
        st.subheader("Change the endpoint")
        url = st.text_input(
            "Endpoint base URL",
            cfg.openai_base_url or "",
            help=fields["openai_base_url"].description,
            placeholder="http://127.0.0.1:8000/v1",
        )
        model = st.text_input("Model", cfg.llm_model or "", help=fields["llm_model"].description)
        st.caption(
            f"API key: {'set' if cfg.openai_api_key else 'not set'}. It is sent only to the "
            "endpoint's own origin (scheme, host and port)."
        )
        new_key = st.text_input(
            "Replace API key",
            type="password",
            help="Leave empty to keep the key as it is.",
            key=secret_key("openai_api_key"),
        )
        drop_key = st.checkbox("Remove the key saved here")
        allowed = st.text_area(
            "Allowed endpoints (one base URL per line)",
            "\n".join(cfg.allowed_endpoints),
            help=fields["allowed_endpoints"].description,
        )
        st.caption(
            "Blank removes a value saved here; the environment, .env or secrets.toml then "
            "apply again."
        )
        if st.form_submit_button("Save endpoint settings", type="primary"):
            typed = [u for u in allowed.replace(",", " ").split() if u]
            values = changed("openai_base_url", url) | changed("llm_model", model)
            if [normal_url(u) for u in typed] != list(cfg.allowed_endpoints):
                values["allowed_endpoints"] = typed
            save(values=values, secrets=secret_change("openai_api_key", new_key, drop_key))
    if cfg.allowed_endpoints:
        with st.form("settings_endpoint_key"):
            st.subheader("Key of an allowed endpoint")
            target = st.selectbox(
                "Allowed endpoint",
                cfg.allowed_endpoints,
                format_func=lambda u: f"{u} (key {'set' if u in cfg.endpoint_keys else 'not set'})",
            )
            key = st.text_input(
                "Replace its API key", type="password", key=secret_key("endpoint_key")
            )
            remove = st.checkbox("Remove its key")
            if st.form_submit_button("Save key"):
                if key.strip() or remove:
                    save(endpoint_keys={target: key.strip() or None})
                else:
                    st.info("Type a key, or tick Remove.")
    offered = choices(cfg)
    if offered:
        c1, c2 = st.columns([3, 1])
        probe = c1.selectbox("Endpoint to test", offered, key="settings_probe")
        c2.space("small")
        if c2.button("Test connection", key="settings_test_llm"):
            ok, message = connections.check_llm(cfg, base_url=probe)
            (st.success if ok else st.error)(md_escape(message))
    else:
        st.info(
            "No endpoint yet: type an OpenAI-compatible base URL above (vLLM, Ollama, "
            "llama.cpp server, OpenAI) and save. Without one, the demo's tiny local model "
            "answers, and its text is noise."
        )

with tab_ls:
    in_effect(["label_studio_url", "label_studio_token"])
    with st.form("settings_ls"):
        st.subheader("Change Label Studio")
        ls_url = st.text_input(
            "Label Studio URL",
            cfg.label_studio_url or "",
            help=fields["label_studio_url"].description,
            placeholder="http://127.0.0.1:8080",
        )
        st.caption(f"Token: {'set' if cfg.label_studio_token else 'not set'}.")
        ls_token = st.text_input(
            "Replace token",
            type="password",
            help="Leave empty to keep the token as it is.",
            key=secret_key("label_studio_token"),
        )
        drop_token = st.checkbox("Remove the token saved here")
        if st.form_submit_button("Save Label Studio settings", type="primary"):
            save(
                values=changed("label_studio_url", ls_url),
                secrets=secret_change("label_studio_token", ls_token, drop_token),
            )
    if st.button("Test connection", key="settings_test_ls"):
        url, token = lsc.connection(cfg, ws)
        if not url:
            st.error("No Label Studio: set its URL and token above, or start a local one below.")
        else:
            ok, message = connections.check_label_studio(cfg, url=url, token=token)
            (st.success if ok else st.error)(md_escape(message))

    st.subheader("Local Label Studio")
    local = lss.status(ws)
    if local["running"]:
        st.success(md_escape(f"Running at {local['url']} (pid {local['pid']})."))
    else:
        st.caption(
            "None running in this workspace. Start one here (the first start installs it "
            "into its own environment and takes a few minutes); pages use it when no URL is "
            "set above."
        )
    b1, b2, b3, b4 = st.columns([1, 1, 1, 2])
    port = b4.number_input("Port", 1024, 65535, 8080, key="settings_ls_port")
    if b1.button("Start", disabled=local["running"], key="settings_ls_start"):
        with st.spinner("Starting Label Studio…"):
            try:
                info, _token = ls_actions.start_labelstudio(auth.ctx(), int(port))
            except (ValueError, RuntimeError, OSError) as exc:
                st.error(md_escape(f"Could not start Label Studio: {exc}"))
            else:
                state.flash(
                    md_escape(f"Label Studio runs at {info.url}.")
                    + " Its sign-in stays hidden: press Show sign-in to see it."
                )
                st.rerun()
    if b2.button("Stop", disabled=not local["running"], key="settings_ls_stop"):
        try:
            was = ls_actions.stop_labelstudio(auth.ctx())
        except ValueError as exc:
            st.error(md_escape(exc))
        else:
            state.flash("Label Studio stopped." if was else "No local Label Studio was running.")
            st.rerun()
    if b3.button("Show sign-in", key="settings_ls_reveal"):
        try:
            creds = actions.reveal_local_labelstudio(auth.ctx())
        except ValueError as exc:
            st.error(md_escape(exc))
        else:  # drawn in this run only: the next rerun hides it again
            st.caption("Sign-in of the local Label Studio (hidden again at the next click):")
            st.code(
                f"url:      {creds.get('url') or '(not running)'}\n"
                f"user:     {creds['username']}\n"
                f"password: {creds['password']}\n"
                f"token:    {creds['token']}",
                language=None,
            )

with tab_ws:
    in_effect(["workspace", "heartbeat_s", "stale_after_s", "watch_interval_s", "session_hours"])
    st.caption(
        "These come from the environment, .env or .streamlit/secrets.toml and need a restart "
        "to change (the workspace holds the database itself)."
    )

with tab_device:
    in_effect(["device"])
    st.json(device)
