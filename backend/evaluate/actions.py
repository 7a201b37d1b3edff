"""Evaluation actions: the only way a page or a CLI command creates an eval suite, runs one,
or gates a run's promotion.

    suite, created = create_suite_from_file(ctx, "support-faq", Path("faq.jsonl"))
    job_id = run_suite(ctx, "support-faq", ["base:models/tiny-llama", RUN_ID], ["rouge_l"])

A suite version is immutable: the same rows again answer AlreadyDone with the version that
holds them. A run target is resolved here to its base model and adapter, and its state
checked, before any job is queued.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx
from backend.auth import require
from backend.evaluate.scorers import check_scorers
from backend.evaluate.suites import (
    EvalSpec,
    EvalTarget,
    SuiteError,
    parse_suite,
    parse_target,
    suite_hash,
    write_rows,
)
from backend.store import evals
from backend.store.runs import RunNotFound, get_run

MAX_FILE_BYTES = 50 << 20


def _name(name: str) -> str:
    name = name.strip()
    if not name or not all(c.isalnum() or c in "-_." for c in name) or len(name) > 80:
        raise ActionError(f"suite name {name!r}: use letters, digits, '-', '_' or '.' (max 80)")
    return name


def create_suite(
    ctx: Ctx, name: str, rows: list[dict[str, Any]], source: str = "rows"
) -> dict[str, Any]:
    """Store `rows` as the next version of suite `name` (audit row `eval.create`).
    AlreadyDone (with the suite) when its latest version holds the same rows."""
    require(ctx.actor, "edit_data")
    name = _name(name)
    if not rows:
        raise SuiteError(f"suite {name!r}: no prompts")
    digest = suite_hash(rows)

    def write(cur) -> tuple[dict, bool]:
        suite, created = evals.insert_suite(
            cur, name, rows, source=source, content_hash=digest, actor=ctx.who
        )
        if not created:
            raise AlreadyDone(f"suite {suite['id']} already holds these prompts", suite)
        return suite, created

    suite, _ = action.change(
        ctx, "edit_data", "eval.create", name, write, detail=lambda r: {"suite": r[0]["id"]}
    )
    return suite


def create_suite_from_file(ctx: Ctx, name: str, path: str | Path) -> dict[str, Any]:
    """A suite version from a JSONL or CSV file (a typed path confined to the workspace)."""
    require(ctx.actor, "edit_data")
    file = action.typed_path(ctx, path)
    if not Path(file).is_file():
        raise SuiteError(f"no file {file}")
    if Path(file).stat().st_size > MAX_FILE_BYTES:
        raise SuiteError(f"{file}: larger than {MAX_FILE_BYTES >> 20} MB")
    rows = parse_suite(Path(file).read_text(encoding="utf-8"), Path(file).name)
    return create_suite(ctx, name, rows, source=f"file:{Path(file).name}")


def create_suite_from_dataset(
    ctx: Ctx,
    name: str,
    dataset: str,
    version: str | None = None,
    *,
    eval_split: float = 0.1,
    seed: int = 42,
) -> dict[str, Any]:
    """A suite from a dataset version's held-out split (the same split a run with this
    `eval_split` and `seed` holds out): each example's first user turn is the prompt and its
    first assistant turn the reference."""
    from backend.store.datasets import DatasetNotFound, resolve_version, version_examples
    from backend.train.common import split

    require(ctx.actor, "edit_data")
    store = action.need_store(ctx)
    try:
        v = resolve_version(store, dataset, version)
    except DatasetNotFound as exc:
        raise SuiteError(str(exc)) from None
    examples = [{"messages": e["messages"]} for e in version_examples(store, v["id"])]
    _, held = split(examples, eval_split, seed)
    rows = []
    for ex in held:
        user = next((m["content"] for m in ex["messages"] if m.get("role") == "user"), None)
        ref = next((m["content"] for m in ex["messages"] if m.get("role") == "assistant"), None)
        if user:
            rows.append({"prompt": str(user), "reference": ref, "criteria": {}})
    if not rows:
        raise SuiteError(f"dataset {dataset!r} version {v['number']}: no held-out prompts")
    return create_suite(ctx, name, rows, source=f"dataset:{v['dataset']}@{v['id']}")


def create_suite_from_monitor(
    ctx: Ctx, name: str, monitor: str, *, limit: int = 200
) -> dict[str, Any]:
    """A suite from the production prompts a monitor received: the newest `limit` distinct
    prompts, without references (score them with the judges, latency and tokens)."""
    from backend.store import monitoring, production

    require(ctx.actor, "edit_data")
    store = action.need_store(ctx)
    try:
        mon = monitoring.get_monitor(store, monitor)
    except ValueError as exc:
        raise SuiteError(str(exc)) from None
    batches = production.batches(store, mon["id"])
    newest_first = [b["id"] for b in reversed(batches)]
    rank = {batch_id: i for i, batch_id in enumerate(newest_first)}
    records = sorted(
        production.batch_records(store, newest_first),
        key=lambda r: (rank[r["batch_id"]], r["position"]),
    )
    prompts: list[str] = []
    for r in records:  # newest batch first
        if r["prompt"].strip() and r["prompt"] not in prompts:
            prompts.append(r["prompt"])
        if len(prompts) >= limit:
            break
    if not prompts:
        raise SuiteError(f"monitor {mon['name']!r} has received no prompts yet")
    rows = [{"prompt": p, "reference": None, "criteria": {}} for p in prompts]
    return create_suite(ctx, name, rows, source=f"monitor:{mon['name']}")


def _resolve(ctx: Ctx, text: str) -> EvalTarget:
    target = parse_target(text)
    if target.kind == "base":
        folder = action.typed_path(ctx, target.base_model, models=True)
        if not (Path(folder) / "config.json").is_file():
            raise SuiteError(f"target {text}: {folder} is not a transformers model folder")
        return target.model_copy(update={"base_model": str(folder)})
    if target.kind == "endpoint":
        from backend.settings.endpoints import vet

        return target.model_copy(update={"base_url": vet(ctx, target.base_url)})
    try:
        run = get_run(action.need_store(ctx), text)
    except RunNotFound as exc:
        raise SuiteError(f"target {text}: {exc}") from None
    if not run.get("adapter_path") or not Path(run["adapter_path"]).is_dir():
        raise SuiteError(f"target {text}: the run has no adapter yet (state {run['state']})")
    return target.model_copy(
        update={"base_model": run["base_model"], "adapter": run["adapter_path"]}
    )


def run_suite(
    ctx: Ctx,
    suite: str,
    targets: list[str],
    scorers: list[str],
    *,
    baseline: str | None = None,
    judge_base_url: str | None = None,
    judge_model: str | None = None,
    max_new_tokens: int = 64,
    version: int | None = None,
    start_worker: bool = True,
) -> str:
    """Queue an `eval` job of `suite` on `targets` with `scorers` (audit row `eval.run`);
    returns its job id. The pairwise judge compares with `baseline` (default: the first
    base: target)."""
    require(ctx.actor, "launch_job")
    store = action.need_store(ctx)
    try:
        s = evals.get_suite(store, suite, version)
    except evals.SuiteNotFound as exc:
        raise SuiteError(str(exc)) from None
    from backend.settings.endpoints import vet

    names = check_scorers(scorers)
    judge_base_url = vet(ctx, judge_base_url)
    if not targets:
        raise SuiteError("name at least one --target (a run id, base:PATH, endpoint:MODEL@URL)")
    resolved = [_resolve(ctx, t) for t in dict.fromkeys(targets)]
    if "pairwise" in names:
        baseline = baseline or next((t.label for t in resolved if t.kind == "base"), None)
        if baseline not in {t.label for t in resolved}:
            raise SuiteError("pairwise: add the baseline as a target (e.g. base:PATH)")
    rows = evals.suite_rows(store, s["id"])
    path = write_rows(ctx.ws.exports / f"eval-{s['id']}-{s['hash'][:12]}.jsonl", rows)
    spec = EvalSpec(
        suite=s["name"],
        suite_id=s["id"],
        prompts_path=str(path),
        targets=resolved,
        scorers=names,
        baseline=baseline,
        judge_base_url=judge_base_url,
        judge_model=judge_model,
        max_new_tokens=max_new_tokens,
    )
    job_id, _ = action.launch(
        ctx,
        "eval",
        spec,
        name="eval.run",
        target=s["id"],
        detail={"targets": list(targets), "scorers": names},
        start_worker=start_worker,
    )
    return job_id


def _same_model(label: str, base_model: str) -> bool:
    return Path(label[5:]).expanduser().resolve() == Path(base_model).expanduser().resolve()


def _figures(store, rules, run_id: str, reference: str | None, base_model: str):
    """{(suite, scorer): mean} of the run and of the reference (a run id, else the base
    target of the run's base model), from each suite's latest version; and the reference's
    target label."""
    mine: dict[tuple[str, str], float | None] = {}
    theirs: dict[tuple[str, str], float | None] = {}
    against = reference
    for suite in dict.fromkeys(r.suite for r in rules):
        try:
            s = evals.get_suite(store, suite)
        except evals.SuiteNotFound as exc:
            raise SuiteError(f"gate: {exc}") from None
        for row in evals.leaderboard(store, s["id"]):
            key = (suite, row["scorer"])
            if row["target"] == run_id:
                mine[key] = row["mean"]
            elif row["target"] == reference or (
                reference is None
                and row["target"].startswith("base:")
                and _same_model(row["target"], base_model)
            ):
                theirs[key] = row["mean"]
                against = row["target"]
    return mine, theirs, against or f"base:{base_model}"


def gate_run(ctx: Ctx, run_id: str, rules: list[str] | str, *, promote: bool = False) -> dict:
    """The promotion gate: mark `run_id` a candidate (or, with `promote`, the project's
    promoted run) only when it beats the project's promoted run, or else its base model,
    on every rule `SUITE:SCORER[:MARGIN]` (audit row `eval.gate`); otherwise the run is
    recorded as refused, with the figures. The project is the run's dataset. Both must have
    been run on the suites' latest versions (`ftstudio eval run`). Returns the decision."""
    from backend.evaluate.gate import decide, parse_rules

    require(ctx.actor, "approve_plan")
    store = action.need_store(ctx)
    parsed = parse_rules(rules)
    try:
        run = get_run(store, run_id)
    except RunNotFound as exc:
        raise ActionError(str(exc)) from None
    project = run["dataset"] or "(no dataset)"

    def txn(cur) -> dict:
        current = evals.promoted_run(cur, project)
        if promote and current == run_id:
            raise AlreadyDone(f"run {run_id} is already the promoted run of {project}")
        reference = current if current and current != run_id else None
        mine, theirs, against = _figures(store, parsed, run_id, reference, run["base_model"])
        verdict = decide(mine, theirs, parsed)
        status = ("promoted" if promote else "candidate") if verdict["passed"] else "refused"
        decision = {"run_id": run_id, "project": project, "status": status, "against": against}
        decision["id"] = evals.record_promotion(
            cur,
            project=project,
            run_id=run_id,
            status=status,
            against=against,
            gate=verdict,
            actor=ctx.who,
        )
        return {**decision, **verdict}

    return action.change(
        ctx,
        "approve_plan",
        "eval.gate",
        run_id,
        txn,
        detail=lambda d: {"status": d["status"], "against": d["against"]},
    )


def rate_answer(
    ctx: Ctx, suite: str, target: str, idx: int, score: float, *, source: str = "in-app"
) -> dict:
    """A person's 1-10 rating of one answer of a suite (audit row `eval.rate`), set against
    the judge's score when its agreement is measured; rating again replaces it."""
    require(ctx.actor, "rank")
    store = action.need_store(ctx)
    if not 1 <= float(score) <= 10:
        raise SuiteError(f"score {score}: rate from 1 to 10")
    try:
        s = evals.get_suite(store, suite)
    except evals.SuiteNotFound as exc:
        raise SuiteError(str(exc)) from None

    def write(cur) -> dict:
        if not evals.answer_exists(cur, s["id"], target, int(idx)):
            raise SuiteError(f"suite {s['id']} has no answer #{idx} of {target}")
        evals.record_rating(cur, s["id"], target, int(idx), ctx.who, float(score), source)
        return {"suite_id": s["id"], "target": target, "idx": int(idx), "score": float(score)}

    return action.change(ctx, "rank", "eval.rate", s["id"], write, detail=lambda r: r)


def import_ratings(ctx: Ctx, suite: str, path: str | Path) -> dict:
    """People's ratings from a JSONL file of {target, idx, rater, score} (e.g. exported from a
    Label Studio rating project), all or nothing (audit row `eval.import_ratings`); a bad
    line is an error naming it."""
    import json

    require(ctx.actor, "import_export")
    store = action.need_store(ctx)
    file = Path(action.typed_path(ctx, path))
    if not file.is_file():
        raise SuiteError(f"no file {file}")
    s = evals.get_suite(store, suite)
    rows = []
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            row = (str(r["target"]), int(r["idx"]), str(r["rater"]), float(r["score"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise SuiteError(
                f"{file.name} line {n}: needs target, idx, rater, score ({exc})"
            ) from None
        if not 1 <= row[3] <= 10:
            raise SuiteError(f"{file.name} line {n}: score {row[3]:g} is outside 1-10")
        rows.append((n, row, str(r.get("source") or "label-studio")))

    def write(cur) -> dict:
        for n, (target, idx, rater, score), source in rows:
            if not evals.answer_exists(cur, s["id"], target, idx):
                raise SuiteError(f"{file.name} line {n}: no answer #{idx} of {target}")
            evals.record_rating(cur, s["id"], target, idx, rater, score, source)
        return {"suite_id": s["id"], "n": len(rows)}

    return action.change(
        ctx, "import_export", "eval.import_ratings", s["id"], write, detail=lambda r: r
    )


def judge_agreement(store, suite: str) -> list[dict]:
    """Per rubric: how the suite's pointwise judge agrees with people's ratings (Spearman,
    Kendall, Cohen's kappa on bands). A read: no role needed beyond seeing the results."""
    from backend.evaluate.agreement import judge_agreement as agree
    from backend.evaluate.judges import DEFAULT_RUBRIC

    s = evals.get_suite(store, suite)
    return agree(evals.judge_scores(store, s["id"], DEFAULT_RUBRIC), evals.ratings(store, s["id"]))


def run_harness(
    ctx: Ctx,
    task: str,
    target: str,
    *,
    include_path: str | Path | None = None,
    limit: int | None = None,
    num_fewshot: int | None = None,
    start_worker: bool = True,
) -> str:
    """Queue a `harness` job: lm-eval `task` (from the task YAMLs in `include_path`, or
    lm-eval's own, which need the network) on a run or a base model (audit row
    `eval.harness`); returns its job id. Its per-sample scores become the suite
    `lm-eval.<task>`, read like any suite's."""
    from backend.evaluate.harness import HarnessSpec

    require(ctx.actor, "launch_job")
    resolved = _resolve(ctx, target)
    if resolved.kind == "endpoint":
        raise SuiteError("lm-eval runs on a run or a base model here, not on an endpoint")
    folder = None
    if include_path:
        folder = Path(action.typed_path(ctx, include_path)).expanduser().resolve()
        if not folder.is_dir() or not any(folder.glob("**/*.yaml")):
            raise SuiteError(f"include path {folder}: no folder of task YAML files")
    spec = HarnessSpec(
        task=task,
        include_path=str(folder) if folder else None,
        target=resolved,
        limit=limit,
        num_fewshot=num_fewshot,
    )
    job_id, _ = action.launch(
        ctx,
        "harness",
        spec,
        name="eval.harness",
        target=task,
        detail={"target": target, "include_path": spec.include_path},
        start_worker=start_worker,
    )
    return job_id
