"""Preferences: analysts rank model outputs blind, an LLM judge adds verdicts, agreement and a
Bradley-Terry leaderboard show how sure we are, and decided pairs become DPO training data."""

import pandas as pd
import streamlit as st

from backend.action import AlreadyDone
from backend.jobs.kinds import SpecError
from backend.prefs import actions, launch
from backend.prefs import agreement as agr
from backend.prefs.export import FORMATS
from backend.prefs.leaderboard import leaderboard, outcome_groups
from backend.security import allowed_roots, relative_to_roots
from backend.store import prefs as S
from studio import auth, resources, state
from studio.components.charts import figure
from studio.components.jobs import live_active_jobs
from studio.components.prefs_labelstudio import labelstudio_section

auth.guard("preferences")

state.init()
st.title("Preferences")
st.caption(
    "Rank answers side by side, blind; add an AI judge; see who agrees and which model "
    "wins; turn the decided pairs into DPO training data."
)
state.show_flash()
store, ws, cfg = resources.store(), resources.workspace(), resources.settings()
ctx = auth.ctx()

sets = S.list_comparison_sets(store)
all_rows = S.judgements(store)
pref_sets = S.list_preference_sets(store)
cols = st.columns(4)
cols[0].metric("Comparison sets", len(sets))
cols[1].metric("Human judgements", sum(r["source"] == "human" for r in all_rows))
cols[2].metric("Judge verdicts", sum(r["source"] == "judge" for r in all_rows))
cols[3].metric("Preference pairs", sum(p["n_pairs"] for p in pref_sets))

t_rank, t_judge, t_agree, t_board, t_export = st.tabs(
    ["Rank", "Judge", "Agreement", "Leaderboard", "Export and DPO"]
)


def new_set_form() -> None:
    """Make a comparison set from the generations of two or more sources."""
    sources = S.generation_sources(store)
    if len(sources) < 2:
        st.info(
            "Comparisons need outputs from two or more sources: train runs (each answers "
            "its eval prompts), or answer the same prompts with the base model "
            "with `ftstudio prefs answer --model DIR --prompts-from RUN`)."
        )
        if not sources:
            return
    options = [s["source"] for s in sources]
    with st.form("new_set"):
        name = st.text_input("Name", f"compare-{len(sets) + 1}")
        chosen = st.multiselect("Sources (runs, base:, endpoint:)", options, default=options[:2])
        mode = st.radio(
            "Mode",
            ["pairwise", "ranking"],
            horizontal=True,
            help="pairwise: A / B / tie / both bad; ranking: order N answers.",
        )
        analysts = st.text_input("Analysts (comma-separated)", "me")
        overlap = st.slider(
            "Overlap",
            0.0,
            1.0,
            0.2,
            0.05,
            help="Share of items given to two analysts, for agreement.",
        )
        if st.form_submit_button("Create comparison set", type="primary"):
            try:
                cs = actions.create_comparison_set(
                    ctx,
                    name,
                    sources=chosen,
                    mode=mode,
                    analysts=analysts.split(","),
                    overlap=overlap,
                )
                st.session_state[state.PREFS_SET] = cs["name"]
                state.flash(f"Comparison set {cs['name']}: {cs['n_items']} items")
                st.rerun()
            except ValueError as exc:
                st.error(str(exc))


def _judge(item_id: str, analyst: str, verdict: str | None) -> None:
    """A button's callback, bound to the item it was drawn for: a second click that arrives
    after the next item is drawn judges nothing new (the action answers already done)."""
    try:
        if verdict is None:
            actions.skip_item(ctx, item_id, analyst)
        else:
            actions.judge_item(ctx, item_id, analyst, verdict)
    except AlreadyDone as exc:
        st.info(str(exc))
    except ValueError as exc:
        st.error(str(exc))


