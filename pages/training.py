"""Training: launch LoRA/QLoRA runs and sweeps, watch them live, cancel, resume, inspect.

The page redraws by itself when a run's data or a job's state changes (`live.follow`); only
the progress bars of running jobs tick on a timer. The open tab, the chosen run and the chosen
dataset versions live in the URL, so a reload, a link or an action keeps them. After queueing,
the Run tab opens on the run just queued."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from backend.action import AlreadyDone
from backend.jobs import read as jobs
from backend.jobs.status import RESUMABLE, TERMINAL, JobState, JobStatus, JobStatusError
from backend.security import allowed_roots, relative_to_roots
from backend.store import compare as cmp
from backend.store import runs as runs_store
from backend.store.datasets import list_datasets, list_versions
from backend.train import actions
from backend.train.checkpoints import runs_with_adapters, starting_points
from backend.train.config import (
    GROUPS,
    field_info,
    help_text,
    in_words,
    label,
    method_fields,
)
from backend.train.sweep import parse_values
from studio import auth, live, resources, state
from studio.components import estimate, executor, rewards
from studio.components.charts import color_for, figure
from studio.components.exports import run_exports
from studio.components.jobs import progress
from studio.components.rerun import rerun_panel

# This page's session-state keys; those of widgets bound to the URL are its query parameters.
TAB = "training_tab"
TABS = ["New run", "Sweep", "Queue", "Run"]
RUN = "training_run"  # the run shown in the Run tab
START_RUN, START_SWEEP = "training_start_run", "training_queue_sweep"  # the submit buttons
SWITCHES = "training_tab_switches"  # how many times the page opened a tab for the user
NEW_DATASET, NEW_VERSION = "training_dataset", "training_version"
SW_DATASET, SW_VERSION = "training_sweep_dataset", "training_sweep_version"
FROM_RUN, FROM_POINT = "training_from_run", "training_from_checkpoint"
FROM_FOLDER = "training_from_folder"
FRESH, TYPED = "a fresh LoRA", "an adapter folder I type"
METHOD = "sft"  # this page trains on dataset versions; DPO trains on preference sets
# shown above the forms (they depend on each other), or set by the page, never typed
NOT_IN_FORM = {"method", "init_adapter", "dataset", "dataset_version_id", "dataset_hash"}
NOT_IN_FORM.add("data_path")

auth.guard("training")

st.title("Training")
st.caption(
    "Fine-tune a base model with LoRA (QLoRA on a CUDA GPU) on a dataset version; runs "
    "train in the background, one at a time, and keep going if you close the browser."
)
state.init()
live.follow("runs", "jobs")

store, ws = resources.store(), resources.workspace()
ingestor = resources.ingestor()
runs = runs_store.list_runs(store)
datasets = list_datasets(store)
kinds = cmp.kinds(store)

MODEL_ROOTS = allowed_roots(resources.settings(), ws, models=True)
# GRPO caps only the sampled answers (max_completion_length): it has no use for max_length
NOT_FOR_METHOD = {"grpo": {"max_length"}}
SHOWN = (
    method_fields(rewards.chosen_method())
    - NOT_IN_FORM
    - rewards.OWN_FIELDS
    - NOT_FOR_METHOD.get(rewards.chosen_method(), set())
)
SWEEP_FIELDS = ("base_model", "quant", "max_steps", "max_length", "eval_split")
SWEEPABLE_SHOWN = ("learning_rate", "lora_r", "batch_size", "epochs")


def default_model() -> str:
    """The base model folder as it is typed: relative to the workspace or to the configured
    local model's folder (absolute paths, '..' and symlinks are refused)."""
    cfg = resources.settings()
    return relative_to_roots(cfg.local_model_dir or ws.models / "tiny-llama", MODEL_ROOTS)


