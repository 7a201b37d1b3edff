"""`ftstudio prefs ...`: comparison sets, the judge, agreement, the leaderboard, and preference
sets in and out.

    ftstudio prefs compare cmp1 --source RUN_A --source RUN_B --analyst ann --analyst bob
    ftstudio prefs answer --model workspace/models/tiny-llama --prompts-from RUN_A
    ftstudio prefs judge cmp1 --model gpt-4o-mini [--base-url URL] [--detach]
    ftstudio prefs agreement [--set cmp1] [--json]
    ftstudio prefs leaderboard [--json]
    ftstudio prefs build support-prefs --from cmp1
    ftstudio prefs import NAME FILE --format hh-rlhf|dpo-jsonl|ratings|kto-jsonl [--skip-invalid]
    ftstudio prefs skipped NAME [--version N]         (the rows an import did not store)
    ftstudio prefs export NAME --format dpo-jsonl --out FILE [--plain]
    ftstudio prefs export NAME --format kto-jsonl --out FILE [--reviews DATASET]
    ftstudio prefs push SET [--raters 2] [--json]     (Label Studio: Pairwise / Ranker project)
    ftstudio prefs pull SET [--json]                  (idempotent by annotation id)
    ftstudio train --method dpo --prefs NAME --base-model DIR
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from backend.action import AlreadyDone
from backend.cli import common
from backend.integrations.labelstudio.client import LabelStudioError
from backend.prefs import actions, launch
from backend.store import prefs as S

app = typer.Typer(
    no_args_is_help=True, help="Rank outputs, judge, leaderboard, preference data for DPO."
)


@app.command("compare")
def compare_cmd(
    name: str,
    source: Annotated[list[str], typer.Option(help="Run id or source id (two or more).")],
    analyst: Annotated[list[str], typer.Option(help="Analyst names.")],
    mode: str = typer.Option("pairwise", help="pairwise | ranking."),
    overlap: float = typer.Option(0.2, help="Share of items given to two analysts."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Make a blind comparison set from the generations of two or more sources."""
    with common.opened() as ctx:
        try:
            cs = actions.create_comparison_set(
                ctx, name, sources=source, mode=mode, analysts=analyst, overlap=overlap, seed=seed
            )
        except AlreadyDone as exc:
            return common.already(exc, as_json)
        except ValueError as exc:
            common.fail(str(exc), code=2)
    common.out(
        cs,
        as_json,
        f"comparison set {cs['name']}: {cs['n_items']} items for {', '.join(cs['analysts'])}",
    )


@app.command("answer")
def answer_cmd(
    model: str = typer.Option(
        ..., help="Local model folder (the base model) or endpoint model name."
    ),
    provider: str = typer.Option("local", help="local | openai."),
    prompts_from: str = typer.Option(..., help="Answer the prompts of this run / source."),
    base_url: str = typer.Option(None, help="Endpoint base URL (openai)."),
    api_key: str = common.API_KEY_OPTION,
    max_new_tokens: int = typer.Option(64),
    detach: bool = typer.Option(False),
) -> None:
    """Answer a run's eval prompts with the base model or an endpoint: a new source
    (base:<folder> / endpoint:<model>) for comparison sets."""
    with common.opened() as ctx:
        try:
            job_id = launch.launch_answers(
                ctx,
                model=model,
                provider=provider,
                prompts_from=prompts_from,
                base_url=base_url,
                max_new_tokens=max_new_tokens,
                api_key=api_key,
            )
        except ValueError as exc:
            common.fail(str(exc), code=2)
    typer.echo(f"queued answer job {job_id}")
    if not detach:
        common.follow(job_id)


