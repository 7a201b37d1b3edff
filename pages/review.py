"""Review: score examples by model uncertainty, flag the least certain, review them in Label
Studio or here, and write the verdicts into a new dataset version.

The page is live (`live.follow`): when a scoring or judging job stores its scores, or verdicts
arrive (here, by pull, or by Label Studio's webhook), its tabs, figures and counters redraw by
themselves within seconds. The tab, dataset, scoring run, signal and policy live in the URL, so
a reload or a link opens the same view and every action keeps its tab. Reviewer and model text
is drawn as plain text; messages that carry typed text are escaped."""

import json

import pandas as pd
import streamlit as st

from backend.action import AlreadyDone
from backend.examples import turn_label, turn_text
from backend.integrations.labelstudio import client as lsc
from backend.integrations.labelstudio import server as lss
from backend.jobs.kinds import SpecError
from backend.review import actions, stats
from backend.review import labelstudio_actions as ls_actions
from backend.review.flagging import FlagPolicy, cut_value, flag
from backend.review.inputs import choose_adapter
from backend.review.verdicts import CATEGORIES, Verdict
from backend.security import UnsafePathError, allowed_roots, confine_any, relative_to_roots
from backend.store import datasets as ds
from backend.store import review as rstore
from studio import auth, live, resources, state
from studio.components import endpoint, local_labelstudio
from studio.components.charts import figure
from studio.components.jobs import live_active_jobs
from studio.components.safe_text import md_escape

who = auth.guard("review")

# this page's session-state keys; the bound ones are also the URL's query parameters
TAB = "review_tab"
DATASET = "review_dataset"
RUN = "review_run"
SIGNAL = "review_signal"
POLICY = "review_policy"
LS_BATCH = "review_ls_batch"
HERE_BATCH = "review_here_batch"

TABS = ["Score", "Flag", "Label Studio", "Review here", "Rounds"]
UNITS = {"nll": "nats per token", "entropy": "nats per token", "judge_flaw": "10 - judge rating"}
SIGNALS = {  # what each score says, in the reviewer's words
    "nll": "How surprising the answer is",
    "entropy": "How unsure the model is, word by word",
    "judge_flaw": "How little an LLM judge liked it",
}
POLICIES = {
    "top_k": "A fixed number, least certain first",
    "percentile": "Everything above a percentile",
    "threshold": "Everything above a score",
}
VALUE_LABELS = {"top_k": "How many", "percentile": "Percentile", "threshold": "Score at or above"}
ROLES = ("user", "assistant")  # chat roles drawn with their own avatar; others as "system"

state.init()
st.title("Review")
st.caption(
    "Send reviewers the examples the model is least sure of; their verdicts make the next "
    "dataset version."
)
state.show_flash()
live.follow("scores", "reviews", "jobs")
store, ws, cfg = resources.store(), resources.workspace(), resources.settings()

names = [d["name"] for d in ds.list_datasets(store)]
if not names:
    st.info("No datasets yet: create one on the Datasets page, then come back to score it.")
    st.stop()


def _forget(*keys: str) -> None:
    """Drop selections that depend on one that changed, so they follow it."""
    for key in keys:
        st.session_state.pop(key, None)


if DATASET not in st.session_state and DATASET not in st.query_params:
    current = st.session_state.get(state.SELECTED_DATASET)  # the one picked on another page
    if current in names:
        st.session_state[DATASET] = current
dataset = st.selectbox(
    "Dataset",
    names,
    key=DATASET,
    bind="query-params",
    on_change=_forget,
    args=(RUN, SIGNAL, LS_BATCH, HERE_BATCH),
)
st.session_state[state.SELECTED_DATASET] = dataset

score_runs = rstore.score_jobs(store, dataset)
batch_rows = rstore.batches(store, dataset)
latest = batch_rows[-1] if batch_rows else None
cols = st.columns(4)
cols[0].metric("Scored examples", score_runs[0]["n"] if score_runs else 0)
cols[1].metric("In latest batch", latest["n_items"] if latest else 0)
cols[2].metric("Reviewed", latest["n_reviewed"] if latest else 0)
cols[3].metric("Rounds", len(batch_rows))


def connection() -> tuple[str | None, str | None]:
    """Label Studio url and token, read at the point of use (never kept in session state)."""
    return lsc.connection(cfg, ws)


