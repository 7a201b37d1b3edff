"""The Training page's method choice (SFT, KTO, GRPO), the KTO data and weights, the GRPO
reward picker, and a GRPO run's rewards and sampled answers.

`method_choice()` is drawn above the run form (the fields shown depend on it), `form_part()`
inside it; `run_fields()` turns what was picked into run fields when the form is submitted;
`run_panel()` shows reward/<function> curves and the answers kept with their rewards.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.prefs.kto_actions import kto_counts, kto_fields
from backend.store import runs as runs_store
from backend.store.feedback import feedback_sets, run_completions
from backend.train.config import help_text, label
from backend.train.kto import kto_weights
from backend.train.reward_actions import add_reward_file, reward_files
from studio import auth
from studio.components.charts import color_for, figure

METHOD = "training_method"  # session-state keys of this component
FEEDBACK = "training_kto_feedback"
UPLOAD, UPLOAD_NAME = "training_reward_upload", "training_reward_upload_name"
METHODS = {
    "sft": "SFT: learn the dataset's answers",
    "kto": "KTO: learn from answers marked good or bad (review verdicts, thumbs, imports)",
    "grpo": "GRPO: sample answers to the dataset's prompts and reward them",
}
# fields this component draws itself (the page's generic widgets would not fit them)
OWN_FIELDS = {
    "rewards",
    "sources",
    "judge_model",
    "judge_base_url",
    "scale_rewards",
    "desirable_weight",
    "undesirable_weight",
}
NO_SET = "(none: review verdicts only)"


def chosen_method() -> str:
    return st.session_state.get(METHOD) or "sft"


def method_choice() -> str:
    """The training method radio; returns the method picked."""
    return st.radio(
        label("method"),
        list(METHODS),
        format_func=METHODS.get,
        key=METHOD,
        help=help_text("method"),
    )


def _key(prefix: str, name: str) -> str:
    return f"training_{prefix}_rw_{name}"


def _kto_part(store, dataset: str | None) -> None:
    sets = {s["name"]: s for s in feedback_sets(store)}
    st.selectbox(
        "Feedback set (thumbs ratings, kto-jsonl imports)",
        [NO_SET, *sets],
        key=FEEDBACK,
        help="Answers rated on the Preferences page or imported with `ftstudio prefs import "
        "NAME FILE --format kto-jsonl`; used together with the review verdicts of the "
        "dataset above.",
    )
    ctx = auth.ctx()
    feedback = st.session_state.get(FEEDBACK)
    counts = kto_counts(ctx, dataset=dataset, feedback=None if feedback == NO_SET else feedback)
    nd, nu = counts["desirable"], counts["undesirable"]
    if not nd or not nu:
        st.warning(
            f"KTO needs both: {nd} desirable and {nu} undesirable answers so far (no verdicts "
            "or ratings to train on yet for one of them)."
        )
    else:
        dw, uw = kto_weights(nd, nu)
        st.caption(
            f"{nd} desirable and {nu} undesirable answers; weights from the class counts: "
            f"desirable {dw:g}, undesirable {uw:g} (set either below to override)."
        )
    for name in ("desirable_weight", "undesirable_weight"):
        st.number_input(
            label(name) + " (0 = from the counts)",
            min_value=0.0,
            value=0.0,
            key=_key("new", name),
            help=help_text(name),
        )


def _grpo_part(prefix: str) -> None:
    st.caption(
        "Pick one or more reward functions and their weights; each one's mean and spread "
        "per step are charted as reward/<function>."
    )
    rows = [
        ("regex", "Matches a regular expression", "PATTERN (re.search)", r"\d"),
        ("json-schema", "Is JSON valid for a schema", "schema file in the workspace", ""),
        ("length", "Length within a range (tokens)", "MIN-MAX", "1-64"),
        ("judge", "An LLM judge's score", "rubric file in the workspace", ""),
    ]
    for kind, text, what, default in rows:
        c = st.columns([2, 3, 1])
        c[0].checkbox(text, key=_key(prefix, f"{kind}_on"))
        c[1].text_input(what, default, key=_key(prefix, f"{kind}_arg"))
        c[2].number_input("weight", 0.0, 100.0, 1.0, key=_key(prefix, f"{kind}_w"))
    c = st.columns([2, 3, 1])
    c[0].checkbox("Equals the reference answer", key=_key(prefix, "reference_on"))
    c[1].number_input(
        "numeric tolerance (0 = exact text)",
        min_value=0.0,
        value=0.0,
        key=_key(prefix, "reference_arg"),
    )
    c[2].number_input("weight", 0.0, 100.0, 1.0, key=_key(prefix, "reference_w"))
    files = [f"file:{path}:{fn}" for path, fns in reward_files(auth.ctx()).items() for fn in fns]
    c = st.columns([5, 1])
    c[0].multiselect(
        "Reward functions from the workspace's rewards/ folder",
        files,
        key=_key(prefix, "files"),
        help="def NAME(prompts, completions, **kwargs) -> list[float]; add a file below.",
    )
    c[1].number_input("weight", 0.0, 100.0, 1.0, key=_key(prefix, "files_w"))
    c = st.columns(3)
    c[0].text_input(
        label("judge_model"), key=_key(prefix, "judge_model"), help=help_text("judge_model")
    )
    c[1].text_input(
        label("judge_base_url"),
        key=_key(prefix, "judge_base_url"),
        help=help_text("judge_base_url"),
    )
    c[2].selectbox(
        label("scale_rewards"),
        ["group", "batch", "none"],
        key=_key(prefix, "scale_rewards"),
        help=help_text("scale_rewards"),
    )


def form_part(store, dataset: str | None, prefix: str = "new") -> None:
    """The method's own widgets inside the run form."""
    method = chosen_method()
    if method == "kto":
        st.subheader("KTO data and weights")
        _kto_part(store, dataset)
    elif method == "grpo":
        st.subheader("Rewards")
        _grpo_part(prefix)


