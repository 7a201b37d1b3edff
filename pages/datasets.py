"""Datasets: write a recipe, generate examples with an LLM, filter them, browse them, and keep
immutable versions to export for training.

The page is live (`live.follow`): when a generate job ends and its rows are stored, the counters,
the Examples tab and the Versions tab redraw by themselves. The open tab, the dataset and the
version are in the URL, so a reload or a link opens the same view and an action keeps its tab.
"""

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from backend.action import AlreadyDone
from backend.jobs import read as jobs
from backend.jobs.status import JobState, JobStatus
from backend.store import datasets as ds
from backend.store import synth as sstore
from backend.synth import actions
from backend.synth.generate import GenerateSpec
from backend.synth.recipe import Recipe
from studio import auth, live, resources, state
from studio.components import endpoint
from studio.components.dataset_examples import examples_tab
from studio.components.dataset_quality import quality_tab
from studio.components.dataset_versions import versions_tab
from studio.components.jobs import progress_row
from studio.components.safe_text import md_escape

auth.guard("datasets")

# session-state keys of this page (the widget ones are also the URL's query parameters)
DATASET = "datasets_dataset"
VERSION = "datasets_version"
TAB = "datasets_tab"
PICK = "datasets_pick"  # a selection to apply before the pickers are drawn (after an action)
NEWEST = "newest"
TABS = ["Recipe", "Generate", "Examples", "Quality", "Versions"]

state.init()
st.title("Datasets")
st.caption(
    "Describe a task, generate training examples, filter and sample them for review, "
    "and keep every change as an immutable version you can export."
)
state.show_flash()
live.follow("datasets", "jobs")
store, ws, cfg = resources.store(), resources.workspace(), resources.settings()
resources.ingestor()
HELP = {name: f.description for name, f in Recipe.model_fields.items()}
SPEC_HELP = {name: f.description for name, f in GenerateSpec.model_fields.items()}
# the user's words for the two shapes of an example; the library's term is in the help
SHAPES = {"messages": "Chat conversation", "prompt-completion": "Prompt and answer"}


def select_next(dataset: str | None = None) -> None:
    """Show the newest version (of `dataset`, when given) on the next run."""
    st.session_state[PICK] = {"dataset": dataset}


def done(message: str, dataset: str | None = None) -> None:
    """An action that made a new version succeeded: say so where the user is, on its result."""
    state.flash(message)
    select_next(dataset)
    st.rerun()


def create_form(key: str) -> None:
    with st.form(key, clear_on_submit=False):
        name = st.text_input(
            "Name",
            placeholder="support-bot",
            help="Letters, digits, '.', '_' or '-'; up to 80 characters.",
        )
        fmt = st.radio(
            "Each example is a",
            list(SHAPES),
            format_func=SHAPES.get,
            horizontal=True,
            help=HELP["format"],
        )
        if st.form_submit_button("Create dataset", type="primary"):
            try:
                actions.create_dataset(auth.ctx(), name.strip(), format=fmt, recipe={"format": fmt})
            except ValueError as exc:
                st.error(md_escape(exc))
                return
            done(f"Created {name.strip()}: write its recipe next.", name.strip())


datasets = ds.list_datasets(store)
names = [d["name"] for d in datasets]
if not names:
    st.info("No datasets yet: create one and write a recipe, or import a file you already have.")
    create_form("create_first")
    st.stop()

pick = st.session_state.pop(PICK, None)
if pick is not None:  # set before the pickers are drawn: a drawn widget's value is fixed
    if pick["dataset"] in names:
        st.session_state[DATASET] = pick["dataset"]
    st.session_state[VERSION] = NEWEST
elif (
    DATASET not in st.session_state
    and DATASET not in st.query_params
    and st.session_state.get(state.SELECTED_DATASET) in names
):  # coming from another page that chose a dataset
    st.session_state[DATASET] = st.session_state[state.SELECTED_DATASET]


def _dataset_changed() -> None:
    st.session_state[VERSION] = NEWEST  # the version list follows the dataset


top = st.columns([3, 2, 1], vertical_alignment="bottom")
dataset = top[0].selectbox(
    "Dataset", names, key=DATASET, bind="query-params", on_change=_dataset_changed
)
st.session_state[state.SELECTED_DATASET] = dataset
with top[2].popover("New dataset", icon=":material/add:"):
    create_form("create_more")

info = ds.get_dataset(store, dataset)
versions = ds.list_versions(store, dataset)
latest = versions[-1] if versions else None
version = None
if latest:
    by_number = {v["number"]: v for v in versions}
    choice = top[1].selectbox(
        "Version",
        [NEWEST, *reversed(by_number)],
        format_func=lambda v: f"newest (v{latest['number']})" if v == NEWEST else f"v{v}",
        key=VERSION,
        bind="query-params",
        help="The version the Examples and Versions tabs show; 'newest' follows new versions "
        "as they are made.",
    )
    version = latest if choice == NEWEST else by_number[choice]
