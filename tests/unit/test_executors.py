"""Executors without training: the run fields and their refusals, the accelerate config, each
rank's own device, a rank context that writes only on rank 0, and the owner's supervision of
real child processes (their end, a cancel, a crash)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from backend.jobs import queue
from backend.jobs.context import JobCancelled, JobContext
from backend.jobs.ranks import RankContext, read_progress, read_result, supervise
from backend.jobs.status import read_status
from backend.train import config as train_config
from backend.train.config import ConfigError, SFTRunConfig, file_fields, make_config
from backend.train.executors import accelerate_config
from backend.train.runtime import Runtime, model_kwargs


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "d.jsonl"
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path.write_text("\n".join(json.dumps(row) for _ in range(4)) + "\n")
    return path


def fields(model, data, **extra):
    return {"base_model": str(model), **file_fields(data), "quant": "none", **extra}


def test_executor_fields_are_validated(tiny_model_dir, data):
    c = SFTRunConfig(**fields(tiny_model_dir, data))
    assert (c.executor, c.processes, c.fsdp, c.ray_address) == ("local", 1, False, None)
    with pytest.raises(ConfigError, match="2 processes need executor accelerate"):
        make_config(fields(tiny_model_dir, data, processes=2))
    with pytest.raises(ConfigError, match="fsdp: FSDP needs executor accelerate"):
        make_config(fields(tiny_model_dir, data, fsdp=True))
    with pytest.raises(ConfigError, match="executor"):
        make_config(fields(tiny_model_dir, data, executor="slurm"))
    with pytest.raises(ConfigError, match="processes: the accelerate executor needs at least 2"):
        make_config(fields(tiny_model_dir, data, executor="accelerate"))
    ok = make_config(fields(tiny_model_dir, data, executor="accelerate", processes=2))
    assert ok.processes == 2


def test_ray_needs_an_address_from_the_run_or_the_settings(tiny_model_dir, data, monkeypatch):
    monkeypatch.delenv("FTSTUDIO_RAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="FTSTUDIO_RAY_ADDRESS"):
        make_config(fields(tiny_model_dir, data, executor="ray"))
    given = make_config(fields(tiny_model_dir, data, executor="ray", ray_address="http://h:1"))
    assert given.ray_address == "http://h:1"
    monkeypatch.setenv("FTSTUDIO_RAY_ADDRESS", "http://127.0.0.1:8265")
    assert make_config(fields(tiny_model_dir, data, executor="ray")).executor == "ray"


def test_a_missing_package_is_named_with_how_to_install_it(tiny_model_dir, data, monkeypatch):
    monkeypatch.setitem(
        train_config.EXECUTOR_PACKAGES, "ray", ("ray_is_not_here", "pip install 'x[ray]'")
    )
    with pytest.raises(ConfigError, match="executor: executor ray needs the ray_is_not_here"):
        make_config(fields(tiny_model_dir, data, executor="ray", ray_address="http://h:1"))
    assert train_config.missing_executor_package("local") is None
    assert train_config.missing_executor_package("accelerate") is None


def test_accelerate_config_from_the_run(tiny_model_dir, data):
    c = make_config(fields(tiny_model_dir, data, executor="accelerate", processes=2))
    cpu = accelerate_config(c, "cpu")
    assert cpu["num_processes"] == 2 and cpu["use_cpu"] is True
    assert cpu["distributed_type"] == "MULTI_GPU" and "fsdp_config" not in cpu
    assert cpu["main_process_ip"] == "127.0.0.1" and cpu["main_process_port"] > 0
    sharded = make_config(
        fields(tiny_model_dir, data, executor="accelerate", processes=2, fsdp=True)
    )
    with pytest.raises(ConfigError, match="fsdp: FSDP shards over GPUs"):
        accelerate_config(sharded, "cpu")
    gpu = accelerate_config(sharded, "cuda")
    assert gpu["distributed_type"] == "FSDP" and gpu["use_cpu"] is False
    assert gpu["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"


def test_each_rank_loads_its_4bit_model_on_its_own_gpu(monkeypatch):
    """accelerate refuses a 4-bit model placed on GPU 0 for every rank: rank N uses GPU N."""
    rt = Runtime("cuda", "bfloat16", True, True, False, False, True, "GPU")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert model_kwargs(rt)["device_map"] == {"": 0}
    monkeypatch.setenv("LOCAL_RANK", "3")
    kwargs = model_kwargs(rt)
    assert kwargs["device_map"] == {"": 3}
    assert kwargs["quantization_config"].load_in_4bit


def _job(ws):
    job_id = queue.submit(ws, "sleep", {"steps": 1})
    return job_id, ws.job_dir(job_id)


def test_only_rank_0_writes(ws):
    job_id, job_dir = _job(ws)
    before = (job_dir / "status.json").read_text()
    for rank in (1, 0):
        ctx = RankContext(ws, job_dir, rank=rank, world=2)
        ctx.event("hello", step=1)
        ctx.metric(1, loss=1.5)
        ctx.output("run.jsonl", [{"id": job_id}])
        ctx.log("a line")
        ctx.write_checkpoint({"step": 1})
        ctx.progress(1, 4, unit="steps", message="training")
        ctx.write_result("succeeded")
        ctx.close()
        if rank == 1:  # nothing at all from rank 1
            assert sorted(p.name for p in job_dir.iterdir() if not p.name.startswith(".")) == [
                "spec.json",
                "status.json",
            ]
    assert (job_dir / "status.json").read_text() == before  # the owner's file, untouched
    for name in ("events.jsonl", "metrics.jsonl", "run.jsonl"):
        assert len((job_dir / name).read_text().splitlines()) == 1, name
    assert (job_dir / "log.txt").read_text().count("a line") == 1
    assert json.loads((job_dir / "checkpoint.json").read_text()) == {"step": 1}
    assert read_progress(job_dir)["done"] == 1 and read_progress(job_dir)["total"] == 4
    assert read_result(job_dir)["state"] == "succeeded"


def _owner(ws, job_dir) -> JobContext:
    return JobContext(ws, job_dir, read_status(job_dir), heartbeat_s=0.2)


def _child(script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])


def test_supervise_mirrors_progress_and_ends_with_the_ranks(ws):
    job_id, job_dir = _job(ws)
    ctx = _owner(ws, job_dir)
    proc = _child(
        f"""
        import json, time
        from pathlib import Path
        d = Path({str(job_dir)!r})
        (d / "progress.json").write_text(json.dumps(
            {{"done": 3, "total": 3, "unit": "steps", "message": "evaluating", "t": 1.0}}))
        (d / "rank_result.json").write_text(json.dumps({{"state": "succeeded"}}))
        """
    )
    supervise(ctx, proc.poll, proc.terminate, "test ranks")
    assert ctx.status.done == 3 and ctx.status.message == "evaluating"
    ctx.close()


def test_supervise_turns_a_cancel_into_the_jobs_cancel(ws):
    job_id, job_dir = _job(ws)
    ctx = _owner(ws, job_dir)
    proc = _child(
        f"""
        import json, time
        from pathlib import Path
        d = Path({str(job_dir)!r})
        while not (d / "cancel").exists():
            time.sleep(0.05)
        (d / "rank_result.json").write_text(json.dumps({{"state": "cancelled"}}))
        """
    )
    (job_dir / "cancel").write_text("{}")
    with pytest.raises(JobCancelled):
        supervise(ctx, proc.poll, proc.terminate, "test ranks")
    ctx.close()


def test_supervise_stops_ranks_that_ignore_a_cancel_and_reports_a_crash(ws):
    job_id, job_dir = _job(ws)
    ctx = _owner(ws, job_dir)
    stuck = _child("import time; time.sleep(60)")
    (job_dir / "cancel").write_text("{}")
    with pytest.raises(JobCancelled):
        supervise(ctx, stuck.poll, stuck.terminate, "test ranks", grace_s=0.5)
    assert stuck.wait(5) != 0
    (job_dir / "cancel").unlink()
    crash = _child("raise SystemExit(7)")
    with pytest.raises(RuntimeError, match="test ranks exited with code 7"):
        supervise(ctx, crash.poll, crash.terminate, "test ranks")
    (job_dir / "rank_result.json").write_text(json.dumps({"state": "failed", "error": "E: x"}))
    crash = _child("raise SystemExit(1)")
    with pytest.raises(RuntimeError, match="E: x"):
        supervise(ctx, crash.poll, crash.terminate, "test ranks")
    ctx.close()


def test_ray_runs_fan_out_side_by_side_beside_a_local_run(ws, tiny_model_dir, data, monkeypatch):
    """A local run holds the one gpu slot; runs on the cluster (a sweep's) take cluster slots,
    so all of them are claimed at once; a second local run waits."""
    monkeypatch.setenv("FTSTUDIO_RAY_ADDRESS", "http://127.0.0.1:8265")
    local = [queue.submit(ws, "train", make_config(fields(tiny_model_dir, data))) for _ in "ab"]
    on_ray = [
        queue.submit(
            ws, "train", make_config(fields(tiny_model_dir, data, executor="ray", seed=seed))
        )
        for seed in (1, 2, 3)
    ]
    claimed = []
    while (job_id := queue.claim_next(ws)) is not None:
        claimed.append(job_id)
    assert sorted(claimed) == sorted([local[0], *on_ray])
    assert queue.running_counts(ws) == {"gpu": 1, "cluster": 3}


def test_cli_flags_choose_the_executor(ws, tiny_model_dir, data, monkeypatch):
    from typer.testing import CliRunner

    from backend.cli import app
    from backend.jobs import worker

    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    monkeypatch.delenv("FTSTUDIO_RAY_ADDRESS", raising=False)
    base = ["train", "--dataset", str(data), "--base-model", str(tiny_model_dir), "--detach"]
    refused = CliRunner().invoke(app, [*base, "--executor", "ray"])
    assert refused.exit_code == 2 and "FTSTUDIO_RAY_ADDRESS" in refused.output
    queued = CliRunner().invoke(app, [*base, "--executor", "accelerate", "--processes", "2"])
    assert queued.exit_code == 0, queued.output
    [job_id] = queue.job_ids(ws)
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert (spec["executor"], spec["processes"]) == ("accelerate", 2)
    sweep = CliRunner().invoke(
        app,
        ["sweep", "--dataset", str(data), "--base-model", str(tiny_model_dir), "--detach"]
        + ["--lr", "1e-4,5e-5", "--executor", "ray", "--ray-address", "http://127.0.0.1:1"],
    )
    assert sweep.exit_code == 0, sweep.output
    specs = [queue.read_spec(ws.job_dir(j))[1] for j in queue.job_ids(ws) if j != job_id]
    assert [s["executor"] for s in specs] == ["ray", "ray"]