def _w(value: float) -> str:
    return "" if value == 1.0 else f"@{value:g}"


def reward_specs(prefix: str = "new") -> list[str]:
    """The reward specs the picker holds, as `--reward` would take them."""
    s = st.session_state
    out = []
    for kind in ("regex", "json-schema", "length", "judge"):
        if s.get(_key(prefix, f"{kind}_on")):
            out.append(
                f"{kind}:{s.get(_key(prefix, f'{kind}_arg'), '')}"
                + _w(s.get(_key(prefix, f"{kind}_w"), 1.0))
            )
    if s.get(_key(prefix, "reference_on")):
        tol = float(s.get(_key(prefix, "reference_arg")) or 0.0)
        head = f"reference:numeric:{tol:g}" if tol else "reference"
        out.append(head + _w(s.get(_key(prefix, "reference_w"), 1.0)))
    weight = _w(s.get(_key(prefix, "files_w"), 1.0))
    out += [f + weight for f in s.get(_key(prefix, "files")) or []]
    return out


def run_fields(ctx, fields: dict, dataset: str, prefix: str = "new") -> dict:
    """The run fields of the method picked, on top of the form's (ValueError says what is
    wrong): KTO reads the dataset's verdicts and the feedback set; GRPO adds the rewards."""
    method = chosen_method()
    fields = {**fields, "method": method}
    if method == "sft":
        return fields
    fields.pop("init_adapter", None)
    s = st.session_state
    if method == "kto":
        for name in ("desirable_weight", "undesirable_weight"):
            fields[name] = float(s.get(_key(prefix, name)) or 0.0) or None
        feedback = s.get(FEEDBACK)
        return {
            **fields,
            **kto_fields(ctx, dataset=dataset, feedback=None if feedback == NO_SET else feedback),
        }
    fields["rewards"] = reward_specs(prefix)
    fields["judge_model"] = s.get(_key(prefix, "judge_model")) or ""
    fields["judge_base_url"] = s.get(_key(prefix, "judge_base_url")) or None
    fields["scale_rewards"] = s.get(_key(prefix, "scale_rewards")) or "group"
    return fields


def add_file_form() -> None:
    """Add a Python reward function file to the workspace (leads and admins)."""
    with st.expander("Add a reward function file"), st.form("training_reward_file"):
        st.text_input("Name (rewards/NAME.py)", key=UPLOAD_NAME)
        st.file_uploader("Python file", type=["py"], key=UPLOAD)
        if st.form_submit_button("Add"):
            upload = st.session_state.get(UPLOAD)
            if upload is None:
                st.error("Choose a .py file first.")
                return
            try:
                got = add_reward_file(
                    auth.ctx(),
                    st.session_state.get(UPLOAD_NAME) or upload.name,
                    upload.getvalue().decode("utf-8"),
                )
            except (ValueError, UnicodeDecodeError) as exc:
                st.error(str(exc))
                return
            st.success(f"Added {got['path']}: {', '.join(got['functions'])}")


def run_panel(store, run_id: str) -> None:
    """A GRPO run's reward/<function> curves and its sampled answers with their rewards."""
    df = runs_store.run_metrics(store, [run_id])
    if df.empty:
        return
    rewards = sorted(n for n in set(df["name"]) if n.startswith("reward/") and "/std" not in n[7:])
    if not rewards:
        return
    fig = figure("Rewards", "step", "mean reward per step")
    for name in rewards:
        part = df[df["name"] == name].sort_values("step")
        spread = df[df["name"] == f"{name}/std"].sort_values("step")
        fig.add_scatter(
            x=part["step"],
            y=part["value"],
            name=name,
            mode="lines",
            line={"color": color_for(run_id + name)},
            error_y={"type": "data", "array": spread["value"].tolist(), "visible": True}
            if len(spread) == len(part)
            else None,
        )
    st.plotly_chart(fig, width="stretch")
    samples = run_completions(store, run_id)
    with st.expander(f"Sampled answers with their rewards ({len(samples)})"):
        if samples:
            table = pd.DataFrame(
                [
                    {
                        "step": s["step"],
                        "prompt": s["prompt"],
                        "answer": s["completion"],
                        **{f"reward/{k}": v for k, v in s["rewards"].items()},
                    }
                    for s in samples
                ]
            )
            st.dataframe(table, hide_index=True, width="stretch")
        else:
            st.caption("Answers appear after the first logged step.")