else:
    top[1].caption("No versions yet.")
    choice = NEWEST
rejects = sstore.rejects(store, dataset=dataset)
qc_pending = sstore.qc_samples(store, version_id=latest["id"]) if latest else []
cols = st.columns(4)
cols[0].metric("Examples", latest["n_examples"] if latest else 0, help="In the newest version.")
cols[1].metric("Versions", len(versions))
cols[2].metric("Rejected or filtered", len(rejects))
cols[3].metric(
    "Waiting for QC review",
    len(qc_pending),
    help="Examples of the newest version in a generation's human QC sample, not reviewed yet.",
)

recipe_tab, gen_tab, ex_tab, qual_tab, ver_tab = st.tabs(TABS, key=TAB, bind="query-params")


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]


# the recipe form's label of each Recipe field, to name a refused value by what the user sees
RECIPE_LABELS = {
    "task": "What the assistant does",
    "format": "Each example is a",
    "system_prompt": "Standing instructions",
    "topics": "Topics or features",
    "seed_examples": "Examples to imitate",
    "per_topic": "Examples per topic",
    "temperature": "Variety",
    "max_tokens": "Longest example",
    "seed": "Draw number",
    "tones": "Tones",
    "complexities": "Complexity",
    "personas": "Who asks",
    "languages": "Languages",
    "provider": "Generator",
    "model": "Generator model",
}


