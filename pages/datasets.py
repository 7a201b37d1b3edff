"""Datasets: write a recipe, generate examples with an LLM, filter them, browse them, and keep
immutable versions to export for training."""

import pandas as pd
import streamlit as st

from backend.action import AlreadyDone
from backend.jobs import read as jobs
from backend.jobs.status import JobState, JobStatus
from backend.security import allowed_roots, relative_to_roots
from backend.store import datasets as ds
from backend.store import synth as sstore
from backend.synth import actions
from backend.synth.exporters import FORMATS as EXPORT_FORMATS
from backend.synth.generate import GenerateSpec
from backend.synth.recipe import Recipe
from studio import auth, resources, state
from studio.components.jobs import progress_row

auth.guard("datasets")

state.init()
st.title("Datasets")
st.caption(
    "Describe a task, generate training examples, filter and sample them for review, "
    "and keep every change as an immutable version you can export."
)
state.show_flash()
store, ws, cfg = resources.store(), resources.workspace(), resources.settings()
resources.ingestor()
HELP = {name: f.description for name, f in Recipe.model_fields.items()}
SPEC_HELP = {name: f.description for name, f in GenerateSpec.model_fields.items()}


def import_upload(upload, dataset: str) -> None:
    """Import an upload as a new version (the action judges it by its bytes, checks the role
    and audits it)."""
    try:
        v = actions.import_upload(auth.ctx(), dataset, upload.name, upload.getvalue())
    except AlreadyDone as exc:
        st.info(str(exc))
        return
    except ValueError as exc:
        st.error(str(exc))
        return
    state.flash(f"Imported {v['n_examples']} examples into {dataset} v{v['number']}.")
    st.rerun()


def create_form(key: str) -> None:
    with st.form(key, clear_on_submit=False):
        name = st.text_input("Name", placeholder="support-bot")
        fmt = st.radio(
            "Format", ["messages", "prompt-completion"], horizontal=True, help=HELP["format"]
        )
        if st.form_submit_button("Create dataset", type="primary"):
            try:
                actions.create_dataset(auth.ctx(), name.strip(), format=fmt, recipe={"format": fmt})
            except ValueError as exc:
                st.error(str(exc))
                return
            st.session_state[state.SELECTED_DATASET] = name.strip()
            state.flash(f"Created {name.strip()}: write its recipe next.")
            st.rerun()


datasets = ds.list_datasets(store)
names = [d["name"] for d in datasets]
if not names:
    st.info("No datasets yet: create one and write a recipe, or import a file you already have.")
    create_form("create_first")
    st.stop()

top = st.columns([3, 1])
current = st.session_state.get(state.SELECTED_DATASET)
dataset = top[0].selectbox("Dataset", names, index=names.index(current) if current in names else 0)
st.session_state[state.SELECTED_DATASET] = dataset
with top[1].popover("New dataset", icon=":material/add:"):
    create_form("create_more")

info = ds.get_dataset(store, dataset)
versions = ds.list_versions(store, dataset)
latest = versions[-1] if versions else None
rejects = sstore.rejects(store, dataset=dataset)
qc_pending = sstore.qc_samples(store, dataset_id=info["id"])
cols = st.columns(4)
cols[0].metric("Examples", latest["n_examples"] if latest else 0)
cols[1].metric("Versions", len(versions))
cols[2].metric("Rejected or filtered", len(rejects))
cols[3].metric("Waiting for QC review", len(qc_pending))

recipe_tab, gen_tab, ex_tab, quality_tab, ver_tab = st.tabs(
    ["Recipe", "Generate", "Examples", "Quality", "Versions"]
)


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]


