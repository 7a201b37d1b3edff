"""`ftstudio eval create|run|results`: eval suites from the shell.

    ftstudio eval create support-faq faq.jsonl    # JSONL or CSV: prompt, reference, criteria
    ftstudio eval create support-heldout --dataset support
    ftstudio eval create support-prod --monitor prod
    ftstudio eval run support-faq --target base:workspace/models/tiny-llama --target RUN_ID \\
        --scorer rouge_l --scorer exact --scorer judge --judge-model gpt-4o-mini
    ftstudio eval results support-faq --json

`run` waits for the job (unless --detach) and prints the leaderboard; results live in DuckDB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backend.action import AlreadyDone
from backend.cli import common
from backend.evaluate import actions
from backend.evaluate.scorers import SCORERS

SCORER_HELP = f"One of: {', '.join(SCORERS)}."
app = typer.Typer(
    no_args_is_help=True,
    invoke_without_command=True,
    help="Eval suites: create, run, results; gate, rate, agreement; --harness TASK.",
)


@app.callback()
def harness(
    ctx: typer.Context,
    harness: str = typer.Option(None, "--harness", help="Run this lm-eval task (or group)."),
    target: Annotated[
        list[str] | None, typer.Option(help="--harness: a run id or base:PATH (repeatable).")
    ] = None,
    include: Annotated[
        Path | None, typer.Option(help="--harness: folder of local task YAMLs (offline).")
    ] = None,
    limit: int = typer.Option(None, help="--harness: samples per task (default: all)."),
    num_fewshot: int = typer.Option(None, help="--harness: few-shot examples."),
    detach: bool = typer.Option(False, help="--harness: queue and return."),
    as_json: bool = typer.Option(False, "--json", help="--harness: print JSON."),
) -> None:
    """`ftstudio eval --harness TASK --target T [--include DIR]`: an lm-evaluation-harness
    task, its per-sample scores stored as the suite lm-eval.<task>."""
    if ctx.invoked_subcommand is not None:
        return
    if not harness:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    if not target:
        common.fail("--harness needs at least one --target (a run id or base:PATH)", code=2)
    jobs = []
    with common.opened() as actx:
        try:
            for t in target:
                jobs.append(
                    actions.run_harness(
                        actx, harness, t, include_path=include, limit=limit, num_fewshot=num_fewshot
                    )
                )
        except ValueError as exc:
            common.fail(str(exc), code=2)
    if detach:
        common.out({"jobs": jobs}, as_json, "queued " + ", ".join(jobs))
        return
    for job_id in jobs:
        common.follow(job_id, quiet=as_json)
    _show_harness(harness, as_json, jobs)


def _show_harness(task: str, as_json: bool, jobs: list[str]) -> None:
    from backend.store import evals

    ws = common.workspace()
    common.ingest_now(ws)
    store = common.open_store(ws)
    try:
        suites = [s for s in evals.list_suites(store) if s["name"].startswith("lm-eval.")]
        boards = {s["name"]: evals.leaderboard(store, s["id"]) for s in suites}
    finally:
        store.close()
    mine = {
        name: kept
        for name, rows in boards.items()
        if (kept := [r for r in rows if r["job_id"] in jobs])
    }
    common.out(
        {"task": task, "jobs": jobs, "suites": mine},
        as_json,
        lambda d: "\n".join(f"suite {n}\n{_board_text(b)}" for n, b in d["suites"].items()),
    )


@app.command("create")
def create(
    suite: str,
    file: Annotated[
        Path | None, typer.Argument(help="JSONL or CSV of prompt, reference, criteria.")
    ] = None,
    dataset: str = typer.Option(None, help="Build it from this dataset's held-out split."),
    monitor: str = typer.Option(None, help="Build it from the prompts this monitor received."),
    version: str = typer.Option(None, help="Dataset version (default: latest)."),
    eval_split: float = typer.Option(0.1, help="Held-out share, as a run would hold out."),
    seed: int = typer.Option(42, help="Seed of that split."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create (the next version of) a suite from a file, a dataset's held-out split or the
    production prompts a monitor received."""
    if sum(x is not None for x in (file, dataset, monitor)) != 1:
        common.fail("give one of FILE, --dataset NAME or --monitor NAME", code=2)
    with common.opened() as ctx:
        try:
            if file is not None:
                suite_row = actions.create_suite_from_file(ctx, suite, file)
            elif monitor is not None:
                suite_row = actions.create_suite_from_monitor(ctx, suite, monitor)
            else:
                suite_row = actions.create_suite_from_dataset(
                    ctx, suite, dataset, version, eval_split=eval_split, seed=seed
                )
        except AlreadyDone as exc:
            common.already(exc, as_json)
            return
        except ValueError as exc:
            common.fail(str(exc), code=2)
    common.out(suite_row, as_json, lambda s: f"suite {s['id']}: {s['n_prompts']} prompts")


def _board_text(board: list[dict]) -> str:
    lines = [f"{'scorer':12} {'target':50} {'n':>4} {'mean':>9}  95% interval"]
    for r in board:
        lines.append(
            f"{r['scorer']:12} {r['target'][:50]:50} {r['n']:>4} {r['mean']:>9.4g}"
            f"  [{r['ci_low']:.4g}, {r['ci_high']:.4g}]"
        )
    return "\n".join(lines)


