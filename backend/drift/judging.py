"""Judge quality, the submitter side: when a monitor names a `judge_model`, each drift check
also has an LLM rate the window's (prompt, response) pairs 1-10 (`quality-judge` jobs,
backend/drift/judge.py) against its rating of the newest run's held-out examples (the
training-time value; judged once per run and judge model). `prepare` writes the pairs and
returns the job specs; when both jobs have ended, `report` writes a drift_reports row:
  quality_judge  statistic = mean judge score on the window,
                 threshold = training-time mean x (1 - margin); verdict `drift` when below.
"""

from __future__ import annotations

import hashlib
from typing import Any

from backend.config import Settings
from backend.drift.examples import Prepared, sample, training_examples, window_examples
from backend.drift.monitors import QualityConfig
from backend.jsonl import write_jsonl
from backend.store import drift_quality as dq
from backend.store import monitoring as mon
from backend.store.db import Store
from backend.workspace import Workspace

METHOD = "quality_judge"


def prepare(
    store: Store,
    ws: Workspace,
    settings: Settings,
    monitor: dict,
    check_id: str,
    records: list[dict],
    cfg: QualityConfig,
    *,
    seed: int = 0,
) -> Prepared | dict:
    """The quality-judge jobs of a check, their inputs written; {} (no judge configured) or
    {"judge": why none}; never fails the drift check."""
    model = (cfg.judge_model or "").strip()
    if not model:
        return {}
    url = cfg.judge_base_url
    if not url and not settings.openai_base_url and settings.openai_api_key is None:
        settings = Settings()  # saved on the Settings page since this process started?
    if not url and not settings.openai_base_url and settings.openai_api_key is None:
        return {"judge": "no judge endpoint: set OPENAI_BASE_URL (and OPENAI_API_KEY) in Settings"}
    answered = [r for r in records if r.get("response")]
    if len(answered) < cfg.min_responses:
        return {"judge": f"{len(answered)} prompts came with responses; need {cfg.min_responses}"}
    run = mon.last_run(store)
    if run is None:
        return {"judge": "no trained run yet: judge scores are compared with a run's held-out data"}
    window = window_examples(answered, cfg.max_examples, seed)
    row = {
        "check_id": check_id,
        "monitor_id": monitor["id"],
        "run_id": run["id"],
        "judge_model": model,
        "n_window": len(window),
        "margin": cfg.judge_margin,
    }
    baseline_spec = None
    try:
        base = dq.reusable_judge_baseline(store, run["id"], model)
        if base is None:
            examples, source = training_examples(store, run)
            if not examples:
                return {"judge": f"run {run['id']} has no examples with answers to judge"}
            examples = sample(examples, cfg.max_examples, seed)
            tag = hashlib.sha256(model.encode()).hexdigest()[:8]
            path = ws.root / "monitoring" / f"judge-baseline-{run['id']}-{tag}" / "examples.jsonl"
            write_jsonl(path, examples)
            baseline_spec = {"examples_path": str(path), "model": model, "base_url": url}
            base = {"baseline_source": source, "n_baseline": len(examples)}
        path = ws.root / "monitoring" / check_id / "judge_window.jsonl"
        write_jsonl(path, window)
    except (ValueError, OSError) as exc:
        return {"judge": f"not judged: {exc}"}
    return Prepared(
        kind="quality-judge",
        window_spec={"examples_path": str(path), "model": model, "base_url": url},
        baseline_spec=baseline_spec,
        row={**row, **base},
        result={"judge_run": run["id"]},
    )


def pending(store: Store, check: dict) -> bool:
    """Whether a judge job of the check is still unfinished."""
    return dq.unfinished(dq.judge_of(store, check["id"]))


def report(store: Store, check: dict) -> None:
    """Write the quality_judge report once both judge jobs succeeded (a failed judge job says
    why on Jobs; the other verdicts stand)."""
    q = dq.judge_of(store, check["id"])
    if q is None or (q["window_state"], q["baseline_state"]) != ("succeeded", "succeeded"):
        return
    window = dq.score_means(store, q["window_job_id"]).get("judge")
    base = dq.score_means(store, q["baseline_job_id"]).get("judge")
    if window is None or base is None:
        return
    threshold = base["mean"] * (1 - q["margin"])
    details: dict[str, Any] = {
        "training_mean": base["mean"],
        "margin": q["margin"],
        "baseline_source": q["baseline_source"],
        "run_id": q["run_id"],
        "model": q["judge_model"],
        "window_job": q["window_job_id"],
        "baseline_job": q["baseline_job_id"],
        "unit": "judge score (1-10)",
    }
    row = {
        "method": METHOD,
        "statistic": window["mean"],
        "threshold": threshold,
        "verdict": "drift" if window["mean"] < threshold else "ok",
        "n_reference": base["n"],
        "n_window": window["n"],
        "details": details,
    }
    dq.add_reports(store, check, [row])