def explain(exc: ValidationError, labels: dict[str, str]) -> str:
    """A refused form, naming each field by its label on the form."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        parts.append(f"{labels.get(field, field)}: {err['msg']}")
    return "; ".join(parts)


with recipe_tab:
    recipe = Recipe.model_validate(info["recipe"] or {})
    if recipe.tools:  # set with `ftstudio generate --tools FILE.json`; the form keeps them
        names = ", ".join(t["function"]["name"] for t in recipe.tools)
        st.text(f"Tools the assistant may call in generated turns: {names}")
    with st.form("recipe"):
        task = st.text_area(RECIPE_LABELS["task"], recipe.task, help=HELP["task"])
        fmt = st.radio(
            RECIPE_LABELS["format"],
            list(SHAPES),
            format_func=SHAPES.get,
            horizontal=True,
            index=0 if recipe.format == "messages" else 1,
            help=HELP["format"],
        )
        system_prompt = st.text_area(
            RECIPE_LABELS["system_prompt"],
            recipe.system_prompt,
            help=f"The system prompt: {HELP['system_prompt']}",
        )
        topics = st.text_area(
            "Topics or features (comma or one per line)",
            "\n".join(recipe.topics),
            help=HELP["topics"],
        )
        st.caption("Examples to imitate (seed examples)")
        seeds = st.data_editor(
            pd.DataFrame(
                [s.model_dump() for s in recipe.seed_examples], columns=["user", "assistant"]
            ),
            num_rows="dynamic",
            width="stretch",
            key="datasets_seed_editor",
        )
        c = st.columns(4)
        per_topic = c[0].number_input(
            RECIPE_LABELS["per_topic"], 1, 10_000, recipe.per_topic, help=HELP["per_topic"]
        )
        temperature = c[1].slider(
            RECIPE_LABELS["temperature"],
            0.0,
            2.0,
            recipe.temperature,
            help="Sampling temperature: low keeps the wording close to the usual, high varies "
            "it more.",
        )
        max_tokens = c[2].number_input(
            f"{RECIPE_LABELS['max_tokens']} (about ¾ word per unit)",
            16,
            8192,
            recipe.max_tokens,
            help=f"max_tokens: {HELP['max_tokens']}",
        )
        seed = c[3].number_input(
            RECIPE_LABELS["seed"], value=recipe.seed, help=f"The random seed. {HELP['seed']}"
        )
        st.caption("What varies between examples (comma-separated)")
        k = st.columns(4)
        tones = k[0].text_input("Tones", ", ".join(recipe.tones), help=HELP["tones"])
        complexities = k[1].text_input(
            "Complexity", ", ".join(recipe.complexities), help=HELP["complexities"]
        )
        personas = k[2].text_input(
            RECIPE_LABELS["personas"],
            ", ".join(recipe.personas),
            help=f"Personas: {HELP['personas']}",
        )
        languages = k[3].text_input(
            "Languages", ", ".join(recipe.languages), help=HELP["languages"]
        )
        g = st.columns(2)
        provider = g[0].radio(
            "Generator",
            ["openai", "local"],
            horizontal=True,
            index=0 if recipe.provider == "openai" else 1,
            help=HELP["provider"],
        )
        model = g[1].text_input(
            "Generator model", recipe.model or (cfg.llm_model or ""), help=HELP["model"]
        )
        if st.form_submit_button("Save recipe", type="primary"):
            seed_rows = [
                {"user": str(r["user"]), "assistant": str(r["assistant"])}
                for r in seeds.to_dict(orient="records")
                if str(r.get("user") or "").strip() and str(r.get("assistant") or "").strip()
            ]
            try:
                new = Recipe(
                    task=task,
                    format=fmt,
                    system_prompt=system_prompt,
                    topics=_list(topics),
                    seed_examples=seed_rows,
                    per_topic=int(per_topic),
                    tones=_list(tones),
                    complexities=_list(complexities),
                    personas=_list(personas),
                    languages=_list(languages),
                    temperature=float(temperature),
                    max_tokens=int(max_tokens),
                    provider=provider,
                    model=model.strip(),
                    seed=int(seed),
                    tools=recipe.tools,  # set with `ftstudio generate --tools`; kept here
                )
            except ValidationError as exc:
                st.error(md_escape(f"The recipe is not saved: {explain(exc, RECIPE_LABELS)}"))
                new = None
            if new is not None:
                try:
                    actions.save_recipe(auth.ctx(), dataset, new)
                except AlreadyDone as exc:
                    st.info(md_escape(exc))
                except ValueError as exc:
                    st.error(md_escape(exc))
                else:
                    state.flash("Recipe saved. Generate examples from it on the Generate tab.")
                    st.rerun()


def _generate_jobs() -> list[JobStatus]:
    out = []
    for s in jobs.list_jobs(ws):
        if isinstance(s, JobStatus) and s.kind == "generate":
            try:
                if jobs.read_spec(ws.job_dir(s.id))[1].get("dataset") == dataset:
                    out.append(s)
            except Exception:  # a job folder being written; skip this tick
                continue
    return out


@st.fragment(run_every=2)
def live_generation() -> None:
    gen_jobs = _generate_jobs()
    active = [s for s in gen_jobs if s.state in (JobState.queued, JobState.running)]
    for s in active:
        progress_row(s)
    if not active:
        st.caption("No generation running for this dataset.")
    if gen_jobs and gen_jobs[-1].state in (JobState.failed, JobState.interrupted):
        st.error(md_escape(f"Last generation {gen_jobs[-1].state}: {gen_jobs[-1].error or ''}"))


with gen_tab:
    recipe = Recipe.model_validate(info["recipe"] or {})
    if not recipe.topics:
        st.info("The recipe has no topics yet: add the features to cover on the Recipe tab.")
    n = len(recipe.topics or ["general"]) * recipe.per_topic
    st.text(
        f"{n} examples planned: {len(recipe.topics or ['general'])} topics × "
        f"{recipe.per_topic} with {recipe.provider} model {recipe.model or '(not set)'} "
        "(the recipe, the model and the generator are set on the Recipe tab)."
    )
    if recipe.provider == "openai" and not recipe.model:
        st.warning("No generator model yet: fill in 'Generator model' on the Recipe tab.")
    with st.form("generate"):
        c = st.columns(3)
        with c[0]:
            chosen = endpoint.picker("datasets_gen", disabled=recipe.provider != "openai")
        concurrency = c[1].number_input(
            "Requests at once", 1, 256, 8, help=f"Concurrency: {SPEC_HELP['concurrency']}"
        )
        rpm = c[2].number_input(
            "Requests per minute (0: no limit)", 0, 100_000, 0, help=SPEC_HELP["rpm"]
        )
        qc_share = st.slider(
            "Share set aside for a human check",
            0.05,
            0.10,
            0.07,
            0.01,
            format="%.2f",
            help=f"The human QC sample: {SPEC_HELP['qc_share']}",
        )
        key_state = "set" if cfg.openai_api_key else "not set (local servers accept none)"
        st.caption(
            f"API key: {key_state}; it goes only to the configured endpoint. Keys live in "
            "Settings, never in the job."
        )
        if st.form_submit_button("Generate", type="primary"):
            try:
                job_id = actions.generate(
                    auth.ctx(),
                    dataset,
                    base_url=chosen.base_url if recipe.provider == "openai" else None,
                    api_key=chosen.api_key if recipe.provider == "openai" else None,
                    concurrency=int(concurrency),
                    rpm=float(rpm) or None,
                    qc_share=float(qc_share),
                )
            except ValueError as exc:
                st.error(md_escape(exc))
            else:
                endpoint.forget("datasets_gen")
                done(
                    f"Queued generation job {job_id}: its examples appear on the Examples "
                    "tab when it ends."
                )
    live_generation()
    st.subheader("Rejected outputs")
    if rejects:
        st.dataframe(
            pd.DataFrame(rejects)[["stage", "reason", "topic", "item", "raw", "job_id"]],
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("Nothing rejected yet. Invalid or filtered outputs show here with why.")


with ex_tab:
    examples_tab(store, dataset, version, latest, choice, done)

with qual_tab:
    quality_tab(store, info, latest, rejects, qc_pending)

with ver_tab:
    versions_tab(dataset, versions, version, done)