def _done(message: str, *forget: str) -> None:
    """After an action: its result shown once where the user is (the tab is in the URL)."""
    _forget(*forget)
    state.flash(message)
    st.rerun()


def batch_progress(batch_id: str) -> None:
    """Reviewed share, overlap, agreement and per-reviewer counts of a batch (live: the page
    redraws when verdicts arrive, here, by pull or by webhook)."""
    prog = stats.progress(store, batch_id)
    st.progress(
        prog["reviewed"] / max(prog["items"], 1),
        text=f"{prog['reviewed']}/{prog['items']} items reviewed",
    )
    k1, k2, k3 = st.columns(3)
    k1.metric(
        "Items two or more reviewers saw",
        prog["overlap_items"],
        help="The overlap: items given to several reviewers, so their agreement can be measured.",
    )
    k2.metric(
        "Agreement between two reviewers",
        "–" if prog["cohen_kappa"] is None else f"{prog['cohen_kappa']:.2f}",
        help="Cohen's kappa over the overlapping items: 1 is full agreement, 0 what chance gives.",
    )
    k3.metric(
        "Agreement among all reviewers",
        "–" if prog["fleiss_kappa"] is None else f"{prog['fleiss_kappa']:.2f}",
        help="Fleiss' kappa over the overlapping items: 1 is full agreement, 0 what chance gives.",
    )
    if prog["reviewers"]:
        st.dataframe(pd.DataFrame(prog["reviewers"]).T.rename_axis("reviewer"))


def verdicts_jsonl(batch_id: str) -> str:
    """The batch's verdicts, one JSON object a line (for the download button)."""
    return "".join(
        json.dumps(r, default=str, ensure_ascii=False) + "\n"
        for r in rstore.reviews(store, batch_id)
    )


t_score, t_flag, t_ls, t_here, t_rounds = st.tabs(TABS, key=TAB, bind="query-params")

with t_score:
    model_roots = allowed_roots(cfg, ws, models=True)
    default_model = relative_to_roots(cfg.local_model_dir or ws.models / "tiny-llama", model_roots)
    model = st.text_input(
        "Model folder",
        default_model,
        key="review_model",
        help="A local transformers model folder (the base model), relative to "
        "the workspace or to the configured local model's folder.",
    )
    try:
        model_dir = confine_any(model, model_roots)
    except UnsafePathError as exc:
        model_dir = None
        st.error(md_escape(f"Model folder: {exc}"))
    newest = rstore.newest_adapter(store, str(model_dir), root=ws.root) if model_dir else None
    labels = {
        "newest": f"the newest run's tuning ({newest['run_id']})"
        if newest
        else "the newest run's tuning (no run yet: the base model alone)",
        "base": "the base model alone",
        "folder": "another run's tuning folder",
    }
    use = st.radio(
        "Score with",
        list(labels),
        format_func=labels.get,
        horizontal=True,
        key="review_adapter",
        help="By default scores come from the newest succeeded training run on this base "
        "model (its LoRA adapter), so each round is judged by the latest tuned model.",
    )
    adapter = (
        st.text_input(
            "Tuning folder",
            "",
            key="review_adapter_folder",
            help="A run's LoRA adapter folder, relative to the workspace (runs/<run>/adapter).",
        )
        if use == "folder"
        else ""
    )
    include = st.checkbox(
        "Include examples reviewed in earlier rounds",
        False,
        key="review_include_reviewed",
        help="Off: re-score only what is left to review.",
    )
    choice = None
    try:
        if model_dir is None:
            pass
        elif use == "folder" and not adapter.strip():
            st.info("Enter a run's tuning folder (runs/<run>/adapter).")
        else:
            adapter_dir = confine_any(adapter, allowed_roots(cfg, ws)) if adapter.strip() else None
            choice = choose_adapter(
                store,
                str(model_dir),
                adapter_path=adapter_dir and str(adapter_dir),
                base_only=use == "base",
                root=ws.root,
            )
            st.text(f"Scoring with {choice.describe()}")
    except (UnsafePathError, ValueError) as exc:
        st.error(md_escape(str(exc)))
    if st.button("Score this dataset", type="primary", disabled=choice is None):
        try:
            out = actions.launch_scoring(
                auth.ctx(),
                dataset,
                model,
                adapter_path=adapter.strip() if use == "folder" else None,
                base_only=use == "base",
                only_unreviewed=not include,
            )
            _done(
                md_escape(
                    f"Scoring {out['examples']} examples of {dataset} v{out['version']['number']} "
                    f"(round {out['round']}) with {out['adapter'].describe()}: job {out['job_id']}"
                )
            )
        except (ValueError, SpecError, OSError) as exc:
            st.error(md_escape(f"Could not start scoring: {exc}"))
    with st.expander("Second signal: an LLM judge rates each example"):
        st.caption(
            "An OpenAI-compatible endpoint (set up on the Settings page) rates "
            "each response 1-10; stored as judge_flaw = 10 - rating, so the Flag tab's cut "
            "picks the answers the judge liked least."
        )
        judge_at = endpoint.picker("review_judge")
        judge_model = st.text_input(
            "Judge model", "", help="The model id at the endpoint, e.g. gpt-4o-mini."
        )
        criteria = st.text_area(
            "Criteria (optional)", "", help="What makes a response good; blank: built in."
        )
        if st.button("Judge this dataset", disabled=not judge_model.strip()):
            try:
                out = actions.launch_judge(
                    auth.ctx(),
                    dataset,
                    judge_model,
                    only_unreviewed=not include,
                    criteria=criteria,
                    base_url=judge_at.base_url,
                    api_key=judge_at.api_key,
                )
                endpoint.forget("review_judge")
                state.flash(
                    f"Judging {out['examples']} examples of {dataset} "
                    f"v{out['version']['number']} with {judge_model}: job {out['job_id']}"
                )
                st.rerun()
            except (ValueError, SpecError, OSError) as exc:
                st.error(f"Could not start judging: {exc}")
    live_active_jobs("No scoring job is running.")
    if score_runs:
        st.dataframe(pd.DataFrame(score_runs), hide_index=True)
    else:
        st.info("Not scored yet: pick a model folder and press Score.")