def convert(name: str, raw):
    """A form widget's value as the run field it stands for."""
    if name in ("target_modules", "eval_prompts"):
        return [line.strip() for line in str(raw or "").splitlines() if line.strip()]
    if name in ("max_steps", "eval_steps"):
        return int(raw or 0) or None
    default = field_info(name).get_default(call_default_factory=True)
    if isinstance(default, bool):
        return bool(raw)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def field_widget(name: str, prefix: str) -> None:
    """One config field as a widget: its label in plain words, its help the field's own
    description with the library's term. Its value is read by `form_values`."""
    info = field_info(name)
    default = info.get_default(call_default_factory=True)
    key, text, help_ = f"training_{prefix}_{name}", label(name), help_text(name)
    if name == "base_model":
        st.text_input(text, default_model(), key=key, help=help_)
    elif name == "quant":
        st.selectbox(text, ["auto", "4bit", "none"], key=key, help=help_)
    elif name in ("target_modules", "eval_prompts"):
        st.text_area(text, "\n".join(default), key=key, help=help_, height=80)
    elif isinstance(default, bool):
        st.checkbox(text, default, key=key, help=help_)
    elif name in ("max_steps", "eval_steps"):
        st.number_input(text, min_value=0, value=0, step=1, key=key, help=help_ + " 0 = not set.")
    elif isinstance(default, int):
        st.number_input(text, value=default, step=1, key=key, help=help_)
    elif name == "learning_rate":
        st.number_input(text, value=default, format="%.2e", step=1e-5, key=key, help=help_)
    else:
        st.number_input(text, value=float(default), key=key, help=help_)


def form_values(prefix: str, names) -> dict:
    """The run fields a submitted form holds (its widgets' values, by their keys)."""
    keys = {name: f"training_{prefix}_{name}" for name in names}
    return {n: convert(n, st.session_state[k]) for n, k in keys.items() if k in st.session_state}


def _versions(name: str | None) -> list[dict]:
    """A dataset's versions, the newest first."""
    return list(reversed(list_versions(store, name))) if name else []


def _follow_dataset(dataset_key: str, version_key: str) -> None:
    """The dataset changed: its version picker moves to that dataset's newest version."""
    newest = _versions(st.session_state.get(dataset_key))
    if newest:
        st.session_state[version_key] = f"v{newest[0]['number']}"
    else:
        st.session_state.pop(version_key, None)


def data_picker(dataset_key: str, version_key: str) -> tuple[str | None, dict | None]:
    """The dataset, then one of ITS versions (the list follows the dataset). Returns the
    dataset name and the version the form shows, which is exactly the one the run trains on."""
    if not datasets:
        st.info("No datasets yet: create one on the Datasets page, then come back to train.")
        return None, None
    left, right = st.columns([3, 2])
    name = left.selectbox(
        label("dataset"),
        [d["name"] for d in datasets],
        key=dataset_key,
        bind="query-params",
        on_change=_follow_dataset,
        args=(dataset_key, version_key),
        help=help_text("dataset"),
    )
    versions = {f"v{v['number']}": v for v in _versions(name)}
    if not versions:
        right.warning(f"{name} has no version yet: add examples on the Datasets page.")
        return name, None
    chosen = right.selectbox(
        "Version",
        list(versions),
        key=version_key,
        bind="query-params",
        help="The dataset version the run trains on (newest first). Versions never change: "
        "the run records this version's id and content hash.",
    )
    version = versions[chosen]
    st.caption(f"{name} {chosen}: {version['n_examples']} examples · hash {version['hash'][:10]}")
    return name, version


def _forget_point() -> None:
    st.session_state.pop(FROM_POINT, None)


def start_point() -> None:
    """Where the LoRA starts: a fresh one, an earlier run's adapter or checkpoint (the list
    of checkpoints follows the chosen run), or a folder typed relative to the workspace."""
    earlier = runs_with_adapters(ws, [r["id"] for r in reversed(runs)])
    choice = st.selectbox(
        label("init_adapter"),
        [FRESH, *earlier, TYPED],
        key=FROM_RUN,
        bind="query-params",
        on_change=_forget_point,
        help=help_text("init_adapter"),
    )
    if choice == TYPED:
        st.text_input(
            "Adapter folder",
            "",
            key=FROM_FOLDER,
            help="Relative to the workspace, e.g. runs/<run>/adapter.",
        )
    elif choice != FRESH:
        st.selectbox(
            "Adapter of that run",
            [name for name, _ in starting_points(ws, choice)],
            key=FROM_POINT,
            help="Its final adapter, or one of the checkpoints it saved (the latest first).",
        )


