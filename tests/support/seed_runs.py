"""Seed a workspace with training runs, for page tests, the browser test and the bench.

Two ways, one shape of data (curves that fall, an eval loss that bottoms out then rises a
little, a sweep over learning rate and LoRA rank):

- `seed_runs(ws, n, steps)` writes real train job folders (spec.json, status.json,
  metrics.jsonl, events.jsonl, run.jsonl, run_eval.jsonl, generations.jsonl) exactly as a
  finished `train` job leaves them, without queue markers (no worker picks them up). Pass
  `store=` to ingest them at once; a running dashboard ingests them by itself.
- `seed_bulk(store, runs, steps)` fills jobs + metrics directly inside DuckDB with range()
  (15M metric rows in seconds), then rebuilds `run_summary` and `metric_buckets`: for
  benches.

    python -m tests.support.seed_runs WORKSPACE [N] [STEPS]   # seed folders for a demo
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path

from backend.jobs.kinds import validate_spec
from backend.jobs.status import JobState, JobStatus, write_status
from backend.store import Store
from backend.workspace import Workspace

LEARNING_RATES = (1e-5, 5e-5, 1e-4, 2e-4, 5e-4)
RANKS = (4, 8, 16, 32)
PROMPTS = (
    "How do I move a task to another project in Tasklane?",
    "Why can't I see the Gantt view?",
    "Export my board to CSV, please.",
)


def train_spec(i: int, **overrides) -> dict:
    """A valid `train` spec for the i-th run of a sweep over learning rate and rank."""
    spec = {
        "base_model": "models/tiny-llama",
        "dataset": "tasklane-support",
        "dataset_version_id": None,
        "dataset_hash": "0" * 64,
        "data_path": "exports/tasklane-support-v1.jsonl",
        "learning_rate": LEARNING_RATES[i % len(LEARNING_RATES)],
        "lora_r": RANKS[(i // len(LEARNING_RATES)) % len(RANKS)],
        "lora_alpha": 2 * RANKS[(i // len(LEARNING_RATES)) % len(RANKS)],
        "batch_size": 4,
        "max_steps": 100,
        "seed": 42 + i,
        "eval_steps": 10,
    }
    spec.update(overrides)
    return validate_spec("train", spec).model_dump(mode="json")


def shape(lr: float, rank: int) -> tuple[float, float, float]:
    """(floor, decay steps, overfit slope) of a run's curves from its hyperparameters:
    the best learning rate is 1e-4, and higher ranks fit a little better and overfit sooner."""
    floor = 0.9 + 0.35 * abs(math.log10(lr) + 4) - 0.03 * math.log2(rank)
    return floor, 40 + 2e-3 / lr, 3e-3 * math.log2(rank)


def run_id_for(i: int, prefix: str = "run") -> str:
    return f"20250101-{i // 3600:02d}{(i // 60) % 60:02d}{i % 60:02d}-train-{prefix}{i:04d}"


def write_run(
    ws: Workspace,
    run_id: str,
    spec: dict,
    *,
    steps: int = 100,
    group_id: str | None = None,
    state: str = "succeeded",
    start: float | None = None,
    eval_every: int = 10,
    prompts: tuple[str, ...] = PROMPTS,
    noise_seed: int = 0,
) -> Path:
    """Write one train job folder as a finished (or running) job leaves it; atomic rename."""
    rng = random.Random(noise_seed)
    floor, tau, overfit = shape(spec["learning_rate"], spec["lora_r"])
    start = start or time.time() - 3600
    dt = 0.5 + 0.1 * spec["lora_r"] / 4
    tokens_per_step = spec["batch_size"] * 200
    metrics = []
    for step in range(1, steps + 1):
        t = start + step * dt
        loss = floor + 2.0 * math.exp(-step / tau) + rng.gauss(0, 0.03)
        row = {
            "loss": loss,
            "learning_rate": spec["learning_rate"],
            "grad_norm": 1.0 + rng.random(),
            "tokens_seen": step * tokens_per_step,
            "tokens_per_s": tokens_per_step / dt * (1 + rng.gauss(0, 0.02)),
        }
        if step % eval_every == 0 or step == steps:
            row["eval_loss"] = floor + 0.05 + 2.0 * math.exp(-step / tau) + overfit * step
        metrics.extend({"step": step, "name": k, "value": v, "t": t} for k, v in row.items())
    final_eval = metrics[-1]["value"] if metrics[-1]["name"] == "eval_loss" else None
    end = start + steps * dt
    tmp = ws.jobs / f".{run_id}.tmp"
    tmp.mkdir(parents=True)
    (tmp / "spec.json").write_text(json.dumps({"kind": "train", "spec": spec}, indent=1))
    _lines(tmp / "metrics.jsonl", metrics)
    _lines(tmp / "events.jsonl", [{"t": start, "level": "info", "message": "training on cpu"}])
    run = {
        "id": run_id,
        "method": spec["method"],
        "base_model": spec["base_model"],
        "dataset": spec["dataset"],
        "dataset_version_id": spec["dataset_version_id"],
        "dataset_hash": spec["dataset_hash"],
        "config": spec,
        "state": state,
        "device": "cpu float32 (LoRA)",
        "run_dir": str(ws.runs / run_id),
        "attempt": 1,
        "t": end,
    }
    _lines(tmp / "run.jsonl", [run])
    if state == "succeeded":
        _lines(
            tmp / "run_eval.jsonl",
            [
                {
                    "run_id": run_id,
                    "step": steps,
                    "eval_loss": final_eval,
                    "perplexity": math.exp(final_eval) if final_eval else None,
                    "first_loss": metrics[0]["value"],
                    "last_loss": floor,
                    "n_train": 90,
                    "n_eval": 10,
                }
            ],
        )
        _lines(
            tmp / "generations.jsonl",
            [
                {
                    "run_id": run_id,
                    "step": steps,
                    "prompt": p,
                    "output": f"[{run_id[-7:]}] lr={spec['learning_rate']:g}: answer {k} "
                    f"<b>as text</b> *not markdown*",
                    "params": {"temperature": 0.0},
                }
                for k, p in enumerate(prompts)
            ],
        )
    status = JobStatus(
        id=run_id,
        kind="train",
        state=JobState(state),
        title=f"sft tiny on {spec['dataset']}",
        done=steps,
        total=spec.get("max_steps") or steps,
        unit="steps",
        created=start - 5,
        started=start,
        finished=end if state != "running" else None,
        group_id=group_id,
    )
    write_status(tmp, status)
    os.rename(tmp, ws.job_dir(run_id))
    return ws.job_dir(run_id)


def _lines(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def seed_runs(
    ws: Workspace,
    n: int = 4,
    *,
    steps: int = 100,
    group_id: str | None = "sweep-demo",
    store: Store | None = None,
    prefix: str = "run",
) -> list[str]:
    """Write `n` finished runs of one sweep group; ingest them when `store` is given."""
    ws.ensure()
    ids = []
    for i in range(n):
        run_id = run_id_for(i, prefix)
        write_run(
            ws,
            run_id,
            train_spec(i, max_steps=steps),
            steps=steps,
            group_id=group_id,
            start=time.time() - 3600 + i * 60,
            noise_seed=i,
        )
        ids.append(run_id)
    if store is not None:
        from backend.ingest.jobs import ingest_all

        report = ingest_all(store, ws)
        assert not report.errors, report.errors
    return ids


def seed_bulk(
    store: Store, runs: int = 1000, steps: int = 5000, *, group_size: int = 100, batch: int = 50
) -> list[str]:
    """`runs` train jobs with `steps` x 3 metrics (loss, eval_loss, tokens_seen) generated in
    DuckDB with range(), inserted run by run (as ingestion would), then `run_summary` and
    `metric_buckets` rebuilt. Values follow `shape`; noise comes from hash() so every load is
    identical."""
    from backend.store import metric_buckets
    from backend.store.run_summary import rebuild

    lrs = "[" + ", ".join(repr(x) for x in LEARNING_RATES) + "]"
    ranks = "[" + ", ".join(str(x) for x in RANKS) + "]"
    run_sql = f"""
        SELECT r, printf('bulk-%05d', r) AS id, {lrs}[1 + r % {len(LEARNING_RATES)}] AS lr,
               {ranks}[1 + (r // {len(LEARNING_RATES)}) % {len(RANKS)}] AS rank,
               printf('sweep-%03d', r // {group_size}) AS grp
        FROM range({runs}) t(r)"""
    with store.transaction() as cur:
        cur.execute(f"""
            INSERT INTO jobs (id, kind, title, spec, state, done, total, attempt, created,
                              started, finished, group_id)
            SELECT id, 'train', 'sft tiny on tasklane-support',
                   json_object('base_model', 'models/tiny-llama', 'method', 'sft',
                               'dataset', 'tasklane-support', 'learning_rate', lr,
                               'lora_r', rank, 'lora_alpha', 2 * rank, 'batch_size', 4,
                               'max_steps', {steps}, 'seed', 42 + r),
                   'succeeded', {steps}, {steps}, 1,
                   TIMESTAMP '2025-01-01' + to_seconds(r * 600),
                   TIMESTAMP '2025-01-01' + to_seconds(r * 600),
                   TIMESTAMP '2025-01-01' + to_seconds(r * 600 + {steps}), grp
            FROM ({run_sql})""")
    # floor/tau/overfit as in `shape`, written in SQL.
    for lo in range(0, runs, batch):
        with store.transaction() as cur:
            cur.execute(f"""
                INSERT INTO metrics
                WITH p AS (SELECT id, r, 0.9 + 0.35 * abs(log10(lr) + 4) - 0.03 * log2(rank)
                                  AS floor, 40 + 2e-3 / lr AS tau, 3e-3 * log2(rank) AS overfit
                           FROM ({run_sql}) WHERE r >= {lo} AND r < {lo + batch}),
                     s AS (SELECT p.*, st AS step, 1.7e9 + r * 1e4 + st * 0.5 AS t,
                                  (hash(r, st) % 1000000) / 1e6 - 0.5 AS u
                           FROM p, range(1, {steps} + 1) q(st))
                SELECT id, step, m.name,
                       CASE m.name
                         WHEN 'loss' THEN floor + 2 * exp(-step / tau) + 0.06 * u
                         WHEN 'eval_loss' THEN floor + 0.05 + 2 * exp(-step / tau)
                                               + overfit * step / 200 + 0.01 * u
                         ELSE step * 800.0 END,
                       t
                FROM s, (VALUES ('loss'), ('eval_loss'), ('tokens_seen')) m(name)
                ORDER BY id, step, m.name""")
    with store.transaction() as cur:
        rebuild(cur)
    with store.transaction() as cur:  # the same SQL as migration 0011's backfill
        metric_buckets.rebuild(cur)
    return [f"bulk-{r:05d}" for r in range(runs)]


if __name__ == "__main__":
    root = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    sys.stdout.write("\n".join(seed_runs(Workspace(root), n, steps=steps)) + "\n")