@app.command("judge")
def judge_cmd(
    comparison_set: str,
    model: str = typer.Option("", help="Judge model (default: Settings)."),
    provider: str = typer.Option("openai", help="openai | local."),
    base_url: str = typer.Option(None, help="OpenAI-compatible base URL."),
    api_key: str = common.API_KEY_OPTION,
    limit: int = typer.Option(None, help="Judge at most N pairs."),
    rejudge: bool = typer.Option(False, help="Ask again about judged items."),
    detach: bool = typer.Option(False, help="Queue and return."),
) -> None:
    """Ask an LLM judge about every item of a comparison set: each pair twice with positions
    swapped; a ranking item as a round robin of its pairs, ranked by Copeland score."""
    with common.opened() as ctx:
        try:
            job_id = launch.launch_judge(
                ctx,
                comparison_set,
                model=model or (ctx.settings.llm_model or ""),
                provider=provider,
                base_url=base_url,
                limit=limit,
                rejudge=rejudge,
                api_key=api_key,
            )
        except AlreadyDone as exc:
            return common.already(exc, False)
        except ValueError as exc:
            common.fail(str(exc), code=2)
    typer.echo(f"queued judge job {job_id}")
    if not detach:
        common.follow(job_id)


def _judgement_rows(set_name: str | None, source: str | None) -> list[dict]:
    """The latest judgements (of one set when named); exit 2 naming an unknown set."""
    with common.opened() as ctx:
        try:
            set_id = S.get_comparison_set(ctx.store, set_name)["id"] if set_name else None
            return S.judgements(ctx.store, set_id=set_id, source=source)
        except ValueError as exc:
            common.fail(str(exc), code=2)