def chosen_start() -> str | None:
    """The adapter folder the Start from pickers show (None: a fresh LoRA)."""
    choice = st.session_state.get(FROM_RUN) or FRESH
    if choice == FRESH:
        return None
    if choice == TYPED:
        return str(st.session_state.get(FROM_FOLDER) or "").strip() or None
    points = dict(starting_points(ws, choice))
    shown = st.session_state.get(FROM_POINT)
    return points.get(shown) if shown in points else next(iter(points.values()), None)


def chosen_version(dataset_key: str, version_key: str) -> tuple[str | None, dict | None]:
    """The dataset and the version its pickers show."""
    name = st.session_state.get(dataset_key)
    if name not in {d["name"] for d in datasets}:
        return None, None
    versions = {f"v{v['number']}": v for v in _versions(name)}
    return name, versions.get(st.session_state.get(version_key))


def vlabel(version: dict | None) -> str:
    return f"v{version['number']}" if version else ""


def from_url(key: str, allowed) -> None:
    """A choice a link or a reload names in the URL, taken before its widget is drawn."""
    if key not in st.session_state and st.query_params.get(key) in allowed:
        st.session_state[key] = st.query_params[key]


def to_url(key: str, value: str | None, default: str | None) -> None:
    """Keep a choice in the URL (none when it is the default), for reloads and links."""
    if value is None or value == default:
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get(key) != value:
        st.query_params[key] = value


def switch_to(tab: str) -> None:
    """Open `tab` on this run (before the tabs are drawn)."""
    st.session_state[TAB] = tab
    st.session_state[SWITCHES] = st.session_state.get(SWITCHES, 0) + 1


def queue_run() -> str | None:
    """The New run form was submitted: queue the run through the training action on exactly
    the dataset version and starting point shown, and open the Run tab on it. Returns why it
    was not queued, or None."""
    dataset, version = chosen_version(NEW_DATASET, NEW_VERSION)
    if version is None:
        return "Not queued: choose a dataset version first."
    fields = form_values("new", sorted(SHOWN))
    fields["init_adapter"] = chosen_start()
    ctx = auth.ctx()
    try:
        fields = actions.form_fields(ctx, fields, dataset, version["id"])
        fields = rewards.run_fields(ctx, fields, dataset)  # kto / grpo: their data and rewards
        job_id = actions.start_run(ctx, fields)
    except ValueError as exc:  # a bad config, an unsafe path or a refused role
        return f"Not queued: {in_words(str(exc))}"
    switch_to("Run")
    st.session_state[RUN] = job_id
    state.flash(f"Queued run {job_id} on {dataset} {vlabel(version)}.")
    return None


def queue_sweep() -> str | None:
    """The Sweep form was submitted: queue its runs (or its optuna job) on the version shown
    and open the Queue tab. Returns why it was not queued, or None."""
    dataset, version = chosen_version(SW_DATASET, SW_VERSION)
    if version is None:
        return "Not queued: choose a dataset version first."
    base = form_values("sw", SWEEP_FIELDS)
    mode = st.session_state.get("training_sw_mode") or "grid"
    trials = int(st.session_state.get("training_sw_trials") or 4)
    try:
        space = {
            name: parse_values(name, text)
            for name in SWEEPABLE_SHOWN
            if (text := str(st.session_state.get(f"training_sw_try_{name}") or "")).strip()
        }
        ctx = auth.ctx()
        fields = actions.form_fields(ctx, base, dataset, version["id"])
        on = f"on {dataset} {vlabel(version)}"
        if mode == "optuna":
            lrs = space.get("learning_rate", [1e-5, 1e-3])
            job_id = actions.start_optuna(
                ctx,
                fields,
                n_trials=trials,
                lr_range=(min(lrs), max(lrs) * (1.0001 if len(lrs) == 1 else 1)),
                ranks=space.get("lora_r"),
            )
            message = f"Queued optuna sweep job {job_id} {on}."
        else:
            group, ids = actions.start_sweep(ctx, fields, space, mode, trials)
            message = f"Queued {len(ids)} runs in {group} {on}."
    except ValueError as exc:  # a bad value, config, path or role
        return f"Not queued: {in_words(str(exc))}"
    switch_to("Queue")
    state.flash(message)
    return None


