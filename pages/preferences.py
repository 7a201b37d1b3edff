"""Preferences: analysts rank model outputs blind, an LLM judge adds verdicts, agreement and a
Bradley-Terry leaderboard show how sure we are, and decided pairs become DPO training data."""

import pandas as pd
import streamlit as st

from backend.action import AlreadyDone
from backend.jobs.kinds import SpecError
from backend.prefs import actions, launch
from backend.prefs import agreement as agr
from backend.prefs.leaderboard import leaderboard, outcome_groups
from backend.store import prefs as S
from studio import auth, live, resources, state
from studio.components import endpoint, thumbs
from studio.components.charts import figure
from studio.components.jobs import live_active_jobs
from studio.components.prefs_export import dpo_form, import_form, skipped_rows
from studio.components.prefs_labelstudio import labelstudio_section
from studio.components.safe_text import md_escape

auth.guard("preferences")
live.follow("prefs", "jobs")  # verdicts, leaderboards and new sets redraw as jobs end

# session-state keys of this page; the tab and the selections are also in the URL
TAB = "prefs_tab"
CSET = "prefs_cset"  # the comparison set being ranked (and judged by default)
PSET = "prefs_pset"  # the preference set exported and trained on

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
    ["Rank", "Judge", "Agreement", "Leaderboard", "Export and DPO"], key=TAB, bind="query-params"
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
                st.session_state[CSET] = cs["name"]  # drawn below: show the new set
                state.flash(f"Comparison set {md_escape(cs['name'])}: {cs['n_items']} items")
                st.rerun()
            except ValueError as exc:
                st.error(md_escape(str(exc)))


def _judge(item_id: str, analyst: str, verdict: str | None) -> None:
    """A button's callback, bound to the item it was drawn for: a second click that arrives
    after the next item is drawn judges nothing new (the action answers already done)."""
    try:
        if verdict is None:
            actions.skip_item(ctx, item_id, analyst)
        else:
            actions.judge_item(ctx, item_id, analyst, verdict)
    except AlreadyDone as exc:
        st.info(md_escape(str(exc)))
    except ValueError as exc:
        st.error(md_escape(str(exc)))


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
                thumbs.buttons(ctx, item, responses.index(r), analyst)  # KTO feedback
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
                st.info(md_escape(str(exc)))
            except ValueError as exc:
                st.error(md_escape(str(exc)))
    st.button("Skip", key="rank_skip", on_click=_judge, args=(item["id"], analyst, None))
    with st.expander("Thumbs up or down for KTO"):  # below the ranking form
        for i, label in enumerate(labels):
            st.caption(label)
            thumbs.buttons(ctx, item, i, analyst)


with t_rank:
    with st.expander("New comparison set", expanded=not sets):
        new_set_form()
    if sets:
        names = [s["name"] for s in sets]
        set_name = st.selectbox("Comparison set", names, key=CSET, bind="query-params")
        cs = next(s for s in sets if s["name"] == set_name)
        analyst = auth.identity_input("Your name", key=state.PREFS_ANALYST)
        st.caption(f"Assigned analysts: {md_escape(', '.join(cs['analysts']))}")
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
                f"{md_escape(repr(analyst))} has no items in this set; assigned analysts "
                f"are {md_escape(', '.join(cs['analysts']))}."
            )
        else:
            st.progress(
                mine["judged"] / mine["assigned"] if mine["assigned"] else 1.0,
                text=f"{mine['judged']}/{mine['assigned']} judged by {md_escape(analyst)}",
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
            ranked = st.session_state.get(CSET)
            jset = st.selectbox(
                "Comparison set",
                judgeable,
                index=judgeable.index(ranked) if ranked in judgeable else 0,
            )
            provider = st.radio(
                "Judge",
                ["openai", "local"],
                horizontal=True,
                help="An OpenAI-compatible endpoint, or a local model folder.",
            )
            model = st.text_input(
                "Model", cfg.llm_model or "", help="Endpoint model name, or a local model folder."
            )
            judge_at = endpoint.picker("prefs_judge", label="Endpoint (openai judge)")
            limit = st.number_input("Most items (0 = all)", 0, 100000, 0)
            if st.form_submit_button("Start judge job", type="primary"):
                try:
                    job_id = launch.launch_judge(
                        ctx,
                        jset,
                        model=model,
                        provider=provider,
                        base_url=judge_at.base_url if provider == "openai" else None,
                        api_key=judge_at.api_key if provider == "openai" else None,
                        limit=limit or None,
                    )
                    resources.ingestor()
                    endpoint.forget("prefs_judge")
                    state.flash(
                        f"Judge job {job_id} queued: each pair is asked twice, positions swapped"
                    )
                    st.rerun()
                except AlreadyDone as exc:
                    st.info(md_escape(str(exc)))
                except (ValueError, SpecError) as exc:
                    st.error(md_escape(str(exc)))
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
        scope = st.selectbox(
            "Scope",
            ["all sets", *[s["name"] for s in sets]],
            key="prefs_agree_scope",
            bind="query-params",
        )
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
    who = st.radio(
        "Judgements",
        ["all", "human", "judge"],
        horizontal=True,
        key="prefs_board_who",
        bind="query-params",
    )
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
                    st.session_state[PSET] = v["name"]  # drawn below: show the new version
                    state.flash(
                        f"{md_escape(pname)} v{v['number']}: {v['n_pairs']} pairs; dropped "
                        f"{md_escape(v['dropped'] or 'none')}"
                    )
                    st.rerun()
                except AlreadyDone as exc:
                    st.info(md_escape(str(exc)))
                except ValueError as exc:
                    st.error(md_escape(str(exc)))
    import_form(ctx, select=PSET)
    if not pref_sets:
        st.info(
            "No preference sets yet: build one from ranked comparisons above, or import "
            "HH-RLHF, DPO JSONL or ratings."
        )
    else:
        st.dataframe(pd.DataFrame(pref_sets), hide_index=True)
        pick = st.selectbox(
            "Preference set", [p["name"] for p in pref_sets], key=PSET, bind="query-params"
        )
        picked = S.resolve_preference_version(store, pick)
        skipped_rows(picked)
        conversational = st.toggle("Conversational (chat turns)", True)
        who = auth.actor()
        if who.can("import_export"):
            v, body = actions.export_jsonl(ctx, pick, conversational=conversational)
            st.download_button(
                f"Download {md_escape(pick)} v{v['number']} (TRL DPO JSONL)",
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
        dpo_form(ctx, pick, picked)
        live_active_jobs("No DPO run is running.")
