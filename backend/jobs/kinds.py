"""The job kinds: a plain dict from name to where its spec class and runner live.

Specs and runners are imported lazily by dotted path, so listing jobs never imports torch.
`resource` decides concurrency: `gpu` kinds run one at a time; `api` kinds may run side by side.
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
        outputs={
            "run.jsonl": "backend.store.runs:ingest_run_rows",
            "run_eval.jsonl": "backend.store.runs:ingest_run_eval",
            "generations.jsonl": "backend.store.runs:ingest_generations",
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
        resource="gpu",
        outputs={"generations.jsonl": "backend.store.runs:ingest_generations"},
    ),
}

LIMITS = {"gpu": 1, "cpu": 2, "api": 4}


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