def judge_buttons(item: dict, analyst: str) -> None:
    """A / B / tie / both bad / skip, each with a one-key shortcut."""
    b = st.columns(5)
    for col, (label, key, verdict) in zip(
        b,
        (
            ("A is better", "A", "A"),
            ("B is better", "B", "B"),
            ("Tie", "T", "tie"),
            ("Both bad", "X", "both_bad"),
            ("Skip", "S", None),
        ),
        strict=True,
    ):
        col.button(
            label,
            shortcut=key,
            type="primary" if verdict in ("A", "B") else "secondary",
            key=f"v_{verdict or 'skip'}",
            on_click=_judge,
            args=(item["id"], analyst, verdict),
        )


def rank_item(item: dict, analyst: str) -> None:
    for m in item["prompt"]:
        with st.chat_message(m["role"]):
            st.text(m["content"])
    responses = item["responses"]
    if len(responses) == 2:
        left, right = st.columns(2)
        for col, label, r in zip((left, right), ("A", "B"), responses, strict=True):
            with col, st.container(border=True):
                st.markdown(f"**{label}**")
                st.text(r["text"])
        judge_buttons(item, analyst)
        return
    labels = [f"Answer {i + 1}" for i in range(len(responses))]
    for label, r in zip(labels, responses, strict=True):
        with st.container(border=True):
            st.markdown(f"**{label}**")
            st.text(r["text"])
    with st.form(f"rank_{item['id']}", clear_on_submit=True):
        order = st.multiselect("Best to worst (pick in order)", labels)
        if st.form_submit_button("Submit ranking", type="primary"):
            try:
                actions.judge_item(
                    ctx, item["id"], analyst, "ranking", ranking=[labels.index(x) for x in order]
                )
                st.rerun()
            except AlreadyDone as exc:
                st.info(str(exc))
            except ValueError as exc:
                st.error(str(exc))
    st.button("Skip", key="rank_skip", on_click=_judge, args=(item["id"], analyst, None))


with t_rank:
    with st.expander("New comparison set", expanded=not sets):
        new_set_form()
    if sets:
        names = [s["name"] for s in sets]
        current = st.session_state.get(state.PREFS_SET)
        set_name = st.selectbox(
            "Comparison set", names, index=names.index(current) if current in names else 0
        )
        st.session_state[state.PREFS_SET] = set_name
        cs = next(s for s in sets if s["name"] == set_name)
        analyst = auth.identity_input("Your name", key=state.PREFS_ANALYST)
        st.caption(f"Assigned analysts: {', '.join(cs['analysts'])}")
        with st.expander("Label Studio"):
            labelstudio_section(cs)
        prog = S.progress(store, cs["id"])
        if prog:
            st.dataframe(pd.DataFrame(prog), hide_index=True)
        mine = next((p for p in prog if p["annotator"] == analyst), None)
        if not analyst:
            st.info("Type your name to start ranking.")
        elif mine is None:
            st.warning(
                f"{analyst!r} has no items in this set; assigned analysts are "
                f"{', '.join(cs['analysts'])}."
            )
        else:
            st.progress(
                mine["judged"] / mine["assigned"] if mine["assigned"] else 1.0,
                text=f"{mine['judged']}/{mine['assigned']} judged by {analyst}",
            )
            item = S.next_item(store, cs["id"], analyst)
            if item is None:
                st.success(
                    "All your items are ranked. See Agreement and Leaderboard, or build "
                    "a preference set on Export and DPO."
                )
            else:
                st.caption(
                    "Keys: A, B, T (tie), X (both bad), S (skip). Sources are hidden "
                    "and positions shuffled."
                )
                rank_item(item, analyst)

