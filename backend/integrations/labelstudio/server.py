"""A local Label Studio server in its own virtual environment, started and stopped on demand.

label-studio pins `openai<2`, so it can never share the app's environment: it lives in
`.venv-labelstudio` at the repository root (created on first use). A fresh data folder takes
about a minute of database migrations, so the first migration is kept as a template
(`.venv-labelstudio/template-data`) and every new data folder starts as a copy of it.

Only 127.0.0.1 is bound; analytics and the version check are off. The admin user and its legacy
API token are generated per data folder and kept in `credentials.json` (mode 0600) beside it;
`server.json` (no secrets) records url, port and pid so later commands find the server. The
workspace's `labelstudio/` folder and its data folder (whose database holds the token) are 0700,
and each data folder gets its own Django SECRET_KEY (in its 0600 `.env`), never the template's.

    ftstudio labelstudio up [--port 8080] | down | status
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from backend.workspace import Workspace, atomic_write_text

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(os.environ.get("FTSTUDIO_LABELSTUDIO_VENV", ROOT / ".venv-labelstudio"))
PACKAGE = "label-studio>=1.20"
ADMIN_EMAIL = "studio-admin@localhost"
# Label Studio's default SSRF block list without loopback (127.0.0.0/8, ::1), so a webhook can
# reach the studio's local receiver (backend/integrations/labelstudio/webhook.py).
BANNED_BUT_LOOPBACK = (
    "0.0.0.0/8,10.0.0.0/8,100.64.0.0/10,169.254.0.0/16,172.16.0.0/12,192.0.0.0/24,"
    "192.0.2.0/24,192.88.99.0/24,192.168.0.0/16,198.18.0.0/15,198.51.100.0/24,"
    "203.0.113.0/24,224.0.0.0/4,233.252.0.0/24,240.0.0.0/4,255.255.255.255/32,::/128,"
    "::ffff:0:0/96,::ffff:0:0:0/96,64:ff9b::/96,64:ff9b:1::/48,100::/64,2001:0000::/32,"
    "2001:20::/28,2001:db8::/32,2002::/16,fc00::/7,fe80::/10,ff00::/8"
).split(",")
_BOUND = re.compile(r"Starting development server at http://[\d.]+:(\d+)/")


class LabelStudioServerError(RuntimeError):
    """The local Label Studio could not be installed, started or found."""


@dataclass
class ServerInfo:
    url: str
    port: int
    pid: int
    data_dir: str
    started: float
    start_seconds: float

    @property
    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True


def state_dir(ws: Workspace) -> Path:
    return ws.root / "labelstudio"


def _private_dir(path: Path) -> Path:
    """`path` made (with its parents) and closed to everyone but the owner (0700)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` through a fresh 0600 temp file and an atomic rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _env_secret(env_file: Path) -> str | None:
    try:
        lines = env_file.read_text().splitlines()
    except OSError:
        return None
    found = [line.split("=", 1)[1].strip() for line in lines if line.startswith("SECRET_KEY=")]
    return found[-1] if found else None


def own_secret_key(data_dir: Path, template: Path | None = None) -> None:
    """Give the data folder its own Django SECRET_KEY (it signs sessions and JWTs): a new one
    when it has none or still carries the template's; its `.env` is 0600."""
    env_file = data_dir / ".env"
    current = _env_secret(env_file)
    if current and (template is None or current != _env_secret(template / ".env")):
        os.chmod(env_file, 0o600)
        return
    kept = []
    if env_file.exists():
        kept = [x for x in env_file.read_text().splitlines() if not x.startswith("SECRET_KEY=")]
    _write_private(env_file, "\n".join([*kept, f"SECRET_KEY={secrets.token_urlsafe(50)}", ""]))


def log_tail(path: Path, max_bytes: int = 4000, start: int = 0) -> str:
    """The end of a log (at most `max_bytes`, never before byte `start`), read from its tail."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(start, size - max_bytes))
            return fh.read(max_bytes).decode(errors="replace")
    except OSError:
        return ""


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path = VENV, *, quiet: bool = True) -> Path:
    """Create the Label Studio environment once; a no-op (milliseconds) when it is there."""
    marker = venv / ".installed"
    if marker.exists() and venv_python(venv).exists():
        return venv
    if not venv_python(venv).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    cmd = [str(venv_python(venv)), "-m", "pip", "install", PACKAGE]
    if quiet:
        cmd.insert(4, "-q")
    done = subprocess.run(cmd, capture_output=quiet, text=True)
    if done.returncode != 0:
        tail = (done.stderr or "")[-2000:] if quiet else ""
        raise LabelStudioServerError(f"pip could not install {PACKAGE} into {venv}: {tail}")
    marker.write_text(time.strftime("%Y-%m-%d %H:%M:%S"))
    return venv


def _base_env(data_dir: Path) -> dict[str, str]:
    drop = (
        "HOST",
        "PORT",
        "USERNAME",
        "PASSWORD",
        "DJANGO_SETTINGS_MODULE",
        "VIRTUAL_ENV",
        "PYTHONPATH",
    )
    env = {
        k: v for k, v in os.environ.items() if k not in drop and not k.startswith("LABEL_STUDIO_")
    }
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "PYTHONUNBUFFERED": "1",
            # webhooks may reach the studio's receiver on loopback; every other reserved
            # network stays blocked (Label Studio's own default list, less 127.0.0.0/8)
            "USE_DEFAULT_BANNED_SUBNETS": "false",
            "USER_ADDITIONAL_BANNED_SUBNETS": ",".join(BANNED_BUT_LOOPBACK),
        }
    )
    return env


def ensure_template(venv: Path = VENV) -> Path:
    """A migrated, user-free data folder to copy from (built once, about a minute)."""
    template = venv / "template-data"
    if (template / "label_studio.sqlite3").exists() and (template / ".ready").exists():
        return template
    tmp = venv / ".template-building"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    code = (
        "from label_studio.server import _setup_env, _apply_database_migrations\n"
        "_setup_env(); _apply_database_migrations()\n"
    )
    done = subprocess.run(
        [str(venv_python(venv)), "-c", code],
        env=_base_env(tmp),
        capture_output=True,
        text=True,
        cwd=tmp,
    )
    if done.returncode != 0:
        raise LabelStudioServerError(
            f"migrating a Label Studio data folder failed: {done.stderr[-2000:]}"
        )
    (tmp / ".env").unlink(missing_ok=True)  # its SECRET_KEY: each copy makes its own
    (tmp / ".ready").write_text("migrated")
    shutil.rmtree(template, ignore_errors=True)
    tmp.rename(template)
    return template


def _credentials_path(data_dir: Path) -> Path:
    return data_dir.parent / "credentials.json"


def credentials(data_dir: Path) -> dict[str, str]:
    """The admin user and token of a data folder, generated once, kept in a 0600 file."""
    path = _credentials_path(data_dir)
    if path.exists():
        os.chmod(path, 0o600)  # one written by an older version may be wider
        return json.loads(path.read_text())
    creds = {
        "username": ADMIN_EMAIL,
        "password": secrets.token_urlsafe(16),
        "token": secrets.token_hex(20),
    }
    _write_private(path, json.dumps(creds))
    return creds


def local_credentials(ws: Workspace) -> dict[str, str] | None:
    """url, username, password and token of the workspace's local server (None when it was
    never started here). For an admin who asked to see them; never shown by default."""
    path = _credentials_path(state_dir(ws) / "data")
    if not path.exists():
        return None
    info = read_info(ws)
    return {"url": info.url if info else "", **json.loads(path.read_text())}


def read_info(ws: Workspace) -> ServerInfo | None:
    path = state_dir(ws) / "server.json"
    try:
        return ServerInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def token(ws: Workspace) -> str | None:
    """The API token of the workspace's local server, or None when none was started."""
    path = _credentials_path(state_dir(ws) / "data")
    return json.loads(path.read_text())["token"] if path.exists() else None


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def status(ws: Workspace) -> dict:
    info = read_info(ws)
    if info is None:
        return {"running": False, "message": "no local Label Studio was started here"}
    running = info.alive and healthy(info.url)
    return {
        "running": running,
        "url": info.url,
        "port": info.port,
        "pid": info.pid,
        "data_dir": info.data_dir,
        "start_seconds": info.start_seconds,
    }


def up(
    ws: Workspace, port: int = 8080, *, timeout_s: float = 240.0, venv: Path = VENV
) -> tuple[ServerInfo, str]:
    """Start (or find) the workspace's local server; returns its info and API token."""
    current = read_info(ws)
    if current and current.alive and healthy(current.url):
        return current, credentials(Path(current.data_dir))["token"]
    t0 = time.time()
    ensure_venv(venv)
    folder = _private_dir(state_dir(ws))
    data_dir = folder / "data"
    if not (data_dir / "label_studio.sqlite3").exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.copytree(ensure_template(venv), data_dir)
    _private_dir(data_dir)
    own_secret_key(data_dir, venv / "template-data")
    creds = credentials(data_dir)
    env = _base_env(data_dir)
    env.update(
        {
            "LABEL_STUDIO_USERNAME": creds["username"],
            "LABEL_STUDIO_PASSWORD": creds["password"],
            "LABEL_STUDIO_USER_TOKEN": creds["token"],
        }
    )
    log_path = folder / "server.log"
    log = open(log_path, "ab")
    start_offset = log.tell()
    ls_bin = venv / "bin" / "label-studio"
    cmd = [
        str(ls_bin),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=folder,
        start_new_session=True,
    )
    log.close()
    bound = None
    while time.time() - t0 < timeout_s:
        if proc.poll() is not None:
            tail = log_tail(log_path, 2000, start_offset)
            raise LabelStudioServerError(
                f"Label Studio exited with code {proc.returncode}; the end of {log_path}:\n{tail}"
            )
        if bound is None:  # the line comes early: the start of this run's log holds it
            found = _BOUND.search(_log_since(log_path, start_offset))
            bound = int(found.group(1)) if found else None
        if bound is not None and healthy(f"http://127.0.0.1:{bound}", timeout=1.0):
            break
        time.sleep(0.3)
    else:
        _terminate(proc.pid)
        raise LabelStudioServerError(
            f"Label Studio did not answer /health within {timeout_s:.0f}s; see {log_path}"
        )
    info = ServerInfo(
        url=f"http://127.0.0.1:{bound}",
        port=bound,
        pid=proc.pid,
        data_dir=str(data_dir),
        started=time.time(),
        start_seconds=round(time.time() - t0, 1),
    )
    atomic_write_text(folder / "server.json", json.dumps(info.__dict__, indent=1))
    return info, creds["token"]


def _log_since(path: Path, start: int, max_bytes: int = 1 << 20) -> str:
    """At most `max_bytes` of the log from byte `start` (this run's first lines)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(max_bytes).decode(errors="replace")


def _terminate(pid: int, grace_s: float = 10.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.time() + grace_s
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        try:  # reap it when it is our child
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def down(ws: Workspace) -> bool:
    """Stop the workspace's local server; returns whether one was running."""
    info = read_info(ws)
    if info is None:
        return False
    was = info.alive
    if was:
        _terminate(info.pid)
    (state_dir(ws) / "server.json").unlink(missing_ok=True)
    return was
