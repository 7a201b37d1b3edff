"""Export actions: the only way a page or a CLI command ships a run.

`start_export` checks the role (launch_job), that the run is a finished training run with an
adapter, that the base model's architecture can be written in the format asked for (a GGUF of
an architecture other than Llama is refused here, naming it), and where the export goes (a
typed folder is confined to the workspace; the default is runs/<run>/exports/<format>[-<quant>]),
then queues the `export` job through the action kernel. The same export queued or running
answers AlreadyDone.

    job_id = start_export(ctx, "20250101-...-train-ab12", "gguf", quant="q8_0")
"""

from __future__ import annotations

import json
from pathlib import Path

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx
from backend.auth import require
from backend.export.gguf import ExportError, check_supported
from backend.export.job import FORMATS, MANIFEST, ExportSpec
from backend.export.ollama import served_name
from backend.jobs import read
from backend.jobs.status import JobState, JobStatusError
from backend.workspace import Workspace

ACTIVE = (JobState.queued, JobState.running)


class _Config:
    """The fields of a model's config.json that decide whether it can be written as GGUF."""

    def __init__(self, folder: Path):
        try:
            data = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ActionError(f"base model {folder}: cannot read config.json ({exc})") from None
        self.architectures = data.get("architectures") or []
        self.model_type = data.get("model_type", "unknown")


def run_parts(ws: Workspace, run_id: str) -> tuple[str, Path]:
    """(base model, adapter folder) of a finished training run, read from its job folder (no
    database needed), or ActionError saying why not."""
    try:
        status = read.get(ws, run_id)
        _, spec = read.read_spec(ws.job_dir(status.id))
    except (read.JobError, JobStatusError) as exc:
        raise ActionError(str(exc)) from None
    if status.kind != "train":
        raise ActionError(f"job {run_id} is a {status.kind} job, not a training run")
    if status.state != JobState.succeeded:
        raise ActionError(f"run {run_id} is {status.state}; only a succeeded run can be exported")
    adapter = ws.runs / status.id / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise ActionError(f"run {run_id} has no adapter at {adapter}")
    return str(spec["base_model"]), adapter


def _default_out(ctx: Ctx, run_id: str, fmt: str, quant: str | None) -> Path:
    return ctx.ws.runs / run_id / "exports" / (fmt + (f"-{quant}" if quant else ""))


def _same_export_active(ctx: Ctx, spec: ExportSpec) -> str | None:
    for status in read.list_jobs(ctx.ws):
        if isinstance(status, JobStatusError) or status.kind != "export":
            continue
        if status.state not in ACTIVE:
            continue
        try:
            _, other = read.read_spec(ctx.ws.job_dir(status.id))
        except JobStatusError:
            continue
        if other.get("out_dir") == spec.out_dir:
            return status.id
    return None


def start_export(
    ctx: Ctx,
    run_id: str,
    fmt: str,
    *,
    quant: str | None = None,
    out: str | None = None,
    start_worker: bool = True,
) -> str:
    """Queue an export of run `run_id` as `fmt` (merged | gguf | ollama); returns the job id."""
    require(ctx.actor, "launch_job")
    if fmt not in FORMATS:
        raise ActionError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    base_model, adapter = run_parts(ctx.ws, run_id)
    if fmt != "merged":
        quant = quant or "q8_0"
        try:
            check_supported(_Config(Path(base_model)))
        except ExportError as exc:
            raise ActionError(str(exc)) from None
    target = action.typed_path(ctx, out) if out else _default_out(ctx, run_id, fmt, quant)
    target = Path(target).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not (target / MANIFEST).is_file():
            raise ActionError(
                f"out: {target} exists and is not an earlier export; pick an empty folder"
            )
    try:
        spec = ExportSpec(
            run_id=run_id,
            base_model=base_model,
            adapter=str(adapter),
            format=fmt,
            quant=quant,
            out_dir=str(target),
            name=served_name(run_id),
        )
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    active = _same_export_active(ctx, spec)
    if active:
        raise AlreadyDone(f"export job {active} is already writing {target}", active)
    job_id, _ = action.launch(
        ctx,
        "export",
        spec,
        name="export.start",
        target=run_id,
        detail={"format": fmt, "quant": quant, "out": str(target)},
        start_worker=start_worker,
    )
    return job_id