with t_judge:
    judgeable = [s["name"] for s in sets]
    if not judgeable:
        st.info("No comparison set yet: create one on the Rank tab.")
    else:
        st.caption(
            "Each pair is asked twice with the positions swapped (a verdict that flips counts "
            "for nobody); a ranking item is judged as a round robin of its pairs and ranked by "
            "wins."
        )
        with st.form("judge"):
            jset = st.selectbox("Comparison set", judgeable)
            provider = st.radio(
                "Judge",
                ["openai", "local"],
                horizontal=True,
                help="An OpenAI-compatible endpoint, or a local model folder.",
            )
            model = st.text_input(
                "Model", cfg.llm_model or "", help="Endpoint model name, or a local model folder."
            )
            base_url = st.text_input("Base URL", cfg.openai_base_url or "")
            limit = st.number_input("Most items (0 = all)", 0, 100000, 0)
            if st.form_submit_button("Start judge job", type="primary"):
                try:
                    job_id = launch.launch_judge(
                        ctx,
                        jset,
                        model=model,
                        provider=provider,
                        base_url=base_url or None,
                        limit=limit or None,
                    )
                    resources.ingestor()
                    state.flash(
                        f"Judge job {job_id} queued: each pair is asked twice, positions swapped"
                    )
                    st.rerun()
                except AlreadyDone as exc:
                    st.info(str(exc))
                except (ValueError, SpecError) as exc:
                    st.error(str(exc))
        live_active_jobs("No judge job is running.")
    verdicts = [r for r in all_rows if r["source"] == "judge"]
    if verdicts:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "item": r["item_id"],
                        "judge": r["annotator"],
                        "verdict": r["verdict"],
                        "winner": r["winner"],
                        "rationale": r["rationale"],
                        "when": r["created"],
                    }
                    for r in verdicts
                ]
            ),
            hide_index=True,
        )


def agreement_table(rows: list[dict]) -> pd.DataFrame:
    human = [r for r in rows if r["source"] == "human" and r["verdict"] != "ranking"]
    judge = [r for r in rows if r["source"] == "judge"]
    out = []
    for ties in (True, False):
        a = agr.annotator_agreement(human, ties=ties)
        j = agr.judge_human_agreement(human, judge, ties=ties)
        label = "with ties" if ties else "without ties"
        out.append(
            {
                "between": "analysts",
                "ties": label,
                "items": a["items"],
                "agreement": a["agreement"],
                "kappa / alpha": a["krippendorff_alpha"],
                "statistic": "Krippendorff's alpha",
            }
        )
        for p in a["pairs"]:
            out.append(
                {
                    "between": " & ".join(p["analysts"]),
                    "ties": label,
                    "items": p["items"],
                    "agreement": p["agreement"],
                    "kappa / alpha": p["cohen_kappa"],
                    "statistic": "Cohen's kappa",
                }
            )
        out.append(
            {
                "between": "judge vs analysts",
                "ties": label,
                "items": j["items"],
                "agreement": j["agreement"],
                "kappa / alpha": j["cohen_kappa"],
                "statistic": f"Cohen's kappa ({j['inconsistent']} inconsistent left out)",
            }
        )
    return pd.DataFrame(out)


with t_agree:
    if not all_rows:
        st.info(
            "No judgements yet: rank pairs on the Rank tab (give some items to two "
            "analysts with overlap) or start a judge job."
        )
    else:
        scope = st.selectbox("Scope", ["all sets", *[s["name"] for s in sets]], key="agree_set")
        rows = (
            all_rows
            if scope == "all sets"
            else [
                r
                for r in all_rows
                if r["set_id"] == next(s["id"] for s in sets if s["name"] == scope)
            ]
        )
        st.dataframe(agreement_table(rows), hide_index=True)
        st.caption(
            "Without ties: only items every rater decided A or B. Kappa near 0 means "
            "chance agreement; above 0.6 is usually taken as substantial."
        )

with t_board:
    who = st.radio("Judgements", ["all", "human", "judge"], horizontal=True)
    rows = [r for r in all_rows if who == "all" or r["source"] == who]
    board = leaderboard(outcome_groups(rows), n_boot=200)
    if not board["ratings"]:
        st.info("No decided comparisons yet: rank on the Rank tab or run a judge.")
    else:
        table = pd.DataFrame(board["ratings"])
        fig = figure(
            "Bradley-Terry rating (95% bootstrap interval)", "source", "rating (Elo scale)"
        )
        fig.add_bar(
            x=table["source"],
            y=table["rating"],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": table["ci_high"] - table["rating"],
                "arrayminus": table["rating"] - table["ci_low"],
            },
        )
        st.plotly_chart(fig, use_container_width=True)
        st.dataframe(table, hide_index=True)
        matrix = pd.DataFrame(board["win_rate"]).T
        heat = figure("Win rate of row against column (ties count half)", "opponent", "source")
        heat.add_heatmap(
            z=matrix.values,
            x=list(matrix.columns),
            y=list(matrix.index),
            zmin=0,
            zmax=1,
            colorscale="RdBu",
        )
        st.plotly_chart(heat, use_container_width=True)