@app.command("leaderboard")
def leaderboard_cmd(
    set_name: str = typer.Option(None, "--set", help="One comparison set."),
    source: str = typer.Option(None, help="human | judge (default: both)."),
    n_boot: int = typer.Option(200, help="Bootstrap resamples."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Bradley-Terry ratings with bootstrap intervals and the win-rate matrix."""
    from backend.prefs.leaderboard import leaderboard, outcome_groups

    rows = _judgement_rows(set_name, source)
    board = leaderboard(outcome_groups(rows), n_boot=n_boot)
    if as_json:
        common.emit_json(board)
        return
    if not board["ratings"]:
        typer.echo(
            "no decided comparisons yet: rank pairs on the Preferences page or run "
            "`ftstudio prefs judge`"
        )
    for r in board["ratings"]:
        typer.echo(
            f"{r['source']:40} {r['rating']:7.1f}  [{r['ci_low']:.1f}, {r['ci_high']:.1f}]"
            f"  n={r['comparisons']}"
        )


@app.command("agreement")
def agreement_cmd(
    set_name: str = typer.Option(None, "--set", help="One comparison set."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Inter-annotator and judge-human agreement, with and without ties."""
    from backend.prefs.agreement import annotator_agreement, judge_human_agreement

    rows = _judgement_rows(set_name, None)
    human = [r for r in rows if r["source"] == "human" and r["verdict"] != "ranking"]
    judge = [r for r in rows if r["source"] == "judge"]
    out = {
        f"analysts_{k}": annotator_agreement(human, ties=t)
        for k, t in (("with_ties", True), ("without_ties", False))
    }
    out.update(
        {
            f"judge_{k}": judge_human_agreement(human, judge, ties=t)
            for k, t in (("with_ties", True), ("without_ties", False))
        }
    )
    if as_json:
        common.emit_json(out)
        return
    for key, rep in out.items():
        extra = (
            f" alpha={rep.get('krippendorff_alpha')}"
            if "krippendorff_alpha" in rep
            else f" kappa={rep.get('cohen_kappa')} inconsistent={rep.get('inconsistent')}"
        )
        typer.echo(f"{key:22} items={rep['items']} agreement={rep['agreement']}{extra}")


@app.command("build")
def build_cmd(
    name: str,
    from_set: Annotated[list[str], typer.Option("--from", help="Comparison set(s).")],
    human_only: bool = typer.Option(False, help="Leave judge verdicts out."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """A new preference set version from decided comparisons (ties etc. dropped)."""
    with common.opened() as ctx:
        try:
            v = actions.build_preference_set(
                ctx, name, from_set, sources=("human",) if human_only else ("human", "judge")
            )
        except AlreadyDone as exc:
            return common.already(exc, as_json)
        except ValueError as exc:
            common.fail(str(exc), code=2)
    common.out(v, as_json, f"{name} v{v['number']}: {v['n_pairs']} pairs; dropped {v['dropped']}")


@app.command("import")
def import_cmd(
    name: str,
    file: Path,
    fmt: str = typer.Option(
        ..., "--format", help="hh-rlhf | dpo-jsonl | ratings | kto-jsonl (a KTO feedback set)."
    ),
    skip_invalid: bool = typer.Option(
        False,
        "--skip-invalid",
        help="Store the valid rows and report each invalid one (line and reason); by default "
        "one invalid row stores nothing.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import external preference data as a new version of preference set NAME (kto-jsonl:
    prompt / completion / label rows into feedback set NAME)."""
    if fmt == "kto-jsonl":
        return _import_kto(name, file, skip_invalid, as_json)
    with common.opened(ingest=False) as ctx:
        try:
            v = actions.import_preferences(ctx, name, file, fmt, skip_invalid=skip_invalid)
        except AlreadyDone as exc:
            return common.already(exc, as_json)
        except ValueError as exc:
            common.fail(str(exc), code=2)
    if as_json:
        common.emit_json(v)
        return
    typer.echo(f"{name} v{v['number']}: {v['n_pairs']} pairs imported; dropped {v['dropped']}")
    report = v.get("skipped") or {}
    invalid = [r for r in report.get("rows", []) if r.get("invalid")]
    if report.get("invalid"):
        typer.echo(f"skipped {report['invalid']} invalid rows (kept with the version):")
        for r in invalid:
            typer.echo(f"  line {r['line']}: {r['reason']}")
        if report.get("more"):
            typer.echo(f"  (and {report['more']} more rows not stored, not listed)")


def _import_kto(name: str, file: Path, skip_invalid: bool, as_json: bool) -> None:
    """`prefs import NAME FILE --format kto-jsonl`: rows into feedback set NAME."""
    from backend.prefs.kto_actions import import_feedback

    with common.opened(ingest=False) as ctx:
        try:
            got = import_feedback(ctx, name, file, skip_invalid=skip_invalid)
        except ValueError as exc:
            common.fail(str(exc), code=2)
    if as_json:
        common.emit_json(got)
        return
    typer.echo(f"{name}: {got['new']} new, {got['updated']} changed, {got['unchanged']} known rows")
    for r in got["invalid"]:
        typer.echo(f"  skipped line {r['line']}: {r['reason']}")


@app.command("skipped")
def skipped_cmd(
    name: str,
    version: str = typer.Option(None, help="Version number or id (default: latest)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The rows an import of NAME did not store, each with its line and reason."""
    with common.opened(ingest=False) as ctx:
        try:
            v = S.resolve_preference_version(ctx.store, name, version)
        except ValueError as exc:
            common.fail(str(exc), code=2)
    report = v.get("skipped") or {"invalid": 0, "dropped": 0, "rows": [], "more": 0}
    if as_json:
        common.emit_json(report)
        return
    typer.echo(
        f"{name} v{v['number']}: {report['invalid']} invalid rows skipped, "
        f"{report['dropped']} dropped"
    )
    for r in report["rows"]:
        typer.echo(f"  line {r['line']}: {r['reason']}")
    if report.get("more"):
        typer.echo(f"  (and {report['more']} more, not kept)")


@app.command("export")
def export_cmd(
    name: str,
    out: Annotated[Path, typer.Option(help="JSONL file to write.")],
    fmt: str = typer.Option("dpo-jsonl", "--format", help="dpo-jsonl | kto-jsonl."),
    version: str = typer.Option(None, help="Version number or id (default: latest)."),
    plain: bool = typer.Option(False, help="Plain strings instead of chat turns."),
    reviews: str = typer.Option(
        None, help="kto-jsonl: also the review verdicts of this dataset (NAME '-' for only those)."
    ),
) -> None:
    """Write a preference set version in TRL's DPO format (prompt / chosen / rejected), or
    (kto-jsonl) feedback set NAME and a dataset's verdicts as prompt / completion / label."""
    if fmt == "kto-jsonl":
        from backend.prefs.kto_actions import export_feedback

        with common.opened(ingest=False) as ctx:
            try:
                got = export_feedback(
                    ctx, out, feedback=None if name == "-" else name, dataset=reviews
                )
            except ValueError as exc:
                common.fail(str(exc), code=2)
        typer.echo(
            f"wrote {got['written']} rows ({got['desirable']} desirable, "
            f"{got['undesirable']} undesirable) to {out}"
        )
        return
    if fmt != "dpo-jsonl":
        common.fail(f"format {fmt!r} is unknown; use dpo-jsonl or kto-jsonl", code=2)
    with common.opened(ingest=False) as ctx:
        try:
            v = actions.export_file(ctx, name, out, version=version, conversational=not plain)
        except ValueError as exc:
            common.fail(str(exc), code=2)
    typer.echo(f"wrote {v['written']} pairs of {v['name']} v{v['number']} to {out}")


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Comparison sets and preference sets."""
    with common.opened() as ctx:
        data = {
            "comparison_sets": S.list_comparison_sets(ctx.store),
            "preference_sets": S.list_preference_sets(ctx.store),
        }
    if as_json:
        common.emit_json(data)
        return
    for cs in data["comparison_sets"]:
        typer.echo(
            f"compare {cs['name']:30} {cs['mode']:9} {cs['n_judged']}/{cs['n_items']} judged"
        )
    for ps in data["preference_sets"]:
        typer.echo(f"prefs   {ps['name']:30} v{ps['number']} {ps['n_pairs']} pairs")


@app.command("push")
def push_cmd(
    set_name: str = typer.Argument(..., metavar="SET"),
    raters: int = typer.Option(2, help="Annotators per overlap task."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Push a comparison set to Label Studio (Pairwise or Ranker project)."""
    with common.opened() as ctx:
        try:
            res = actions.push_to_labelstudio(ctx, set_name, raters=raters)
        except AlreadyDone as exc:
            return common.already(exc, as_json)
        except (ValueError, LabelStudioError) as exc:
            common.fail(str(exc), code=2)
    common.out(
        res,
        as_json,
        f"pushed {res['tasks']} tasks of {res['set']} ({res['mode']}) -> {res['url']}",
    )


@app.command("pull")
def pull_cmd(
    set_name: str = typer.Argument(..., metavar="SET"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Pull judgements of a pushed set from Label Studio (pulling twice adds nothing)."""
    with common.opened() as ctx:
        try:
            res = actions.pull_from_labelstudio(ctx, set_name)
        except (ValueError, LabelStudioError) as exc:
            common.fail(str(exc), code=2)
    if as_json:
        common.emit_json(res)
        return
    typer.echo(
        f"{res['annotations']} annotations: {res['new']} new, {res['updated']} "
        f"updated, {res['unchanged']} unchanged; {len(res['skipped'])} skipped"
    )
    for s in res["skipped"][:10]:
        typer.echo(f"  skipped annotation {s['annotation']}: {s['why']}")


def kto_fields(dataset: str | None, feedback: str | None) -> dict[str, Any]:
    """Spec fields of a KTO run on a dataset's verdicts and/or a feedback set (for `ftstudio
    train --method kto`)."""
    from backend.prefs.kto_actions import kto_fields as fields_of

    with common.opened() as ctx:
        try:
            return fields_of(ctx, dataset=dataset, feedback=feedback)
        except ValueError as exc:
            common.fail(str(exc), code=2)


def dpo_fields(prefs: str, version: str | None) -> dict[str, Any]:
    """Spec fields of a DPO run on preference set `prefs` (for `ftstudio train --prefs`)."""
    with common.opened() as ctx:
        try:
            return launch.dpo_fields(ctx, prefs, version)
        except ValueError as exc:
            common.fail(str(exc), code=2)
