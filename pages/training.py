"""Training: launch LoRA/QLoRA runs and sweeps, watch them live, cancel, resume, inspect."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from backend.action import AlreadyDone
from backend.jobs import read as jobs
from backend.jobs.status import RESUMABLE, TERMINAL, JobState, JobStatusError
from backend.security import allowed_roots, relative_to_roots
from backend.store import runs as runs_store
from backend.store.datasets import list_datasets, list_versions
from backend.train import actions
from backend.train.config import GROUPS, METHODS, ConfigError, field_info, help_text
from backend.train.sweep import parse_values
from studio import auth, resources, state
from studio.components.charts import color_for, figure
from studio.components.jobs import progress_row

auth.guard("training")

st.title("Training")
st.caption(
    "Fine-tune a base model with LoRA (QLoRA on a CUDA GPU) on a dataset version; runs "
    "train in the background, one at a time, and keep going if you close the browser."
)
state.init()
state.show_flash()

store, ws = resources.store(), resources.workspace()
ingestor = resources.ingestor()
runs = runs_store.list_runs(store)
datasets = list_datasets(store)

cols = st.columns(4)
cols[0].metric("Runs", len(runs))
cols[1].metric("Running", sum(r["state"] == "running" for r in runs))
cols[2].metric("Queued", sum(r["state"] == "queued" for r in runs))
evals = [r["eval_loss"] for r in runs if r["eval_loss"] is not None]
cols[3].metric("Best eval loss", f"{min(evals):.4f}" if evals else "–")

SKIP = {"dataset"}  # chosen from the store, not typed


MODEL_ROOTS = allowed_roots(resources.settings(), ws, models=True)


def default_model() -> str:
    """The base model folder as it is typed: relative to the workspace or to the configured
    local model's folder (absolute paths, '..' and symlinks are refused)."""
    cfg = resources.settings()
    return relative_to_roots(cfg.local_model_dir or ws.models / "tiny-llama", MODEL_ROOTS)