with t_flag:
    if not score_runs:
        st.info("Score the dataset first (Score tab).")
    else:
        run_model = {r["job_id"]: r["model"] for r in score_runs}
        job = st.selectbox(
            "Scoring run",
            list(run_model),
            format_func=lambda j: f"{j} ({run_model[j]})",
            key=RUN,
            bind="query-params",
            on_change=_forget,
            args=(SIGNAL,),
        )
        methods = [m for _, m in rstore.score_job_methods(store, [job])] or ["nll"]
        method = st.radio(
            "Flag by",
            methods,
            format_func=lambda m: SIGNALS.get(m, m),
            horizontal=True,
            key=SIGNAL,
            bind="query-params",
            help="The signal: nll (how surprising the response is, per token), entropy (how "
            "unsure the model is of each next token), judge_flaw (10 minus an LLM judge's "
            "1-10 rating).",
        )
        kind = st.radio(
            "How many to flag",
            list(POLICIES),
            format_func=POLICIES.get,
            horizontal=True,
            key=POLICY,
            bind="query-params",
            help="The flagging policy: top_k (the k highest scores), percentile (scores above "
            "that percentile), threshold (scores at or above a value).",
        )
        scores = rstore.scores_of(store, job, method)
        default = {
            "top_k": min(20.0, float(len(scores))),
            "percentile": 80.0,
            "threshold": float(pd.Series(scores).median()) if scores else 0.0,
        }[kind]
        value = st.number_input(
            VALUE_LABELS[kind],
            value=default,
            key=f"flag_value_{kind}",
            help=FlagPolicy.model_fields["value"].description,
        )
        qc = st.select_slider(
            "Random spot checks",
            [0.0, 0.05, 0.07, 0.10],
            value=0.05,
            format_func=lambda v: f"{v:.0%}",
            key="review_qc_share",
            help="The QC sample: this share of the unflagged examples is added at random, so "
            "reviewers also see what the model was sure of.",
        )
        try:
            policy = FlagPolicy(kind=kind, value=value, qc_share=qc)
        except ValueError as exc:
            st.error(md_escape(str(exc)))
            st.stop()
        cut = cut_value(scores, policy)
        fig = figure(
            f"{SIGNALS.get(method, method)} ({method}), per example ({len(scores)} scored)",
            f"{method} ({UNITS.get(method, 'score')})",
            "examples",
        )
        fig.add_histogram(x=list(scores.values()), nbinsx=40, name=method)
        if cut is not None:
            fig.add_vline(
                x=cut, line_dash="dash", line_color="#e4572e", annotation_text=f"cut {cut:.3f}"
            )
        st.plotly_chart(fig, width="stretch")
        st.caption(
            f"{len(flag(scores, policy))} flagged at or above the cut, plus the spot checks."
        )
        if st.button("Create review batch", type="primary"):
            try:
                b = actions.create_batch(auth.ctx(), dataset, job, policy, method=method)
                _done(
                    f"Batch {b['id']}: {b['n_flagged']} flagged + {b['n_qc']} spot checks",
                    LS_BATCH,
                    HERE_BATCH,
                )
            except AlreadyDone as done:
                st.info(md_escape(str(done)))
            except ValueError as exc:
                st.error(md_escape(str(exc)))