# A submitted form is queued here, before the tabs and the run picker are drawn, so this very
# run opens the tab (and the run) that shows what was queued.
run_error = queue_run() if st.session_state.get(START_RUN) else None
sweep_error = queue_sweep() if st.session_state.get(START_SWEEP) else None
state.show_flash()

cols = st.columns(4)
cols[0].metric("Runs", len(runs))
cols[1].metric("Running", sum(r["state"] == "running" for r in runs))
cols[2].metric("Queued", sum(r["state"] == "queued" for r in runs))
best = cmp.leaderboard(store, kind=kinds[0]["kind"], limit=1) if kinds else None
if best is not None and len(best):
    cols[3].metric(
        cmp.best_at(kinds[0]["kind"], capital=True),
        f"{best['best_eval_loss'].iloc[0]:.4f}",
        help=f"run {best['run_id'].iloc[0]}, among the runs of the latest kind "
        f"({kinds[0]['kind']}); runs of other methods or versions are ranked apart on "
        "the Compare page.",
    )
else:
    cols[3].metric("Lowest eval loss", "–", help="No run has reported an eval loss yet.")


# The tab and the run live in the URL, kept there by this page (`from_url`, `to_url`) rather
# than by `bind="query-params"`: in Streamlit 1.67 a bound widget the page sets itself (the
# tab and run opened after queueing) leaves the server's copy of the URL behind, and the next
# click puts the older run back in the URL. And once the user clicked a tab, the browser
# ignores a tab the server names for the same tabs element, so each switch made here draws
# the tabs as a new element, told apart by `default` (None or the first tab: the same).
from_url(TAB, TABS)
tab_new, tab_sweep, tab_queue, tab_run = st.tabs(
    TABS,
    key=TAB,
    on_change="rerun",
    default=TABS[0] if st.session_state.get(SWITCHES, 0) % 2 else None,
)
to_url(TAB, st.session_state.get(TAB), TABS[0])

with tab_new:
    st.caption(
        "SFT on a dataset version, KTO on its review verdicts and thumbs ratings, or GRPO on "
        "its prompts with reward functions. DPO runs train on preference pairs: start them "
        "on the Preferences page. Quantization auto trains QLoRA (4-bit "
        "NF4) on a CUDA GPU and plain LoRA on CPU."
    )
    method = rewards.method_choice()
    st.subheader("Data")
    new_dataset, version = data_picker(NEW_DATASET, NEW_VERSION)
    if method == "sft":
        st.subheader("Start from")
        start_point()
    elif method == "grpo":
        rewards.add_file_form()
    with st.form("training_new_run"):
        rewards.form_part(store, new_dataset)
        for group, names in GROUPS:
            shown = [n for n in names if n in SHOWN]
            if not shown:
                continue
            if group == "Compute":  # its own component: executor choice, package checks
                executor.fields("new")
                continue
            st.subheader(group if group != "Data" else "Data handling")
            for name in shown:
                field_widget(name, "new")
        st.form_submit_button("Start run", type="primary", disabled=version is None, key=START_RUN)
        estimate.panel(form_values("new", sorted(SHOWN)))
    if run_error:
        st.error(run_error)

with tab_sweep:
    st.caption(
        "A grid or random sweep queues one run per point as one group; optuna trains "
        "trials inside one job with TPE sampling and pruning on the eval loss. Every run of "
        "a sweep trains on the version shown here."
    )
    _, sw_version = data_picker(SW_DATASET, SW_VERSION)
    with st.form("training_sweep"):
        for name in SWEEP_FIELDS:
            field_widget(name, "sw")
        st.radio(
            "How to pick the runs",
            ["grid", "random", "optuna"],
            horizontal=True,
            key="training_sw_mode",
            help="grid: every combination; random: that many random combinations; optuna: "
            "a TPE search (Optuna) that prunes weak trials early.",
        )
        for name, text, default in (
            ("learning_rate", "Learning rates to try", "1e-4, 5e-5"),
            ("lora_r", "LoRA ranks to try", "8, 16"),
            ("batch_size", "Examples per step to try", ""),
            ("epochs", "Passes over the data to try", ""),
        ):
            st.text_input(
                text,
                default,
                key=f"training_sw_try_{name}",
                help=help_text(name) + " Comma-separated; blank: the value above or the default.",
            )
        st.number_input(
            "Runs (random) or trials (optuna)",
            1,
            500,
            4,
            key="training_sw_trials",
            help="How many points a random sweep draws, or how many trials optuna runs (n_trials).",
        )
        st.form_submit_button(
            "Queue sweep", type="primary", disabled=sw_version is None, key=START_SWEEP
        )
    if sweep_error:
        st.error(sweep_error)