with recipe_tab:
    recipe = Recipe.model_validate(info["recipe"] or {})
    with st.form("recipe"):
        task = st.text_area("Task", recipe.task, help=HELP["task"])
        fmt = st.radio(
            "Output format",
            ["messages", "prompt-completion"],
            horizontal=True,
            index=0 if recipe.format == "messages" else 1,
            help=HELP["format"],
        )
        system_prompt = st.text_area(
            "System prompt", recipe.system_prompt, help=HELP["system_prompt"]
        )
        topics = st.text_area(
            "Topics or features (comma or one per line)",
            "\n".join(recipe.topics),
            help=HELP["topics"],
        )
        st.caption("Seed examples to imitate")
        seeds = st.data_editor(
            pd.DataFrame(
                [s.model_dump() for s in recipe.seed_examples], columns=["user", "assistant"]
            ),
            num_rows="dynamic",
            width="stretch",
            key="seed_editor",
        )
        c = st.columns(4)
        per_topic = c[0].number_input(
            "Examples per topic", 1, 10_000, recipe.per_topic, help=HELP["per_topic"]
        )
        temperature = c[1].slider(
            "Temperature", 0.0, 2.0, recipe.temperature, help=HELP["temperature"]
        )
        max_tokens = c[2].number_input(
            "Max tokens", 16, 8192, recipe.max_tokens, help=HELP["max_tokens"]
        )
        seed = c[3].number_input("Seed", value=recipe.seed, help=HELP["seed"])
        st.caption("Diversity knobs (comma-separated)")
        k = st.columns(4)
        tones = k[0].text_input("Tones", ", ".join(recipe.tones), help=HELP["tones"])
        complexities = k[1].text_input(
            "Complexity", ", ".join(recipe.complexities), help=HELP["complexities"]
        )
        personas = k[2].text_input("Personas", ", ".join(recipe.personas), help=HELP["personas"])
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
                )
            except ValueError as exc:
                st.error(f"The recipe is not valid: {exc}")
                new = None
            if new is not None:
                try:
                    actions.save_recipe(auth.ctx(), dataset, new)
                except AlreadyDone as exc:
                    st.info(str(exc))
                except ValueError as exc:
                    st.error(str(exc))
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
        st.error(f"Last generation {gen_jobs[-1].state}: {gen_jobs[-1].error or ''}")


with gen_tab:
    recipe = Recipe.model_validate(info["recipe"] or {})
    if not recipe.topics:
        st.info("The recipe has no topics yet: add the features to cover on the Recipe tab.")
    n = len(recipe.topics or ["general"]) * recipe.per_topic
    st.write(
        f"{n} examples planned: {len(recipe.topics or ['general'])} topics × "
        f"{recipe.per_topic} with {recipe.provider} model `{recipe.model or '(not set)'}`."
    )
    with st.form("generate"):
        c = st.columns(3)
        base_url = c[0].text_input(
            "Endpoint base URL",
            cfg.openai_base_url or "",
            help=SPEC_HELP["base_url"],
            disabled=recipe.provider != "openai",
        )
        concurrency = c[1].number_input("Concurrency", 1, 256, 8, help=SPEC_HELP["concurrency"])
        rpm = c[2].number_input(
            "Requests per minute (0: no limit)", 0, 100_000, 0, help=SPEC_HELP["rpm"]
        )
        qc_share = st.slider(
            "Share marked for human QC",
            0.05,
            0.10,
            0.07,
            0.01,
            format="%.2f",
            help=SPEC_HELP["qc_share"],
        )
        key_state = "set" if cfg.openai_api_key else "not set (local servers accept none)"
        st.caption(f"API key: {key_state}. Keys live in Settings, never in the job.")
        if st.form_submit_button("Generate", type="primary"):
            try:
                job_id = actions.generate(
                    auth.ctx(),
                    dataset,
                    base_url=base_url or None,
                    concurrency=int(concurrency),
                    rpm=float(rpm) or None,
                    qc_share=float(qc_share),
                )
            except ValueError as exc:
                st.error(str(exc))
            else:
                state.flash(f"Queued generation job {job_id}.")
                st.rerun()
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


def show_example(e: dict) -> None:
    for m in e["messages"]:
        with st.chat_message(m["role"]):
            st.text(m["content"])
    st.caption(
        f"id {e['id'][:16]} · topic {e['topic'] or '-'}"
        + (f" · edited from {e['parent_id'][:12]}" if e["parent_id"] else "")
    )
    st.json(e["origin"] or {}, expanded=False)


with ex_tab:
    if not latest:
        st.info(
            "No examples yet: generate some on the Generate tab or import a file on the "
            "Versions tab."
        )
    else:
        c = st.columns([1, 2, 2])
        vnum = c[0].selectbox("Version", [v["number"] for v in reversed(versions)])
        version = ds.resolve_version(store, dataset, int(vnum))
        text = c[1].text_input("Search text")
        all_items = ds.version_examples(store, version["id"])
        topics = sorted({e["topic"] for e in all_items if e["topic"]})
        topic = c[2].selectbox("Topic", ["(all)"] + topics)
        topic = None if topic == "(all)" else topic
        items = ds.search_examples(store, version["id"], text=text, topic=topic)
        st.caption(f"{len(items)} of {version['n_examples']} examples")
        if (text or topic) and items and st.button("Save the matches as a new version"):
            try:
                v = actions.save_filtered(
                    auth.ctx(), dataset, text=text, topic=topic, version=int(vnum)
                )
            except AlreadyDone as exc:
                st.info(str(exc))
            except ValueError as exc:
                st.error(str(exc))
            else:
                state.flash(f"Saved v{v['number']} with {v['n_examples']} matching examples.")
                st.rerun()
        table = pd.DataFrame(
            [
                {
                    "question": next(
                        (m["content"] for m in e["messages"] if m["role"] == "user"), ""
                    )[:120],
                    "topic": e["topic"],
                    "id": e["id"][:12],
                }
                for e in items
            ]
        )
        picked = st.dataframe(
            table,
            hide_index=True,
            on_select="rerun",
            selection_mode="single-row",
            width="stretch",
            key="examples_table",
        )
        rows = picked.selection.rows if picked else []
        if items:
            chosen = items[rows[0]] if rows else items[0]
            show_example(chosen)
            with st.expander("Edit this example (makes a new version)"):
                with st.form("edit_example"):
                    answer = st.text_area("Assistant answer", chosen["messages"][-1]["content"])
                    if st.form_submit_button("Save as new version"):
                        msgs = chosen["messages"][:-1] + [{"role": "assistant", "content": answer}]
                        try:
                            v = actions.edit_example(auth.ctx(), dataset, chosen["id"], msgs)
                        except AlreadyDone as exc:
                            st.info(str(exc))
                        except ValueError as exc:
                            st.error(str(exc))
                        else:
                            state.flash(f"Saved v{v['number']} with the edited example.")
                            st.rerun()

