"""The job kinds: a plain dict from name to where its spec class and runner live.

Specs and runners are imported lazily by dotted path, so listing jobs never imports torch.
`resource` decides concurrency: `gpu` kinds run one at a time; `api` kinds may run side by side.
A kind whose jobs may load a local model names `resource_of`, a function of the spec that says
so per job: a local-provider generate, judge or answer job is `gpu` work when the device is
CUDA (one model on the GPU at a time, never beside a training run) and `cpu` work otherwise.
`outputs` maps a JSONL file in the job folder to the store function that ingests its rows.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class JobSpec(BaseModel):
    """Base of every job spec: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")

    def title(self) -> str:
        return ""


@dataclass(frozen=True)
class Kind:
    spec: str
    run: str
    resource: str = "gpu"
    outputs: dict[str, str] = field(default_factory=dict)
    resource_of: str | None = None  # "module:function(spec dict, resource) -> resource"


KINDS: dict[str, Kind] = {
    "demo-model": Kind(
        spec="backend.train.demo_model:DemoModelSpec",
        run="backend.train.demo_model:run_job",
        resource="cpu",
    ),
    "train": Kind(
        spec="backend.train.config:RunConfig",
        run="backend.train.sft:run_train",
        resource="gpu",
        resource_of="backend.jobs.kinds:executor_resource",
        outputs={
            "run.jsonl": "backend.store.runs:ingest_run_rows",
            "run_eval.jsonl": "backend.store.runs:ingest_run_eval",
            "generations.jsonl": "backend.store.runs:ingest_generations",
            "completions.jsonl": "backend.store.feedback:ingest_completions",
            "resources.jsonl": "backend.store.run_resources:ingest_resources",
        },
    ),
    "score": Kind(
        spec="backend.review.scoring:ScoreSpec",
        run="backend.review.scoring:run_job",
        resource="gpu",
        outputs={"scores.jsonl": "backend.store.review:insert_scores"},
    ),
    "sweep-optuna": Kind(
        spec="backend.train.sweep:OptunaSweepSpec",
        run="backend.train.sweep:run_optuna",
        resource="gpu",
        outputs={"sweep_trials.jsonl": "backend.store.runs:ingest_sweep_trials"},
    ),
    "drift": Kind(
        spec="backend.drift.job:DriftSpec",
        run="backend.drift.job:run_job",
        resource="cpu",
        outputs={"drift_results.jsonl": "backend.store.monitoring:ingest_results"},
    ),
    "sleep": Kind(
        spec="backend.jobs.builtin:SleepSpec",
        run="backend.jobs.builtin:run_sleep",
        resource="api",
    ),
    "generate": Kind(
        spec="backend.synth.generate:GenerateSpec",
        run="backend.synth.generate:run_generate",
        resource="api",
        resource_of="backend.jobs.kinds:local_model_resource",
        outputs={
            "generated.jsonl": "backend.store.synth:ingest_generated",
            "rejects.jsonl": "backend.store.synth:ingest_rejects",
            "result.jsonl": "backend.store.synth:ingest_result",
        },
    ),
    "judge": Kind(
        spec="backend.prefs.judge:JudgeSpec",
        run="backend.prefs.judge:run_judge",
        resource="api",
        resource_of="backend.jobs.kinds:local_model_resource",
        outputs={"judgements.jsonl": "backend.store.prefs:ingest_judgements"},
    ),
    "quality-judge": Kind(
        spec="backend.drift.judge:QualityJudgeSpec",
        run="backend.drift.judge:run_job",
        resource="api",
        outputs={"scores.jsonl": "backend.store.review:insert_scores"},
    ),
    "answer": Kind(
        spec="backend.prefs.answers:AnswerSpec",
        run="backend.prefs.answers:run_answer",
        resource="api",
        resource_of="backend.jobs.kinds:local_model_resource",
        outputs={"generations.jsonl": "backend.store.runs:ingest_generations"},
    ),
    "export": Kind(
        spec="backend.export.job:ExportSpec",
        run="backend.export.job:run_export",
        resource="gpu",
        outputs={"export.jsonl": "backend.store.exports:ingest_exports"},
    ),
    "eval": Kind(
        spec="backend.evaluate.suites:EvalSpec",
        run="backend.evaluate.suite_job:run_eval",
        resource="gpu",
        outputs={"eval_results.jsonl": "backend.store.evals:ingest_results"},
    ),
    "harness": Kind(
        spec="backend.evaluate.harness:HarnessSpec",
        run="backend.evaluate.harness:run_harness",
        resource="gpu",
        outputs={
            "harness_suites.jsonl": "backend.store.evals:ingest_harness_suites",
            "harness_results.jsonl": "backend.store.evals:ingest_harness_results",
        },
    ),
}

LIMITS = {"gpu": 1, "cpu": 2, "api": 4, "cluster": 8}


def executor_resource(spec: dict[str, Any], resource: str) -> str:
    """A run on a Ray cluster takes a `cluster` slot, so the runs of a sweep fan out over the
    cluster side by side; any other run keeps its kind's `resource`."""
    return "cluster" if spec.get("executor") == "ray" else resource


def local_model_resource(spec: dict[str, Any], resource: str) -> str:
    """`gpu` for a job that loads a local model on CUDA, `cpu` for one that loads it on the
    CPU; an endpoint job keeps its kind's `resource`."""
    if spec.get("provider", "openai") != "local":
        return resource
    from backend.device import configured_uses_cuda

    return "gpu" if configured_uses_cuda() else "cpu"


def job_resource(kind: str, spec: dict[str, Any] | None) -> str:
    """The resource one job of `kind` with this spec takes from the worker's slots."""
    info = kind_info(kind)
    if info.resource_of is None or spec is None:
        return info.resource
    return load(info.resource_of)(spec, info.resource)


class SpecError(ValueError):
    """A job spec failed validation; the message names each bad field."""


def load(dotted: str) -> Any:
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def kind_info(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise SpecError(f"unknown job kind {kind!r}; known kinds: {known}") from None


def validate_spec(kind: str, spec: dict[str, Any] | BaseModel) -> JobSpec:
    """Validate a spec for `kind`, raising `SpecError` that lists every bad field."""
    cls = load(kind_info(kind).spec)
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, BaseModel):
        spec = spec.model_dump(mode="json")
    try:
        return cls.model_validate(spec)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(spec)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SpecError(f"invalid {kind} spec: {problems}") from None
