"""Eval suites on the Compare page: a suite's leaderboard (mean and 95% interval per target
and scorer, as a table and as error bars) and a per-prompt view of where two targets differ,
the largest difference first. Answers are shown as text, never as markdown."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend.evaluate import actions
from backend.evaluate.scorers import LOWER_IS_BETTER
from backend.store import Store, evals
from studio import auth
from studio.components.charts import color_for

SUITE = "compare_eval_suite"


def _board_chart(board: pd.DataFrame, scorer: str) -> go.Figure:
    rows = board[board["scorer"] == scorer].sort_values("mean", ascending=scorer in LOWER_IS_BETTER)
    fig = go.Figure(
        go.Bar(
            x=rows["mean"],
            y=rows["target"],
            orientation="h",
            marker_color=[color_for(t) for t in rows["target"]],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": rows["ci_high"] - rows["mean"],
                "arrayminus": rows["mean"] - rows["ci_low"],
            },
        )
    )
    fig.update_layout(
        height=80 + 40 * len(rows),
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title=f"{scorer} (95% interval)"
        + (": lower is better" if scorer in LOWER_IS_BETTER else ""),
        yaxis={"autorange": "reversed"},
    )
    return fig


def _prompt_view(store: Store, suite_id: str, targets: list[str], scorers: list[str]) -> None:
    st.markdown("**Where two targets differ**")
    c = st.columns([2, 2, 1])
    a = c[0].selectbox("Target A", targets, index=0, key="compare_eval_a")
    b = c[1].selectbox("Target B", targets, index=min(1, len(targets) - 1), key="compare_eval_b")
    scorer = c[2].selectbox("Scorer", scorers, key="compare_eval_scorer")
    if a == b:
        st.info("Pick two different targets.")
        return
    rows = evals.prompt_diff(store, suite_id, a, b, scorer)
    st.caption(f"{len(rows)} prompts, the largest {scorer} difference (B - A) first.")
    for r in rows[:50]:
        diff = "–" if r["diff"] is None else f"{r['diff']:+.3g}"
        with st.expander(f"#{r['idx']}  difference {diff}  ·  {r['prompt'][:80]}"):
            st.text(r["prompt"])
            if r["reference"]:
                st.caption("Reference")
                st.text(r["reference"])
            left, right = st.columns(2)
            for col, name, out, score in (
                (left, a, r["output_a"], r["score_a"]),
                (right, b, r["output_b"], r["score_b"]),
            ):
                col.caption(f"{name}: {scorer} {'–' if score is None else f'{score:.3g}'}")
                col.code(out if out is not None else "(no answer)", language=None, wrap_lines=True)


def suite_section(store: Store) -> None:
    """The Eval suites section: pick a suite, read its leaderboard, compare two targets."""
    st.subheader("Eval suites")
    suites = evals.list_suites(store)
    if not suites:
        st.caption(
            "No eval suites yet: `ftstudio eval create NAME FILE`, then "
            "`ftstudio eval run NAME --target RUN --scorer rouge_l`."
        )
        return
    names = [s["name"] for s in suites]
    name = st.selectbox("Suite", names, key=SUITE)
    suite = next(s for s in suites if s["name"] == name)
    st.caption(f"{suite['id']}: {suite['n_prompts']} prompts, from {suite['source']}")
    board = pd.DataFrame(evals.leaderboard(store, suite["id"]))
    if board.empty:
        st.info(f"Suite {suite['id']} has not been run yet: `ftstudio eval run {name} ...`.")
        return
    st.dataframe(
        board[["scorer", "target", "n", "mean", "ci_low", "ci_high"]],
        hide_index=True,
        width="stretch",
        column_config={
            "ci_low": st.column_config.NumberColumn("95% low", format="%.4g"),
            "ci_high": st.column_config.NumberColumn("95% high", format="%.4g"),
            "mean": st.column_config.NumberColumn(format="%.4g"),
        },
    )
    scorers = list(dict.fromkeys(board["scorer"]))
    for start in range(0, len(scorers), 3):
        for col, scorer in zip(st.columns(3), scorers[start : start + 3], strict=False):
            col.plotly_chart(_board_chart(board, scorer), width="stretch", key=f"eval_{scorer}")
    targets = evals.targets_of(store, suite["id"])
    if len(targets) >= 2:
        _prompt_view(store, suite["id"], targets, scorers)
    _agreement(store, suite, targets)


def _agreement(store: Store, suite: dict, targets: list[str]) -> None:
    """The judge's agreement with people per rubric, and a form to rate an answer."""
    st.markdown("**Can the judge be trusted? Its agreement with people, per rubric**")
    rows = actions.judge_agreement(store, suite["name"])
    if rows:
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            column_config={
                "spearman": st.column_config.NumberColumn("Spearman", format="%.3f"),
                "kendall": st.column_config.NumberColumn("Kendall", format="%.3f"),
                "kappa": st.column_config.NumberColumn("Cohen's kappa", format="%.3f"),
            },
        )
    else:
        st.caption(
            "No answer is both judged (scorer judge) and rated by people yet: rate some below, "
            "or `ftstudio eval import-ratings` a Label Studio export."
        )
    if not targets or not auth.actor().can("rank"):
        return
    with st.form("compare_eval_rate"):
        c = st.columns([3, 1, 2])
        target = c[0].selectbox("Answer of", targets, key="compare_eval_rate_target")
        idx = c[1].number_input(
            "Prompt #", min_value=0, max_value=suite["n_prompts"] - 1, key="compare_eval_rate_idx"
        )
        score = c[2].slider("Your rating", 1, 10, 5, key="compare_eval_rate_score")
        if st.form_submit_button("Save rating"):
            try:
                actions.rate_answer(auth.ctx(), suite["name"], target, int(idx), score)
            except ValueError as exc:
                st.error(str(exc))
            else:
                st.success(f"Rated answer #{idx} of {target}: {score}")


def promoted_models(store: Store) -> None:
    """The promoted run of each project (the dataset it trained on), for the Overview."""
    st.subheader("Promoted models")
    rows = evals.promoted(store)
    if not rows:
        st.caption(
            "No run promoted yet: a run is promoted only through the gate "
            "(`ftstudio eval gate RUN --rule SUITE:SCORER:MARGIN --promote`)."
        )
        return
    st.dataframe(
        pd.DataFrame(rows)[["project", "run_id", "against", "decided_by", "created"]],
        hide_index=True,
        column_config={"against": "gated against", "decided_by": "by"},
    )
