"""The same run through each executor: local (one process), accelerate (2 processes over gloo
on CPU, the same global batch) and ray (a Ray job on a local head this script starts and
stops). Prints each run's wall time (its job process from start to end, as the worker runs
it: start-up and model loading included), the largest per-step loss difference from the
local run, and the ray / local wall-time ratio last.

    .venv/bin/python bench/executors.py [--steps 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_data(path: Path, n: int = 64) -> Path:
    answers = ["Open Settings, then Members.", "Reports, pick the sprint, Export."]
    with open(path, "w") as fh:
        for i in range(n):
            turn = [
                {"role": "user", "content": f"Question {i}: how does this work?"},
                {"role": "assistant", "content": answers[i % 2]},
            ]
            fh.write(json.dumps({"messages": turn}) + "\n")
    return path


def start_ray(temp: str) -> str:
    dashboard = free_port()
    subprocess.run(
        [RAY, "start", "--head", f"--port={free_port()}", "--node-ip-address=127.0.0.1"]
        + ["--num-cpus=1", "--object-store-memory=80000000", "--include-dashboard=true"]
        + ["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}"]
        + ["--disable-usage-stats", f"--temp-dir={temp}"],
        check=True,
        capture_output=True,
        timeout=180,
    )
    from backend.train.ray_jobs import client

    address = f"http://127.0.0.1:{dashboard}"
    for _ in range(60):
        try:
            client(address).list_jobs()
            return address
        except Exception:
            time.sleep(1)
    raise RuntimeError(f"the Ray head at {address} did not answer")


def run(ws, fields: dict) -> tuple[float, dict[int, float]]:
    """Queue the run and run its job as the worker does (`python -m backend.jobs.run`), so
    every executor pays the same start-up of the job's process."""
    from backend.action import Ctx
    from backend.config import Settings
    from backend.jobs import queue
    from backend.train.actions import start_run

    job = start_run(
        Ctx(store=None, ws=ws, settings=Settings(), actor=None), fields, start_worker=False
    )
    assert queue.claim_next(ws) == job
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "backend.jobs.run", str(ws.root), job]
    subprocess.run(cmd, capture_output=True, timeout=900)
    wall = time.perf_counter() - t0
    queue.release(ws, job)
    status = queue.get(ws, job)
    if status.state != "succeeded":
        raise SystemExit(f"{fields.get('executor', 'local')} run {status.state}: {status.error}")
    rows = [json.loads(x) for x in (ws.job_dir(job) / "metrics.jsonl").read_text().splitlines()]
    return wall, {r["step"]: r["value"] for r in rows if r["name"] == "loss"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    from backend.train.config import file_fields
    from backend.train.demo_model import build_tiny_model
    from backend.workspace import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    os.environ["FTSTUDIO_WORKSPACE"] = str(tmp / "ws")
    ws = Workspace(tmp / "ws").ensure()
    model = build_tiny_model(tmp / "tiny")
    base = {
        "base_model": str(model),
        **file_fields(write_data(tmp / "d.jsonl")),
        "max_steps": args.steps,
        "max_length": 64,
        "eval_split": 0.0,
        "lora_dropout": 0.0,
        "save_steps": 1000,
        "n_eval_prompts": 0,
        "quant": "none",
        "learning_rate": 5e-3,
    }
    has_ray = importlib.util.find_spec("ray") is not None
    ray_temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    results = []
    try:
        local_s, local = run(ws, {**base, "batch_size": 4})
        results.append(("local", local_s, local))
        two = {"batch_size": 2, "executor": "accelerate", "processes": 2}
        results.append(("accelerate x2", *run(ws, {**base, **two})))
        if has_ray:
            address = start_ray(ray_temp)
            on_ray = {"batch_size": 4, "executor": "ray", "ray_address": address}
            results.append(("ray", *run(ws, {**base, **on_ray})))
    finally:
        if has_ray:
            subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(ray_temp, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    for name, wall, curve in results:
        diff = max(abs(curve[s] - local[s]) for s in local)
        print(f"{name:14} {wall:6.1f} s  {len(curve)} steps  max |loss - local| {diff:.2e}")
    walls = {name: wall for name, wall, _ in results}
    print(f"accelerate x2 / local wall time: {walls['accelerate x2'] / local_s:.2f}")
    if "ray" in walls:
        print(f"ray / local wall time: {walls['ray'] / local_s:.2f}")
    else:
        print("ray / local wall time: not measured (pip install 'finetune-studio[ray]')")


if __name__ == "__main__":
    main()