with t_ls:
    if who.can("settings"):
        local_labelstudio.panel("review")
        st.divider()
    url, token = connection()
    if not url or not token:
        st.info(
            "No Label Studio configured. An admin can start this workspace's own (here, or "
            "`ftstudio labelstudio up`), or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY; "
            "meanwhile use Review here."
        )
    else:
        healthy = lss.healthy(url)
        (st.success if healthy else st.warning)(
            f"Label Studio at {md_escape(url)}: {'reachable' if healthy else 'not answering'}"
        )
    if not batch_rows:
        st.info("No review batch yet: create one on the Flag tab.")
    else:
        batch_id = st.selectbox("Batch", [b["id"] for b in reversed(batch_rows)], key=LS_BATCH)
        batch = rstore.get_batch(store, batch_id)
        live_on = False
        if url and token:
            c1, c2, c3 = st.columns(3)
            overlap = c1.slider(
                "Share of tasks two reviewers see",
                0.0,
                1.0,
                0.2,
                0.05,
                key="review_overlap",
                help="Label Studio's overlap: this share of the tasks goes to two reviewers, "
                "so their agreement can be measured.",
            )
            try:
                if c1.button("Push to Label Studio", disabled=bool(batch["ls_project_id"])):
                    with st.spinner("Creating the project and importing tasks"):
                        res = ls_actions.push_batch(auth.ctx(), batch_id, overlap_share=overlap)
                    _done(f"Pushed {res['tasks']} tasks to project {res['project_id']}")
                if c2.button("Pull verdicts", disabled=not batch["ls_project_id"]):
                    with st.spinner("Reading the project's export"):
                        res = ls_actions.pull_batch(auth.ctx(), batch_id)
                    _done(
                        f"Pulled {res['annotations']} annotations: {res['new']} new, "
                        f"{res['updated']} updated, {res['unchanged']} unchanged, "
                        f"{res['removed']} deleted in Label Studio"
                    )
                if c3.button("Apply verdicts", disabled=bool(batch["applied_version_id"])):
                    res = actions.apply_batch(auth.ctx(), batch_id)
                    _done(
                        md_escape(
                            f"New version v{res['version']['number']}: {res['version']['note']}"
                        )
                    )
            except AlreadyDone as done:
                st.info(md_escape(str(done)))
            except (ValueError, lsc.LabelStudioError) as exc:
                st.error(md_escape(str(exc)))
            live_on = bool(batch["ls_project_id"]) and st.toggle(
                "Live verdicts",
                key=state.LS_LIVE,
                help="Label Studio posts each annotation to this dashboard as it is made (a "
                "webhook); the counts below follow within seconds, without Pull.",
            )
        if live_on:
            try:
                receiver = resources.webhook_receiver(url, token)
                if int(batch["ls_project_id"]) not in receiver.registered:
                    ls_actions.register_webhook(auth.ctx(), int(batch["ls_project_id"]), receiver)
                st.caption(
                    f"Receiving Label Studio's annotations at {receiver.url}; the counts "
                    "follow within seconds."
                )
            except (OSError, ValueError, lsc.LabelStudioError) as exc:
                st.error(
                    md_escape(
                        f"Live verdicts are off: {exc}. A Label Studio of your own must allow "
                        "webhooks to 127.0.0.1 (USE_DEFAULT_BANNED_SUBNETS=false); use Pull "
                        "meanwhile."
                    )
                )
        batch_progress(batch_id)
        st.download_button(
            "Download this batch's verdicts (JSON lines)",
            verdicts_jsonl(batch_id),
            file_name=f"{batch_id}-verdicts.jsonl",
            mime="application/jsonl",
            key="review_download_verdicts",
            help="Every verdict of the batch (in-app and Label Studio), one JSON object a line.",
        )
        if url and batch["ls_project_id"]:
            links = pd.DataFrame(
                [
                    {
                        "example": i["example_id"][:12],
                        "reason": i["reason"],
                        "score": i["score"],
                        "task": lsc.task_link(url, batch["ls_project_id"], i["ls_task_id"]),
                    }
                    for i in rstore.batch_items(store, batch_id)
                ]
            )
            st.dataframe(
                links,
                hide_index=True,
                column_config={
                    "task": st.column_config.LinkColumn("task", display_text="open in Label Studio")
                },
            )

