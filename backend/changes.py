"""Change counters: one number per kind of data, bumped when that data changes in this
process (the ingestion loop storing a job's rows, an action committing), read by the
dashboard's live views, which redraw when a number they drew from has moved.

Kinds: jobs, datasets, scores, reviews, runs, prefs, drift, users, settings, audit.
"""

from __future__ import annotations

import threading

KINDS = (
    "jobs",
    "datasets",
    "scores",
    "reviews",
    "runs",
    "prefs",
    "drift",
    "users",
    "settings",
    "audit",
)

# a job folder's file (or the review inbox) -> the kind of data its rows are
FILE_KINDS = {
    "events.jsonl": "jobs",
    "metrics.jsonl": "runs",
    "run.jsonl": "runs",
    "run_eval.jsonl": "runs",
    "generations.jsonl": "runs",
    "completions.jsonl": "runs",
    "sweep_trials.jsonl": "runs",
    "scores.jsonl": "scores",
    "drift_results.jsonl": "drift",
    "generated.jsonl": "datasets",
    "rejects.jsonl": "datasets",
    "result.jsonl": "datasets",
    "judgements.jsonl": "prefs",
    "export.jsonl": "runs",
    "eval_results.jsonl": "runs",
    "harness_suites.jsonl": "runs",
    "harness_results.jsonl": "runs",
    "review/webhooks/inbox.jsonl": "reviews",
}

# a job kind -> the kind of data it ends in (its state change redraws those views too)
JOB_KINDS = {
    "generate": "datasets",
    "score": "scores",
    "quality-judge": "scores",
    "train": "runs",
    "sweep-optuna": "runs",
    "demo-model": "runs",
    "judge": "prefs",
    "answer": "prefs",
    "drift": "drift",
    "export": "runs",
    "eval": "runs",
    "harness": "runs",
}

# an audited action's prefix -> the kind of data it changes
ACTION_KINDS = {
    "dataset": "datasets",
    "review": "reviews",
    "labelstudio": "settings",
    "prefs": "prefs",
    "monitor": "drift",
    "plan": "drift",
    "train": "runs",
    "export": "runs",
    "eval": "runs",
    "job": "jobs",
    "demo": "runs",
    "user": "users",
    "session": "users",
    "settings": "settings",
}


class Changes:
    """Thread-safe counters, one per kind; `snapshot(kinds)` is what a view drew from."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(KINDS, 0)

    def bump(self, *kinds: str) -> None:
        with self._lock:
            for kind in kinds:
                if kind in self._counts:
                    self._counts[kind] += 1

    def snapshot(self, kinds: tuple[str, ...] | list[str]) -> tuple[int, ...]:
        with self._lock:
            return tuple(self._counts.get(k, 0) for k in kinds)

    def after_action(self, name: str) -> None:
        """Bump what an audited action `name` (e.g. "review.apply") changed."""
        kind = ACTION_KINDS.get(name.split(".", 1)[0])
        self.bump("audit", *([kind] if kind else []))

    def after_ingest(self, files: list[str], job_kinds: list[str]) -> None:
        """Bump what an ingestion pass stored: rows of `files`, jobs whose state moved."""
        kinds = {FILE_KINDS[f] for f in files if f in FILE_KINDS}
        if job_kinds:
            kinds.add("jobs")
            kinds.update(JOB_KINDS[k] for k in job_kinds if k in JOB_KINDS)
        self.bump(*sorted(kinds))


CHANGES = Changes()  # the process's counters: the dashboard's threads share them