def field_widget(name: str, prefix: str):
    """One config field as a widget, its help text the field's own description."""
    info = field_info(name)
    default = info.get_default(call_default_factory=True)
    key, label, help_ = f"{prefix}_{name}", name.replace("_", " "), help_text(name)
    if name == "base_model":
        return st.text_input(label, default_model(), key=key, help=help_)
    if name == "init_adapter":
        text = st.text_input(
            label,
            "",
            key=key,
            help=help_ + " Relative to the workspace (runs/<run>/adapter); blank: a fresh LoRA.",
        )
        return text.strip() or None
    if name == "method":
        return st.selectbox(label, list(METHODS), key=key, help=help_)
    if name == "quant":
        return st.selectbox(label, ["auto", "4bit", "none"], key=key, help=help_)
    if name in ("target_modules", "eval_prompts"):
        text = st.text_area(label, "\n".join(default), key=key, help=help_, height=80)
        return [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(default, bool):
        return st.checkbox(label, default, key=key, help=help_)
    if name in ("max_steps", "eval_steps"):
        value = st.number_input(
            label, min_value=0, value=0, step=1, key=key, help=help_ + " 0 = not set."
        )
        return int(value) or None
    if isinstance(default, int):
        return int(st.number_input(label, value=default, step=1, key=key, help=help_))
    if name == "learning_rate":
        return st.number_input(label, value=default, format="%.2e", step=1e-5, key=key, help=help_)
    return float(st.number_input(label, value=float(default), key=key, help=help_))


def dataset_picker(prefix: str) -> tuple[str | None, str | None]:
    if not datasets:
        st.info("No datasets yet: create one on the Datasets page, then come back to train.")
        return None, None
    name = st.selectbox(
        "dataset", [d["name"] for d in datasets], key=f"{prefix}_dataset", help=help_text("dataset")
    )
    versions = list_versions(store, name)
    labels = {
        f"v{v['number']} · {v['n_examples']} examples · {v['hash'][:10]}": v["id"]
        for v in reversed(versions)
    }
    chosen = st.selectbox("version", list(labels), key=f"{prefix}_version")
    return name, labels.get(chosen)


def submit(fields: dict, dataset: str, version: str | None, sweep: dict | None = None) -> None:
    """Queue the run (or sweep) through the training actions; show why when refused."""
    ctx = auth.ctx()
    try:
        fields = actions.form_fields(ctx, fields, dataset, version)
        if sweep is None:
            job_id = actions.start_run(ctx, fields)
            st.session_state[state.SELECTED_RUN] = job_id
            state.flash(f"Queued run {job_id}. Open the Run tab to watch it.")
        elif sweep["mode"] == "optuna":
            job_id = actions.start_optuna(
                ctx,
                fields,
                n_trials=sweep["trials"],
                lr_range=sweep["lr_range"],
                ranks=sweep["ranks"],
            )
            state.flash(f"Queued optuna sweep job {job_id}.")
        else:
            group, ids = actions.start_sweep(
                ctx, fields, sweep["space"], sweep["mode"], sweep["trials"]
            )
            state.flash(f"Queued {len(ids)} runs in {group}.")
    except ValueError as exc:  # a bad config, an unsafe path or a refused role
        st.error(f"Not queued: {exc}")
        return
    st.rerun()


tab_new, tab_sweep, tab_queue, tab_run = st.tabs(["New run", "Sweep", "Queue", "Run"])

with tab_new:
    st.caption("quant auto trains QLoRA (4-bit NF4) on a CUDA GPU and plain LoRA on CPU.")
    with st.form("new_run"):
        fields: dict = {}
        for group, names in GROUPS:
            st.subheader(group)
            if group == "Data":
                dataset, version = dataset_picker("new")
            for name in names:
                if name not in SKIP:
                    fields[name] = field_widget(name, "new")
        go = st.form_submit_button("Start run", type="primary", disabled=not datasets)
    if go and dataset:
        submit(fields, dataset, version)

with tab_sweep:
    st.caption(
        "A grid or random sweep queues one run per point as one group; optuna trains "
        "trials inside one job with TPE sampling and pruning on the eval loss."
    )
    with st.form("sweep"):
        base = {
            name: field_widget(name, "sw")
            for name in ("base_model", "quant", "max_steps", "max_length", "eval_split")
        }
        sw_dataset, sw_version = dataset_picker("sw")
        mode = st.radio("mode", ["grid", "random", "optuna"], horizontal=True)
        lrs = st.text_input("learning rates", "1e-4, 5e-5", help=help_text("learning_rate"))
        ranks = st.text_input("LoRA ranks", "8, 16", help=help_text("lora_r"))
        batches = st.text_input("batch sizes", "", help=help_text("batch_size"))
        epochs = st.text_input("epochs", "", help=help_text("epochs"))
        trials = int(st.number_input("runs (random) / trials (optuna)", 1, 500, 4))
        go_sweep = st.form_submit_button("Queue sweep", type="primary", disabled=not datasets)
    if go_sweep and sw_dataset:
        try:
            space = {
                k: parse_values(k, v)
                for k, v in (
                    ("learning_rate", lrs),
                    ("lora_r", ranks),
                    ("batch_size", batches),
                    ("epochs", epochs),
                )
                if v.strip()
            }
        except ConfigError as exc:
            st.error(str(exc))
        else:
            lr_values = space.get("learning_rate", [1e-5, 1e-3])
            submit(
                base,
                sw_dataset,
                sw_version,
                {
                    "mode": mode,
                    "space": space,
                    "trials": trials,
                    "lr_range": (
                        min(lr_values),
                        max(lr_values) * (1.0001 if len(lr_values) == 1 else 1),
                    ),
                    "ranks": space.get("lora_r"),
                },
            )


@st.fragment(run_every=2)
def queue_view() -> None:
    live = [r for r in runs_store.list_runs(store) if r["state"] in ("queued", "running")]
    if not live:
        st.info("Nothing queued or running. Start a run in the New run tab.")
    for r in live:
        try:
            progress_row(jobs.get(ws, r["id"]))
        except (jobs.JobError, JobStatusError) as exc:
            st.error(str(exc))
    table = runs_store.list_runs(store)
    if table:
        st.dataframe(
            table,
            hide_index=True,
            column_order=[
                "id",
                "state",
                "group_id",
                "dataset",
                "base_model",
                "first_loss",
                "last_loss",
                "eval_loss",
                "perplexity",
                "device",
            ],
        )


with tab_queue:
    queue_view()


def curves(run_id: str) -> None:
    df = runs_store.run_metrics(
        store, [run_id], ["loss", "eval_loss", "learning_rate", "tokens_per_s"]
    )
    if df.empty:
        st.caption("No metrics yet: they appear after the first training step.")
        return
    charts = [
        ("Loss", "loss (nats/token)", ["loss", "eval_loss"]),
        ("Learning rate", "learning rate", ["learning_rate"]),
        ("Throughput", "tokens per second", ["tokens_per_s"]),
    ]
    for col, (title, y_title, names) in zip(st.columns(3), charts, strict=True):
        fig = figure(title, "step", y_title)
        for name in names:
            part = df[df["name"] == name]
            if not part.empty:
                fig.add_scatter(
                    x=part["step"],
                    y=part["value"],
                    name=name,
                    mode="lines+markers" if name == "eval_loss" else "lines",
                    line={"color": color_for(run_id + name)},
                )
        col.plotly_chart(fig, use_container_width=True)


@st.fragment(run_every=2)
def run_view(run_id: str) -> None:
    try:
        status = jobs.get(ws, run_id)
    except (jobs.JobError, JobStatusError) as exc:
        st.error(str(exc))
        return
    progress_row(status)
    if status.error:
        st.error(status.error)
    b1, b2, _ = st.columns([1, 1, 4])
    if b1.button(
        "Cancel",
        disabled=status.state in TERMINAL,
        key="cancel_run",
        help="Save a checkpoint at the end of this step and stop.",
    ):
        try:  # the run sees the request at its next step, saves a checkpoint and stops
            actions.cancel_run(auth.ctx(), run_id)
        except AlreadyDone as exc:
            st.info(str(exc))
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.toast("Cancel requested: the run saves a checkpoint and stops.")
    if b2.button(
        "Resume",
        disabled=status.state not in RESUMABLE,
        key="resume_run",
        help="Queue it again; it continues from its last checkpoint.",
    ):
        try:
            actions.resume_run(auth.ctx(), run_id)
        except AlreadyDone as exc:
            st.info(str(exc))
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.rerun()  # the whole page: its counts change too
    curves(run_id)
    with st.expander("Log (last 30 lines)", expanded=status.state == JobState.running):
        # read from the file's tail: a long run's log is never read whole
        st.code(jobs.log_tail(ws, run_id, lines=30) or "no log yet", language=None)


def run_details(run_id: str) -> None:
    try:
        run = runs_store.get_run(store, run_id)
    except runs_store.RunNotFound as exc:
        st.error(str(exc))
        return
    c = st.columns(4)
    c[0].metric("First loss", f"{run['first_loss']:.4f}" if run["first_loss"] else "–")
    c[1].metric("Last loss", f"{run['last_loss']:.4f}" if run["last_loss"] else "–")
    c[2].metric("Eval loss", f"{run['eval_loss']:.4f}" if run["eval_loss"] else "–")
    c[3].metric("Perplexity", f"{run['perplexity']:.2f}" if run["perplexity"] else "–")
    from backend.train.demo_model import NOISE_NOTE, is_demo_model

    if is_demo_model(Path(run["base_model"] or "")):
        st.caption(NOISE_NOTE)
    st.subheader("Generations on the eval prompts")
    gens = runs_store.run_generations(store, run_id)
    if not gens:
        st.caption("Generations appear when the run finishes.")
    for g in gens:
        with st.chat_message("user"):
            st.text(g["prompt"])
        with st.chat_message("assistant"):
            st.text(g["output"])
    st.subheader("What ran")
    st.text(f"device: {run['device'] or '(not started)'}")
    st.text(
        f"dataset: {run['dataset']}  version {run['dataset_version_id']}  "
        f"hash {run['dataset_hash']}"
    )
    st.code(json.dumps(run["config"], indent=1), language="json")
    if run["packages"]:
        st.code(json.dumps(run["packages"], indent=1), language="json")
    st.subheader("Artefacts")
    for label, path in (
        ("adapter", run["adapter_path"]),
        ("merged model", run["merged_path"]),
        ("run folder", run["run_dir"]),
    ):
        if path:
            st.text(f"{label}: {path}")
    if not run["adapter_path"]:
        st.caption("The adapter is saved when training ends.")


with tab_run:
    ids = [r["id"] for r in runs]
    if not ids:
        st.info("No runs yet. Start one in the New run tab.")
    else:
        chosen = st.session_state.get(state.SELECTED_RUN)
        index = ids.index(chosen) if chosen in ids else len(ids) - 1
        run_id = st.selectbox("run", ids, index=index)
        st.session_state[state.SELECTED_RUN] = run_id
        run_view(run_id)
        run_details(run_id)
