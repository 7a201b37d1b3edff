"""Settings: what the studio is using, with secrets masked, and connection tests."""

import streamlit as st

from backend import connections
from studio import auth, resources

auth.guard("settings")

st.title("Settings")
st.caption(
    "The settings in effect (from the environment, .env and .streamlit/secrets.toml). "
    "Secrets show only whether they are set."
)

cfg = resources.settings()
device = connections.device_summary()
cols = st.columns(3)
cols[0].metric("Device", device["device"])
cols[1].metric("bf16", "yes" if device["bf16"] else "no")
cols[2].metric("4-bit (bitsandbytes)", device["bnb_4bit"])

tab_llm, tab_ls, tab_ws, tab_device = st.tabs(
    ["LLM endpoint", "Label Studio", "Workspace", "Device"]
)
masked = cfg.masked()
fields = type(cfg).model_fields


def show(names: list[str]) -> None:
    for name in names:
        st.text_input(
            name, masked[name], disabled=True, help=fields[name].description, key=f"setting-{name}"
        )


with tab_llm:
    show(["openai_base_url", "openai_api_key", "llm_model", "local_model_dir"])
    if st.button("Test connection", key="test-llm", disabled=not cfg.openai_base_url):
        ok, message = connections.check_llm(cfg)
        (st.success if ok else st.error)(message)
    if not cfg.openai_base_url:
        st.caption(
            "Set OPENAI_BASE_URL (and OPENAI_API_KEY, FTSTUDIO_LLM_MODEL) to use an "
            "OpenAI-compatible endpoint, then restart the studio."
        )
with tab_ls:
    show(["label_studio_url", "label_studio_token"])
    if st.button("Test connection", key="test-ls", disabled=not cfg.label_studio_url):
        ok, message = connections.check_label_studio(cfg)
        (st.success if ok else st.error)(message)
    if not cfg.label_studio_url:
        st.caption(
            "Set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or run "
            "`ftstudio labelstudio up` to start a local server."
        )
with tab_ws:
    show(["workspace", "heartbeat_s", "stale_after_s"])
with tab_device:
    show(["device"])
    st.json(device)
