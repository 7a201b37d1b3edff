"""Quality signals from the model side: how surprised the newest run is by production responses,
against how surprised it was by its own held-out data.

With each drift check the check's action queues `score` jobs (backend.review.scoring; one per
side, the job never opens DuckDB): the window's prompts that came with responses, and once per
run that run's held-out split (its training rows when it held none out). `prepare` writes their
inputs and returns their specs. When both have finished, `report` writes two drift_reports rows
for the check:
  quality_nll      statistic = mean response NLL on the window (nats/token),
                   threshold = training-time mean x (1 + margin);
  quality_entropy  the same for the mean predictive entropy.
A report over its threshold has verdict `drift` and fires the same alert and plan as drift.
"""

from __future__ import annotations

import json
from pathlib import Path

from backend.drift.examples import Prepared, sample, training_examples, window_examples
from backend.drift.monitors import QualityConfig
from backend.jsonl import write_jsonl
from backend.review.scoring import model_label
from backend.store import drift_quality as dq
from backend.store import monitoring as mon
from backend.store.db import Store
from backend.workspace import Workspace

SCORE_METHODS = {"quality_nll": "nll", "quality_entropy": "entropy"}
METHODS = {**SCORE_METHODS, "quality_judge": "judge"}  # every quality report (judging.py)


def _spec(path: Path, run: dict, max_length: int) -> dict:
    return {
        "examples_path": str(path),
        "model_path": run["base_model"],
        "adapter_path": run["adapter_path"],
        "max_length": max_length,
    }


def prepare(
    store: Store,
    ws: Workspace,
    monitor: dict,
    check_id: str,
    records: list[dict],
    cfg: QualityConfig,
    *,
    seed: int = 0,
) -> Prepared | dict:
    """The score jobs of a check's quality report, their inputs written, or {"quality": why
    none} (off, no run yet, too few responses, ...); never fails the drift check."""
    if not cfg.enabled:
        return {"quality": "quality scoring is off for this monitor"}
    answered = [r for r in records if r.get("response")]
    if len(answered) < cfg.min_responses:
        return {
            "quality": f"{len(answered)} prompts came with responses; a quality report "
            f"needs {cfg.min_responses}"
        }
    run = mon.last_run(store)
    if run is None:
        return {
            "quality": "no trained run yet: quality is measured against a run's "
            "training-time scores"
        }
    window = window_examples(answered, cfg.max_examples, seed)
    max_length = int(json.loads(run["config"] or "{}").get("max_length") or 1024)
    row = {
        "check_id": check_id,
        "monitor_id": monitor["id"],
        "run_id": run["id"],
        "model": model_label(run["base_model"], run["adapter_path"]),
        "n_window": len(window),
        "margin": cfg.margin,
    }
    baseline_spec = None
    try:
        base = dq.reusable_baseline(store, run["id"])
        if base is None:
            examples, source = training_examples(store, run)
            if not examples:
                return {"quality": f"run {run['id']} has no examples with answers to compare"}
            examples = sample(examples, cfg.max_examples, seed)
            path = ws.root / "monitoring" / f"baseline-{run['id']}" / "examples.jsonl"
            write_jsonl(path, examples)
            baseline_spec = _spec(path, run, max_length)
            base = {"baseline_source": source, "n_baseline": len(examples)}
        path = ws.root / "monitoring" / check_id / "quality_window.jsonl"
        write_jsonl(path, window)
    except (ValueError, OSError) as exc:
        return {"quality": f"not scored: {exc}"}
    return Prepared(
        kind="score",
        window_spec=_spec(path, run, max_length),
        baseline_spec=baseline_spec,
        row={**row, **base},
        result={"quality_run": run["id"]},
    )


def pending(store: Store, check: dict) -> bool:
    """Whether a quality score job of the check is still unfinished."""
    return dq.unfinished(dq.quality_of(store, check["id"]))


def report(store: Store, check: dict) -> None:
    """Write the check's quality reports once both score jobs succeeded (a failed job says
    why on Jobs; the drift verdicts then stand alone)."""
    q = dq.quality_of(store, check["id"])
    if q is None or (q["window_state"], q["baseline_state"]) != ("succeeded", "succeeded"):
        return
    window = dq.score_means(store, q["window_job_id"])
    base = dq.score_means(store, q["baseline_job_id"])
    rows = []
    for method, key in SCORE_METHODS.items():
        if key not in window or key not in base:
            continue
        threshold = base[key]["mean"] * (1 + q["margin"])
        rows.append(
            {
                "method": method,
                "statistic": window[key]["mean"],
                "threshold": threshold,
                "verdict": "drift" if window[key]["mean"] > threshold else "ok",
                "n_reference": base[key]["n"],
                "n_window": window[key]["n"],
                "details": {
                    "training_mean": base[key]["mean"],
                    "margin": q["margin"],
                    "baseline_source": q["baseline_source"],
                    "run_id": q["run_id"],
                    "model": q["model"],
                    "window_job": q["window_job_id"],
                    "baseline_job": q["baseline_job_id"],
                    "unit": "nats per response token",
                },
            }
        )
    dq.add_reports(store, check, rows)