with quality_tab:
    runs = sstore.runs(store, info["id"])
    if runs:
        rep = runs[0]["report"]
        q = st.columns(5)
        q[0].metric("Kept", rep.get("kept", 0))
        q[1].metric("Filtered", rep.get("removed", 0))
        q[2].metric("Distinct-1", rep.get("distinct_1"))
        q[3].metric("Distinct-2", rep.get("distinct_2"))
        q[4].metric("Embedding spread", rep.get("embedding_spread"))
        st.caption(
            f"Last generation {runs[0]['job_id']}: near duplicates by "
            f"{rep.get('near_dup_method')} at similarity ≥ "
            f"{rep.get('near_dup_threshold')}; removed by reason "
            f"{rep.get('removed_by_reason') or '{}'}."
        )
    else:
        st.caption(
            "Quality figures appear after a generation; topic counts below cover the "
            "current version."
        )
    if latest:
        items = ds.version_examples(store, latest["id"])
        counts = pd.Series([e["topic"] or "(none)" for e in items]).value_counts()
        st.subheader("Examples per topic (current version)")
        st.bar_chart(counts.rename("examples"), x_label="topic", y_label="examples")
    removed = [r for r in rejects if r["stage"] == "quality"]
    st.subheader("Removed by filters")
    if removed:
        st.dataframe(
            pd.DataFrame(removed)[["reason", "topic", "item", "raw"]],
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("Nothing removed yet.")
    st.subheader("Human QC sample")
    if qc_pending:
        st.caption(f"{len(qc_pending)} examples await review on the Review page.")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "topic": r["topic"],
                        "example": r["example_id"][:12],
                        "question": r["messages"][-2]["content"][:120],
                    }
                    for r in qc_pending
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("No examples waiting for QC: each generation marks a 5-10% sample.")

with ver_tab:
    if versions:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "version": v["number"],
                        "created": v["created"][:19],
                        "examples": v["n_examples"],
                        "hash": v["hash"][:16],
                        "note": v["note"],
                    }
                    for v in reversed(versions)
                ]
            ),
            hide_index=True,
            width="stretch",
        )
        with st.form("export"):
            c = st.columns(3)
            vnum = c[0].selectbox("Version", [v["number"] for v in reversed(versions)])
            fmt = c[1].selectbox("Format", EXPORT_FORMATS)
            ext = {
                "messages-jsonl": ".jsonl",
                "prompt-completion-jsonl": ".jsonl",
                "parquet": ".parquet",
                "hf": "",
            }[fmt]
            roots = allowed_roots(cfg, ws)
            default = relative_to_roots(ws.exports / f"{dataset}-v{vnum}-{fmt}{ext}", roots)
            out = c[2].text_input("Write to (inside the workspace)", default)
            overwrite = st.checkbox("Overwrite if it exists")
            if st.form_submit_button("Export"):
                try:
                    res = actions.export_version(
                        auth.ctx(), dataset, fmt, out, version=int(vnum), overwrite=overwrite
                    )
                except (ValueError, OSError) as exc:
                    st.error(str(exc))
                else:
                    st.success(f"Wrote {res['examples']} examples to {res['path']}")
    else:
        st.caption("No versions yet.")
    st.subheader("Import a file as a new version")
    upload = st.file_uploader(
        "JSONL, CSV or Parquet with `messages` or `prompt`/`completion`",
        type=["jsonl", "json", "csv", "parquet"],
    )
    if upload is not None and st.button("Import", type="primary"):
        import_upload(upload, dataset)
