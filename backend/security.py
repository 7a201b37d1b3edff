"""Guards for what users type and upload into the dashboard.

- `confine`: a typed path must be relative, free of `..`, and resolve inside an allowed root
  with no symlink on the way, so a form cannot read or write outside the workspace.
- `check_upload`: an uploaded file is checked by its content (not its name) and its size.
Models and adapters load with safetensors only; nothing untrusted is unpickled.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

MAX_UPLOAD_BYTES = 200 * 2**20


class UnsafePathError(ValueError):
    """A typed path that would leave its allowed folder."""


class UploadError(ValueError):
    """An upload that is not what it claims to be, or too large."""


def confine(typed: str, root: Path) -> Path:
    """Resolve `typed` inside `root` or raise `UnsafePathError` saying why.

    >>> confine("data/train.jsonl", Path("/srv/ws")).as_posix()
    '/srv/ws/data/train.jsonl'
    """
    text = typed.strip()
    if not text:
        raise UnsafePathError("empty path")
    if "\x00" in text:
        raise UnsafePathError("path contains a NUL byte")
    pure = PurePosixPath(text)
    if pure.is_absolute() or text.startswith("~"):
        raise UnsafePathError(f"{typed!r}: give a path relative to {root}, not an absolute one")
    if ".." in pure.parts:
        raise UnsafePathError(f"{typed!r}: '..' is not allowed")
    root = Path(root).resolve()
    candidate = root.joinpath(*pure.parts)
    walked = root
    for part in pure.parts:
        walked = walked / part
        if walked.is_symlink():
            raise UnsafePathError(f"{typed!r}: {walked.relative_to(root)} is a symbolic link")
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafePathError(f"{typed!r} leaves {root}")
    return resolved


def sniff(data: bytes) -> str:
    """What a file is by its bytes: parquet, jsonl, json, csv, or binary."""
    if data[:4] == b"PAR1":
        return "parquet"
    head = data[:65536]
    if b"\x00" in head:
        return "binary"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sample's end
            return "binary"
        text = head[: exc.start].decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        return "jsonl"
    return "csv"


def check_upload(
    name: str, data: bytes, allowed: set[str], max_bytes: int = MAX_UPLOAD_BYTES
) -> str:
    """The kind of an upload, or `UploadError` naming the file and what is wrong."""
    if len(data) > max_bytes:
        raise UploadError(
            f"{name}: {len(data) / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB limit"
        )
    if not data.strip():
        raise UploadError(f"{name}: the file is empty")
    kind = sniff(data)
    if kind not in allowed:
        raise UploadError(
            f"{name}: its content looks like {kind}, expected one of {', '.join(sorted(allowed))}"
        )
    return kind


def allowed_roots(settings, ws, *, models: bool = False) -> list[Path]:
    """The folders a typed path may name something in: the workspace, and for model folders
    also the parent of the configured FTSTUDIO_LOCAL_MODEL (where a team keeps its models)."""
    roots = [Path(ws.root).resolve()]
    local = getattr(settings, "local_model_dir", None)
    if models and local:
        parent = Path(local).expanduser().resolve().parent
        if parent not in roots:
            roots.append(parent)
    return roots


def confine_any(typed: str, roots: list[Path]) -> Path:
    """`confine` against each root in turn: the first root where the path exists, else the
    first root that accepts it; `UnsafePathError` (the first root's reason) when none does."""
    first_error: UnsafePathError | None = None
    fallback: Path | None = None
    for root in roots:
        try:
            path = confine(typed, root)
        except UnsafePathError as exc:
            first_error = first_error or exc
            continue
        if path.exists():
            return path
        fallback = fallback or path
    if fallback is not None:
        return fallback
    assert first_error is not None, "confine_any needs at least one root"
    raise first_error


def relative_to_roots(path: Path | str, roots: list[Path]) -> str:
    """How to type `path` in a form: relative to the first root holding it (as given when
    none does, and the guard will then say why it is refused)."""
    resolved = Path(path).expanduser().resolve()
    for root in roots:
        root = Path(root).resolve()
        if resolved == root or root in resolved.parents:
            return resolved.relative_to(root).as_posix() or "."
    return str(path)


def _proc_addr(hex_addr: str) -> str:
    """An address from /proc/net/tcp{,6} (little-endian hex words) as text."""
    import ipaddress

    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)


def listening_addresses(port: int) -> list[str]:
    """The local addresses this machine listens on at `port` (from /proc/net/tcp and tcp6):
    what a server really bound, whatever it was asked to bind."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(_proc_addr(address))
    return found


def loopback_only(addresses: list[str]) -> bool:
    """Whether every address is a loopback one (0.0.0.0 and :: are every interface).

    >>> loopback_only(["127.0.0.1", "::1"]), loopback_only(["0.0.0.0"]), loopback_only(["::"])
    (True, False, False)
    """
    import ipaddress

    return all(ipaddress.ip_address(a).is_loopback for a in addresses)