with t_here:
    if not batch_rows:
        st.info("No review batch yet: create one on the Flag tab.")
    else:
        batch_id = st.selectbox("Batch", [b["id"] for b in reversed(batch_rows)], key=HERE_BATCH)
        reviewer = auth.identity_input("Your name", key=state.REVIEWER)
        item = rstore.next_unreviewed(store, batch_id, reviewer) if reviewer else None
        if item is None:
            st.success(
                "Nothing left for you in this batch. Apply the verdicts on the Label "
                "Studio tab, or pick another batch."
            )
        else:
            st.text(
                f"{item['reason']} · score {item['score']:.3f} · {item['example_id'][:12]}"
                if item["score"] is not None
                else item["reason"]
            )
            for msg in item["messages"]:  # tool calls and results as text lines
                role = msg.get("role")
                with st.chat_message(role if role in ROLES else "system"):
                    if role not in ROLES:
                        st.text(f"[{turn_label(msg)}]")
                    st.text(turn_text(msg))
            if item.get("note"):
                st.text("The LLM judge says:")
                st.text(item["note"])
            with st.form(f"verdict_{item['example_id']}", clear_on_submit=True):
                verdict = st.radio("Verdict", ["accept", "reject", "correct"], horizontal=True)
                cats = st.multiselect("Issues", CATEGORIES)
                corrected = st.text_area(
                    "Corrected response (for 'correct')", item["messages"][-1]["content"]
                )
                if st.form_submit_button("Submit and next", type="primary"):
                    try:
                        v = Verdict(
                            example_id=item["example_id"],
                            reviewer=reviewer,
                            verdict=verdict,
                            categories=cats,
                            corrected=corrected if verdict == "correct" else None,
                        )
                        actions.record_verdict(auth.ctx(), batch_id, v)
                        st.rerun()
                    except ValueError as exc:
                        st.error(md_escape(str(exc)))

with t_rounds:
    rows = stats.rounds(store, dataset)
    if rows and rows[-1]["batch"] is not None and batch_rows[-1]["applied_version_id"]:
        st.info(
            "Round applied. Re-score what is left on the Score tab (it uses the newest "
            "run's tuning by default) to see whether the flagged share fell."
        )
    if not rows:
        st.info(
            "No rounds yet. Each batch is a round; after applying one, score the new version "
            "again (with the newest tuning) to see whether the flagged share fell."
        )
    else:
        table = pd.DataFrame(rows)
        fig = figure("Flagged share by round", "round", "share of scored examples")
        fig.add_scatter(
            x=table["round"],
            y=table["share_above_first_cut"],
            mode="lines+markers",
            name="above the first round's cut",
        )
        fig.add_scatter(
            x=table["round"],
            y=table["flagged_share"],
            mode="lines+markers",
            name="flagged by the round's own policy",
        )
        st.plotly_chart(fig, width="stretch")
        if len(rows) > 1:
            a, b = rows[-2]["share_above_first_cut"], rows[-1]["share_above_first_cut"]
            st.metric(
                f"Above the first cut, round {rows[-1]['round']}",
                f"{b:.0%}",
                delta=f"{(b - a) * 100:+.1f} pts",
                delta_color="inverse",
            )
        st.dataframe(table, hide_index=True)
        st.download_button(
            "Download the rounds (CSV)",
            table.to_csv(index=False),
            file_name=f"{dataset}-rounds.csv",
            mime="text/csv",
            key="review_download_rounds",
        )
