"""What the machine's accelerator is, found without importing torch (the queue, the CLI and
the dashboard ask often and must stay fast).

`uses_cuda(setting)` answers the question every caller has: will a job that loads a model
run it on a CUDA GPU? `FTSTUDIO_DEVICE=cuda` says yes, `cpu` says no, and `auto` says yes
when an NVIDIA GPU is present AND the installed torch is a CUDA build (a CPU build of torch on
a GPU machine computes on the CPU; `ftstudio doctor` says so). torch's build is read from
`torch/version.py`, NVIDIA GPUs from `/proc/driver/nvidia/gpus` (or `nvidia-smi -L`).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=1)
def torch_cuda_build() -> str | None:
    """The CUDA version torch was built for ("12.4"), or None for a CPU build (or no torch).

    Read from torch/version.py, so torch is not imported."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    version_py = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        text = version_py.read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^cuda(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return found.group(1) if found else None


@functools.lru_cache(maxsize=1)
def nvidia_gpus() -> list[str]:
    """Names of the NVIDIA GPUs this machine has (empty when none), torch not needed."""
    root = Path("/proc/driver/nvidia/gpus")
    names: list[str] = []
    if root.is_dir():
        for info in sorted(root.glob("*/information")):
            try:
                for line in info.read_text().splitlines():
                    if line.startswith("Model:"):
                        names.append(line.split(":", 1)[1].strip())
            except OSError:
                continue
        if names:
            return names
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "-L"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        for line in out.splitlines():
            # "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)"
            found = re.match(r"GPU \d+: (.+?)(?: \(UUID.*)?$", line.strip())
            if found:
                names.append(found.group(1))
    return names


def uses_cuda(setting: str = "auto") -> bool:
    """Whether model-loading jobs run on CUDA under the device setting (auto|cpu|cuda)."""
    if setting == "cpu":
        return False
    if setting == "cuda":
        return True
    return bool(nvidia_gpus()) and torch_cuda_build() is not None


def configured_uses_cuda() -> bool:
    """`uses_cuda` under the studio's configured device (Settings.device)."""
    from backend.config import Settings

    return uses_cuda(Settings().device)


@functools.lru_cache(maxsize=1)
def driver_cuda_version() -> str | None:
    """The newest CUDA version the NVIDIA driver supports ("12.8"), from `nvidia-smi`."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"CUDA Version:\s*([0-9]+\.[0-9]+)", out)
    return found.group(1) if found else None


# CUDA builds of torch on download.pytorch.org, newest first (a wheel runs on a driver that
# supports its CUDA version or a newer one)
TORCH_CUDA_WHEELS = ("13.0", "12.9", "12.8", "12.6", "12.4", "12.1", "11.8")


def torch_install_command(torch_version: str, driver_cuda: str | None) -> str:
    """The pip command that installs the CUDA build of this torch version for the driver."""
    base = torch_version.split("+", 1)[0]

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))

    fits = [w for w in TORCH_CUDA_WHEELS if driver_cuda is None or key(w) <= key(driver_cuda)]
    tag = "cu" + (fits[0] if fits else TORCH_CUDA_WHEELS[-1]).replace(".", "")
    return (
        f".venv/bin/pip install --force-reinstall torch=={base} "
        f"--index-url https://download.pytorch.org/whl/{tag}"
    )


def cpu_torch_on_gpu(
    gpus: list[str], torch_build: str | None, torch_version: str, driver_cuda: str | None
) -> str | None:
    """What to tell a user whose machine has an NVIDIA GPU but whose torch is a CPU build
    (None when that is not the case)."""
    if not gpus or torch_build is not None:
        return None
    return (
        f"this machine has a CUDA GPU ({gpus[0]}) but torch {torch_version} is a CPU build, so "
        "every job computes on the CPU. Install the CUDA build: "
        + torch_install_command(torch_version, driver_cuda)
    )


def gpu_memory() -> tuple[int, str] | None:
    """(total bytes, name) of GPU 0 from `nvidia-smi`, so a dashboard that only estimates never
    opens a CUDA context of its own; None when nvidia-smi does not answer."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=memory.total,name", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    mib, _, name = first.partition(",")
    try:
        return int(float(mib)) * 2**20, name.strip()
    except ValueError:
        return None
