"""Playground: a base model and one or two of its runs answer the same prompt side by side,
streamed, with sampling controls; a side-by-side can be saved as a comparison set for the
Preferences page. One base is loaded once (studio/resources.py) and the runs' adapters are
switched on it."""

from __future__ import annotations

import streamlit as st

from backend.action import AlreadyDone
from backend.demo_workspace import NOISE_NOTE
from backend.integrations.llm import api_key_for
from backend.playground.chat import (
    BASE,
    Sampling,
    base_source,
    comparison_items,
    default_device,
    runs_by_base,
)
from backend.playground.endpoint import EndpointError, endpoint_source, stream_endpoint
from backend.prefs import actions as prefs_actions
from backend.settings.endpoints import vet
from backend.store.runs import list_runs, run_generations
from backend.train.demo_model import is_demo_model
from studio import auth, live, resources
from studio.components import endpoint
from studio.components.safe_text import md_escape

# This page's session-state keys
BASE_KEY = "playground_base"
RUNS_KEY = "playground_runs"
WITH_BASE = "playground_with_base"
PROMPT = "playground_prompt"
ANSWERS = "playground_answers"  # {"prompt": str, "answers": {source: text}}
EP_ON = "playground_endpoint_on"
EP_MODEL = "playground_endpoint_model"
ENDPOINT = "endpoint"  # the endpoint's source key on this page

who = auth.guard("playground")
st.title("Playground")
st.caption(
    "Ask a base model and its fine-tunes the same question and read the answers side by side "
    "before you ship. The base is loaded once; each run's adapter is switched on it."
)
live.follow("runs")

groups = runs_by_base(list_runs(resources.store()))
if not groups:
    st.info("No finished run with an adapter yet: train one on the Training page.")
    st.stop()

base_model = st.selectbox("Base model", sorted(groups), key=BASE_KEY)
runs = {r["id"]: r for r in groups[base_model]}
picked = st.multiselect(
    "Runs (one or two)",
    list(runs),
    default=list(runs)[-1:],
    max_selections=2,
    key=RUNS_KEY,
    format_func=lambda rid: f"{rid} · {runs[rid]['method']} on {runs[rid]['dataset']}",
)
with_base = st.toggle("Answer with the base model too", value=True, key=WITH_BASE)
if is_demo_model(base_model):
    st.warning(NOISE_NOTE, icon=":material/info:")

eval_prompts = sorted(
    {g["prompt"] for rid in picked for g in run_generations(resources.store(), rid)}
)
chosen = st.selectbox("An eval prompt (optional)", ["(type your own)", *eval_prompts])
prompt = st.text_area(
    "Prompt", value="" if chosen == "(type your own)" else chosen, key=f"{PROMPT}:{chosen}"
)
c1, c2, c3, c4 = st.columns(4)
temperature = c1.slider("Temperature", 0.0, 2.0, 0.7, 0.05, help="0 = greedy, the same answer.")
top_p = c2.slider(
    "Top-p",
    0.05,
    1.0,
    0.9,
    0.05,
    help="Sample from the smallest set of tokens holding this much probability.",
)
max_new = c3.number_input("Max new tokens", 1, 2048, 128, help="Longest answer, in tokens.")
seed = c4.number_input("Seed", 0, 2**31 - 1, 0, help="Same seed, same sampled answer.")

with st.expander("Ask an endpoint too (vLLM, Ollama, llama.cpp server, OpenAI)"):
    use_endpoint = st.toggle("Answer with an endpoint", key=EP_ON)
    chosen_ep = endpoint.picker("playground", disabled=not use_endpoint)
    ep_model = st.text_input(
        "Endpoint model", value=resources.settings().llm_model or "", key=EP_MODEL
    )
sources = ([BASE] if with_base else []) + picked + ([ENDPOINT] if use_endpoint else [])


def _label(source: str) -> str:
    if source == ENDPOINT:
        return f"Endpoint {ep_model}"
    return "Base model" if source == BASE else f"Run {source}"


def _answer(source: str, messages: list[dict], sampling: Sampling):
    """The stream of one source's answer (the endpoint's through the same key rules as jobs)."""
    if source != ENDPOINT:
        return models.stream(source, messages, sampling)
    cfg = resources.settings()
    url = vet(auth.ctx(), chosen_ep.base_url, chosen_ep.api_key) or cfg.openai_base_url
    if not url:
        raise EndpointError("no endpoint configured: an admin sets one on the Settings page")
    key = api_key_for(url, cfg, explicit=chosen_ep.api_key)
    return stream_endpoint(url, key, ep_model.strip(), messages, sampling)


if st.button("Answer", type="primary", disabled=not prompt.strip() or not sources):
    messages = [{"role": "user", "content": prompt.strip()}]
    try:
        sampling = Sampling(
            max_new_tokens=int(max_new), temperature=temperature, top_p=top_p, seed=int(seed)
        )
        models = resources.chat_models(base_model, default_device(resources.settings().device))
        for rid in picked:
            models.add_run(rid, runs[rid]["adapter_path"])
    except ValueError as exc:
        st.error(md_escape(str(exc)))
        st.stop()
    answers: dict[str, str] = {}
    for col, source in zip(st.columns(len(sources)), sources, strict=True):
        with col:
            st.subheader(_label(source))
            slot, text = st.empty(), ""
            try:
                for piece in _answer(source, messages, sampling):
                    text += piece
                    slot.text(text)
            except (ValueError, EndpointError) as exc:
                st.error(md_escape(str(exc)))
                continue
            answers[source] = text
    st.session_state[ANSWERS] = {"prompt": prompt.strip(), "answers": answers}
elif st.session_state.get(ANSWERS):
    last = st.session_state[ANSWERS]
    st.caption("Last answers to: " + md_escape(last["prompt"]))
    for col, (source, text) in zip(
        st.columns(len(last["answers"])), last["answers"].items(), strict=True
    ):
        col.subheader(_label(source))
        col.text(text)

last = st.session_state.get(ANSWERS)
if last and len(last["answers"]) >= 2 and who.can("edit_data"):
    with st.form("playground_save"):
        name = st.text_input("Comparison set name", help="A new set for the Preferences page.")
        save = st.form_submit_button("Save as a comparison set", icon=":material/save:")
    if save:
        ids = {BASE: base_source(base_model), ENDPOINT: endpoint_source(ep_model.strip())}
        named = {ids.get(s, s): t for s, t in last["answers"].items()}
        mode, items = comparison_items(last["prompt"], named)
        try:
            made = prefs_actions.create_comparison_set(
                auth.ctx(), name.strip(), items=items, mode=mode, analysts=[who.username]
            )
        except AlreadyDone as exc:
            st.info(md_escape(str(exc)))
        except ValueError as exc:
            st.error(md_escape(str(exc)))
        else:
            st.success(
                f"Saved comparison set {md_escape(made.get('name', name))}: rank it on the "
                "Preferences page."
            )