with t_export:
    st.subheader("Build a preference set")
    if sets:
        with st.form("build"):
            pname = st.text_input("Preference set", "prefs")
            src = st.multiselect("From comparison sets", [s["name"] for s in sets])
            human_only = st.checkbox("Analysts only (leave judge verdicts out)")
            if st.form_submit_button("Build new version", type="primary"):
                try:
                    v = actions.build_preference_set(
                        ctx, pname, src, sources=("human",) if human_only else ("human", "judge")
                    )
                    state.flash(
                        f"{pname} v{v['number']}: {v['n_pairs']} pairs; dropped "
                        f"{v['dropped'] or 'none'}"
                    )
                    st.rerun()
                except AlreadyDone as exc:
                    st.info(str(exc))
                except ValueError as exc:
                    st.error(str(exc))
    with st.expander("Import preference data"):
        up = st.file_uploader("JSONL file", type=["jsonl"])
        fmt = st.selectbox("Format", FORMATS)
        iname = st.text_input("Into preference set", "imported")
        if up is not None and st.button("Import"):
            try:
                v = actions.import_preferences(ctx, iname, up.getvalue(), fmt, label=up.name)
                state.flash(
                    f"{iname} v{v['number']}: {v['n_pairs']} pairs; dropped "
                    f"{v['dropped'] or 'none'}"
                )
                st.rerun()
            except AlreadyDone as exc:
                st.info(str(exc))
            except ValueError as exc:
                st.error(str(exc))
    if not pref_sets:
        st.info(
            "No preference sets yet: build one from ranked comparisons above, or import "
            "HH-RLHF, DPO JSONL or ratings."
        )
    else:
        st.dataframe(pd.DataFrame(pref_sets), hide_index=True)
        pick = st.selectbox("Preference set", [p["name"] for p in pref_sets], key="export_set")
        conversational = st.toggle("Conversational (chat turns)", True)
        who = auth.actor()
        if who.can("import_export"):
            v, body = actions.export_jsonl(ctx, pick, conversational=conversational)
            st.download_button(
                f"Download {pick} v{v['number']} (TRL DPO JSONL)",
                body,
                file_name=f"{pick}-v{v['number']}.jsonl",
                on_click=actions.record_download,
                args=(ctx, pick, v),
            )
        else:
            st.caption(f"Downloads are for leads and admins ({who.role}s may not export).")
        st.subheader("DPO run")
        st.caption(
            "LoRA on the base model; the reference is the same base with the adapter "
            "off. On CPU this runs plain LoRA and is slow beyond a few steps."
        )
        with st.form("dpo"):
            model_roots = allowed_roots(cfg, ws, models=True)
            base = st.text_input(
                "Base model folder",
                relative_to_roots(cfg.local_model_dir or ws.models / "tiny-llama", model_roots),
                help="Relative to the workspace or to the configured local model's folder.",
            )
            steps = st.number_input("Max steps", 1, 100000, 20)
            lr = st.number_input("Learning rate", 1e-7, 1.0, 5e-5, format="%.1e")
            beta = st.number_input("Beta", 0.01, 10.0, 0.1)
            if st.form_submit_button("Start DPO run", type="primary"):
                try:
                    job_id = launch.launch_dpo(
                        ctx,
                        pick,
                        base_model=base,
                        max_steps=int(steps),
                        learning_rate=lr,
                        beta=beta,
                    )
                    resources.ingestor()
                    state.flash(
                        f"DPO run {job_id} queued; its rewards/margins and "
                        "rewards/accuracies show on Compare"
                    )
                    st.rerun()
                except ValueError as exc:
                    st.error(str(exc))
        live_active_jobs("No DPO run is running.")