def active_training_jobs() -> list[JobStatus]:
    """Runs and optuna sweeps queued or running, from their folders (a job just queued shows
    before the studio has read it into the database)."""
    return [
        s
        for s in jobs.list_jobs(ws)
        if isinstance(s, JobStatus)
        and s.kind in actions.TRAIN_KINDS
        and s.state in (JobState.queued, JobState.running)
    ]


with tab_queue:
    active = active_training_jobs()
    if not active:
        st.info("Nothing queued or running. Start a run in the New run tab.")
    for status in active:
        progress(status)
    if runs:
        st.dataframe(
            runs[::-1],
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
        col.plotly_chart(fig, width="stretch")


def _act(call, done: str) -> None:
    """Cancel or resume through the training actions; the page redraws on the same tab and
    run, with the result shown once."""
    try:
        call()
    except AlreadyDone as exc:
        st.info(str(exc))
    except ValueError as exc:
        st.error(str(exc))
    else:
        st.success(done)


def run_view(run_id: str) -> None:
    try:
        status = jobs.get(ws, run_id)
    except (jobs.JobError, JobStatusError) as exc:
        st.error(str(exc))
        return
    progress(status)
    if status.error:
        st.error(status.error)
    b1, b2, _ = st.columns([1, 1, 4])
    if b1.button(
        "Cancel",
        disabled=status.state in TERMINAL,
        key="training_cancel",
        help="Save a checkpoint at the end of this step and stop.",
    ):  # the run sees the request at its next step, saves a checkpoint and stops
        _act(
            lambda: actions.cancel_run(auth.ctx(), run_id),
            f"Cancel requested for {run_id}: it saves a checkpoint and stops.",
        )
    if b2.button(
        "Resume",
        disabled=status.state not in RESUMABLE,
        key="training_resume",
        help="Queue it again; it continues from its last checkpoint.",
    ):
        _act(
            lambda: actions.resume_run(auth.ctx(), run_id),
            f"Run {run_id} queued again; it continues from its last checkpoint.",
        )
    curves(run_id)
    rewards.run_panel(store, run_id)  # GRPO: reward/<function> and the sampled answers
    with st.expander("Log (last 30 lines)", expanded=status.state == JobState.running):
        st.code(jobs.log_tail(ws, run_id, lines=30) or "no log yet", language=None)


def run_details(run_id: str) -> None:
    try:
        run = runs_store.get_run(store, run_id)
    except runs_store.RunNotFound:
        st.caption("Queued just now: its details show as soon as the studio has read it.")
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
    for name, path in (
        ("adapter", run["adapter_path"]),
        ("merged model", run["merged_path"]),
        ("run folder", run["run_dir"]),
    ):
        if path:
            st.text(f"{name}: {path}")
    if not run["adapter_path"]:
        st.caption("The adapter is saved when training ends.")
    rerun_panel(store, run)
    run_exports(run_id)  # merged / GGUF / Ollama exports, verified, and the serve commands


with tab_run:
    ids = [r["id"] for r in reversed(runs)]  # the newest first
    wanted = st.session_state.get(RUN)
    if wanted and wanted not in ids:  # queued a moment ago: not read into the database yet
        try:
            ids.insert(0, jobs.checked_id(ws, wanted))
        except jobs.JobError:
            pass
    # no default option: with none picked the newest is shown; a run picked (or just
    # queued) is named in the URL
    from_url(RUN, ids)
    picked = st.selectbox(
        "Run",
        ids,
        index=None,
        key=RUN,
        placeholder=f"the newest: {ids[0]}" if ids else "no runs yet",
        disabled=not ids,
        help="The newest run first.",
    )
    to_url(RUN, picked, None)
    run_id = picked or (ids[0] if ids else None)
    if run_id is None:
        st.info("No runs yet. Start one in the New run tab.")
    else:
        run_view(run_id)
        run_details(run_id)
