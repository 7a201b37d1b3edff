"""`ftstudio doctor` on the CUDA questions: a GPU with a CPU build of torch is said plainly,
with the command that installs the matching CUDA build, and bitsandbytes' CPU "kernels"
warning is a note, never printed as an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from backend import device

ROOT = Path(__file__).resolve().parents[2]


def test_a_gpu_with_a_cpu_build_of_torch_is_said_with_the_fix():
    says = device.cpu_torch_on_gpu(["NVIDIA H100 80GB HBM3"], None, "2.13.0+cpu", "12.8")
    assert says.startswith("this machine has a CUDA GPU (NVIDIA H100 80GB HBM3)")
    assert "torch 2.13.0+cpu is a CPU build" in says
    assert says.endswith(
        ".venv/bin/pip install --force-reinstall torch==2.13.0 "
        "--index-url https://download.pytorch.org/whl/cu128"
    )
    # the newest wheel the driver runs: 12.4 driver -> cu124; 13.1 -> cu130; unknown -> newest
    assert device.torch_install_command("2.13.0", "12.4").endswith("/whl/cu124")
    assert device.torch_install_command("2.13.0", "13.1").endswith("/whl/cu130")
    assert device.torch_install_command("2.13.0", None).endswith("/whl/cu130")
    assert device.cpu_torch_on_gpu(["NVIDIA L4"], "12.8", "2.13.0+cu128", "12.8") is None
    assert device.cpu_torch_on_gpu([], None, "2.13.0+cpu", None) is None


def test_doctor_shows_no_bitsandbytes_error_on_cpu(tmp_path):
    env = {
        **os.environ,
        "FTSTUDIO_WORKSPACE": str(tmp_path / "ws"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LABEL_STUDIO_URL"):
        env.pop(var, None)
    out = subprocess.run(
        [sys.executable, "-m", "backend.cli", "doctor", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(out.stdout)
    assert "Failed to load" not in out.stderr and "kernels" not in out.stderr, out.stderr
    assert not report["bitsandbytes"].startswith("unavailable")
    if not report["cuda"]:
        assert report["bnb_4bit"].startswith("available on CPU")
    if report["nvidia_gpus"] != "none found" and device.torch_cuda_build() is None:
        assert "CPU build" in report["cuda_problem"]
    else:
        assert "cuda_problem" not in report
