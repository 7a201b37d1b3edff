"""The `harness` job: an lm-evaluation-harness task run on a base model or a run (its base
model with its adapter), its per-sample scores stored like any eval suite's.

Offline, a task works when its data is local: a task YAML in the include folder whose
`dataset_path` is a local builder (json, csv, parquet, text, arrow) or folder, with
`dataset_kwargs.data_files` relative to that YAML's folder. A hub task (its dataset_path a hub
id) needs the network: with HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set the job says so before
loading anything. Each task's samples become the suite `lm-eval.<task>` (one version per
distinct set of prompts): harness_suites.jsonl holds the suite, harness_results.jsonl one
line per sample with the target's answer and the task's per-sample metrics (acc, ...).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field

from backend.evaluate.suites import EvalTarget, suite_hash
from backend.jobs.context import JobContext
from backend.jobs.kinds import JobSpec

LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas"}
_DATASET_PATH = re.compile(r"^\s*dataset_path:\s*['\"]?([^'\"\s#]+)", re.M)
_INCLUDE = re.compile(r"^\s*include:\s*['\"]?([^'\"\s#]+)", re.M)


class HarnessError(ValueError):
    """A task that cannot run here: the message says why and what would make it run."""


class HarnessSpec(JobSpec):
    """A `harness` job: one lm-eval task (or group) on one target."""

    task: str = Field(description="lm-eval task, group or tag name.")
    include_path: str | None = Field(None, description="Folder of local task YAMLs.")
    target: EvalTarget = Field(description="A run (base model + adapter) or a base model.")
    limit: int | None = Field(None, ge=1, description="Samples per task (default: all).")
    num_fewshot: int | None = Field(None, ge=0, le=64, description="Few-shot examples.")
    batch_size: int = Field(4, ge=1, le=1024, description="Requests per forward pass.")

    def title(self) -> str:
        return f"lm-eval {self.task} on {self.target.label}"


def offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true")
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def dataset_path_of(yaml_path: Path, depth: int = 0) -> str | None:
    """The `dataset_path` a task YAML names, following its `include:` chain."""
    text = yaml_path.read_text(encoding="utf-8", errors="replace")
    found = _DATASET_PATH.search(text)
    if found:
        return found.group(1)
    inc = _INCLUDE.search(text)
    if inc and depth < 5:
        nxt = (yaml_path.parent / inc.group(1)).resolve()
        if nxt.is_file():
            return dataset_path_of(nxt, depth + 1)
    return None


def needs_network(dataset_path: str | None, base: Path) -> bool:
    """Whether a task's data comes from the Hugging Face hub rather than local files."""
    if not dataset_path or dataset_path in LOCAL_BUILDERS:
        return False
    return not (base / dataset_path).exists() and not Path(dataset_path).exists()


def check_task(manager: Any, task: str) -> Path | None:
    """The task's YAML folder; HarnessError for an unknown task or, offline, a hub task."""
    entry = manager.task_index.get(task)
    if entry is None:
        close = [t for t in manager.all_tasks if task.lower() in t.lower()][:8]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise HarnessError(f"lm-eval knows no task {task!r}{hint}")
    yaml_path = getattr(entry, "yaml_path", None)
    if yaml_path is None:
        return None
    data = dataset_path_of(Path(yaml_path))
    if offline() and needs_network(data, Path(yaml_path).parent):
        raise HarnessError(
            f"lm-eval task {task!r} reads its data from the Hugging Face hub ({data}): it "
            "needs the network, and this studio is offline. Copy the data next to a task YAML "
            "with dataset_path: json and dataset_kwargs.data_files, and pass its folder."
        )
    return Path(yaml_path).parent


@contextmanager
def _cwd(folder: Path | None):
    """Relative data_files in a task YAML resolve against its folder."""
    before = Path.cwd()
    if folder is not None:
        os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def sample_row(sample: dict) -> tuple[dict, str, dict[str, float]]:
    """(suite row, the model's answer, per-sample metrics) of one lm-eval sample."""
    args = sample.get("arguments") or [("", "")]
    first = args[0] if isinstance(args[0], list | tuple) else (args[0], "")
    resp = sample.get("filtered_resps")
    target = sample.get("target")
    reference = None if target is None else str(target)
    if isinstance(resp, list) and resp and isinstance(resp[0], list | tuple):  # loglikelihoods
        choices = [str(a[1]).strip() for a in args]
        best = max(range(len(resp)), key=lambda i: resp[i][0])
        output = choices[best] if best < len(choices) else str(best)
        if isinstance(target, int) and 0 <= target < len(choices):
            reference = choices[target]
    elif isinstance(resp, list) and resp:
        output = str(resp[0])
    else:
        output = str(resp)
    metrics = {
        m: float(sample[m])
        for m in sample.get("metrics", [])
        if isinstance(sample.get(m), int | float)
    }
    return {"prompt": str(first[0]), "reference": reference, "criteria": {}}, output, metrics


def run_harness(ctx: JobContext, spec: HarnessSpec) -> None:
    """The `harness` job's runner."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=spec.include_path) if spec.include_path else TaskManager()
    folder = check_task(manager, spec.task)
    ctx.event(f"lm-eval {spec.task} on {spec.target.label}")
    import torch

    model_args: dict[str, Any] = {"pretrained": spec.target.base_model, "dtype": "float32"}
    if spec.target.adapter:
        model_args["peft"] = spec.target.adapter
    with _cwd(folder):
        out = simple_evaluate(
            model="hf",
            model_args=model_args,
            tasks=[spec.task],
            task_manager=manager,
            device="cuda" if torch.cuda.is_available() else "cpu",
            batch_size=spec.batch_size,
            limit=spec.limit,
            num_fewshot=spec.num_fewshot,
            log_samples=True,
        )
    for task, samples in sorted((out.get("samples") or {}).items()):
        samples = sorted(samples, key=lambda s: s.get("doc_id", 0))
        parsed = [sample_row(s) for s in samples]
        rows = [p[0] for p in parsed]
        name = f"lm-eval.{task}"
        digest = suite_hash(rows)
        source = f"lm-eval:{task}" + (f"@{spec.include_path}" if spec.include_path else "")
        ctx.output(
            "harness_suites.jsonl",
            [{"suite": name, "hash": digest, "source": source, "rows": rows}],
        )
        ctx.output(
            "harness_results.jsonl",
            [
                {
                    "suite": name,
                    "hash": digest,
                    "target": spec.target.label,
                    "idx": i,
                    "output": output,
                    "scores": metrics,
                }
                for i, (_, output, metrics) in enumerate(parsed)
            ],
        )
        figures = {
            k: v for k, v in (out["results"].get(task) or {}).items() if isinstance(v, int | float)
        }
        ctx.event(f"{task}: {figures}", task=task, results=figures)