@app.command("run")
def run(
    suite: str,
    target: Annotated[list[str], typer.Option(help="Run id, base:PATH or endpoint:MODEL@URL.")],
    scorer: Annotated[list[str], typer.Option(help=SCORER_HELP)],
    baseline: str = typer.Option(None, help="Pairwise baseline (default: first base: target)."),
    judge_url: str = typer.Option(None, help="Judge endpoint base URL (default: Settings)."),
    judge_model: str = typer.Option(None, help="Judge model (default: FTSTUDIO_LLM_MODEL)."),
    max_new_tokens: int = typer.Option(64, help="Longest answer in tokens."),
    detach: bool = typer.Option(False, help="Queue and return without waiting."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run a suite against targets with scorers, as a background `eval` job."""
    with common.opened() as ctx:
        try:
            job_id = actions.run_suite(
                ctx,
                suite,
                target,
                scorer,
                baseline=baseline,
                judge_base_url=judge_url,
                judge_model=judge_model,
                max_new_tokens=max_new_tokens,
            )
        except ValueError as exc:
            common.fail(str(exc), code=2)
    if detach:
        common.out({"job_id": job_id}, as_json, f"queued eval job {job_id}")
        return
    common.follow(job_id, quiet=as_json)
    _show(suite, as_json, job_id=job_id)


def _show(suite: str, as_json: bool, job_id: str | None = None) -> None:
    from backend.store import evals

    ws = common.workspace()
    common.ingest_now(ws)
    store = common.open_store(ws)
    try:
        try:
            s = evals.get_suite(store, suite)
        except evals.SuiteNotFound as exc:
            common.fail(str(exc))
        board = evals.leaderboard(store, s["id"])
        outputs = store_outputs(store, s["id"]) if as_json else []
    finally:
        store.close()
    data = {"suite": s, "leaderboard": board, "results": outputs}
    if job_id:
        data["job_id"] = job_id
    common.out(data, as_json, lambda d: f"suite {s['id']}\n" + _board_text(d["leaderboard"]))


def store_outputs(store, suite_id: str) -> list[dict]:
    from backend.store import evals

    out = []
    for t in evals.targets_of(store, suite_id):
        out.extend({"target": t, **r} for r in evals.target_results(store, suite_id, t))
    return out


@app.command("results")
def results(suite: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A suite's leaderboard (mean and 95% interval per target and scorer) and, with --json,
    every answer with its scores."""
    _show(suite, as_json)


@app.command("gate")
def gate(
    run_id: str,
    rule: Annotated[list[str], typer.Option(help="SUITE:SCORER[:MARGIN], repeatable.")],
    promote: bool = typer.Option(False, help="Promote the run when it passes."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The promotion gate: a run becomes a candidate (or, with --promote, the project's
    promoted run) only when it beats the promoted run, else its base model, by each margin.
    Exits 1 when the run is refused."""
    with common.opened() as ctx:
        try:
            decision = actions.gate_run(ctx, run_id, rule, promote=promote)
        except AlreadyDone as exc:
            common.already(exc, as_json)
            return
        except ValueError as exc:
            common.fail(str(exc), code=2)

    def text(d: dict) -> str:
        lines = [f"run {run_id}: {d['status']} (against {d['against']})"]
        for c in d["checks"]:
            gain = "-" if c["gain"] is None else f"{c['gain']:+.4g}"
            mark = "pass" if c["passed"] else "FAIL"
            lines.append(f"  {mark} {c['suite']}:{c['scorer']} gain {gain} >= {c['margin']:g}")
        return "\n".join(lines)

    common.out(decision, as_json, text)
    if decision["status"] == "refused":
        raise typer.Exit(1)


@app.command("rate")
def rate(
    suite: str,
    target: str = typer.Option(..., help="The target whose answer is rated."),
    idx: int = typer.Option(..., help="The prompt's number in the suite (from 0)."),
    score: float = typer.Option(..., help="Your rating, 1-10."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rate one answer 1-10 (in-app rating, as the shell user), for the judge's agreement."""
    with common.opened() as ctx:
        try:
            row = actions.rate_answer(ctx, suite, target, idx, score)
        except ValueError as exc:
            common.fail(str(exc), code=2)
    common.out(row, as_json, f"rated answer #{idx} of {target}: {score:g}")


@app.command("import-ratings")
def import_ratings(
    suite: str,
    file: Path,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Import people's ratings: JSONL of {target, idx, rater, score[, source]} (e.g. a Label
    Studio rating project's export), all or nothing."""
    with common.opened() as ctx:
        try:
            row = actions.import_ratings(ctx, suite, file)
        except ValueError as exc:
            common.fail(str(exc), code=2)
    common.out(row, as_json, f"imported {row['n']} ratings into {row['suite_id']}")


@app.command("agreement")
def agreement(suite: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """How far the pointwise judge agrees with people, per rubric: Spearman, Kendall and
    Cohen's kappa (on the bands 1-3, 4-7, 8-10)."""
    ws = common.workspace()
    common.ingest_now(ws)
    store = common.open_store(ws)
    try:
        rows = actions.judge_agreement(store, suite)
    except ValueError as exc:
        common.fail(str(exc))
    finally:
        store.close()

    def text(rs: list[dict]) -> str:
        if not rs:
            return "no answer is both judged and rated by people yet"
        f = lambda v: "-" if v is None else f"{v:+.3f}"  # noqa: E731
        return "\n".join(
            f"{r['n_answers']:>4} answers {r['n_ratings']:>4} ratings  spearman {f(r['spearman'])}"
            f"  kendall {f(r['kendall'])}  kappa {f(r['kappa'])}  {r['rubric'][:60]}"
            for r in rs
        )

    common.out(rows, as_json, text)
