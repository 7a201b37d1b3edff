"""The DuckDB connection: one per process, a fresh cursor per call, migrations on open.

DuckDB lets one process hold a database file. `Store.open` fails with `StoreLockedError`
naming the process that holds it (from DuckDB's message and /proc) so a user knows what to stop.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from backend.store.migrations import migrate

_PID_RE = re.compile(r"\(PID (\d+)\)")
T = TypeVar("T")


class StoreLockedError(RuntimeError):
    """Another process holds the database file."""

    def __init__(self, path: Path, pid: int | None, command: str | None):
        self.path, self.pid, self.command = path, pid, command
        who = f"process {pid}" if pid else "another process"
        if command:
            who += f" ({command})"
        super().__init__(
            f"the database {path} is held by {who}. DuckDB allows one process per file: "
            "stop that process, or let the running dashboard do this work "
            "(it ingests job results itself)."
        )


def process_command(pid: int) -> str | None:
    """The command line of a local process, or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    parts = [p.decode(errors="replace") for p in raw.split(b"\0") if p]
    return " ".join(parts) or None


def holder_of(db_path: Path) -> tuple[int | None, str | None]:
    """Who holds `db_path` right now: (pid, command), or (None, None) when nobody does."""
    if not db_path.exists():
        return None, None
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.IOException as exc:
        return _holder_from_error(db_path, exc)
    except duckdb.Error:  # opened by this very process with another configuration
        return os.getpid(), process_command(os.getpid())
    con.close()
    return None, None


def _holder_from_error(db_path: Path, exc: Exception) -> tuple[int | None, str | None]:
    match = _PID_RE.search(str(exc))
    pid = int(match.group(1)) if match else None
    command = process_command(pid) if pid else None
    if command is None:
        owner = db_path.with_name(db_path.name + ".owner")
        try:
            info = json.loads(owner.read_text())
            pid = pid or info.get("pid")
            command = info.get("command")
        except (OSError, ValueError):
            pass
    return pid, command


class _Borrowed:
    """The open transaction's cursor lent to a caller that asked for a cursor of its own:
    everything passes through except `close`, which belongs to the transaction."""

    def __init__(self, cur: duckdb.DuckDBPyConnection):
        self._cur = cur

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    def close(self) -> None:
        pass


def is_conflict(exc: BaseException) -> bool:
    """A write-write conflict between two transactions (DuckDB's optimistic concurrency)."""
    return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()


def is_race(exc: BaseException) -> bool:
    """Two transactions racing on the same thing: a write-write conflict on a row, or a key
    that a concurrent transaction committed first (the same submission made twice at once;
    DuckDB reports that as a duplicate key at the INSERT, or as a constraint error at COMMIT).
    Running the change again re-reads the winner's rows."""
    text = str(exc).lower()
    if is_conflict(exc):
        return True
    if isinstance(exc, duckdb.ConstraintException):
        return "duplicate key" in text
    return isinstance(exc, duckdb.TransactionException) and "constraint" in text


class Store:
    """The one connection of this process. Use `cursor()`, `transaction()` or `write()`.

    A transaction belongs to the thread that opened it: while it is open, `transaction()`,
    `cursor()`, `rows()` and `scalar()` called from that thread join it, so a store function
    called inside an action reads what the action wrote and commits (or rolls back) with it.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path):
        self._con = con
        self.path = path
        self._lock = threading.Lock()
        self._local = threading.local()

    @classmethod
    def open(cls, path: Path, *, run_migrations: bool = True) -> Store:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                pid, command = _holder_from_error(path, exc)
                raise StoreLockedError(path, pid, command) from exc
            raise
        for private in (path, path.with_name(path.name + ".wal")):
            try:  # the database holds accounts and data: its owner's only
                private.chmod(0o600)
            except OSError:
                pass
        owner = path.with_name(path.name + ".owner")
        owner.write_text(json.dumps({"pid": os.getpid(), "command": process_command(os.getpid())}))
        store = cls(con, path)
        if run_migrations:
            with store.transaction() as cur:
                migrate(cur)
        return store

    def _active(self) -> duckdb.DuckDBPyConnection | None:
        return getattr(self._local, "cur", None)

    def in_transaction(self) -> bool:
        return self._active() is not None

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A fresh cursor (one connection shared by threads gives wrong rows otherwise); inside
        this thread's open transaction, that transaction's cursor."""
        active = self._active()
        return _Borrowed(active) if active is not None else self._con.cursor()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN ... COMMIT on a fresh cursor, ROLLBACK on any error; nested calls from the same
        thread join the outer transaction."""
        active = self._active()
        if active is not None:
            yield active
            return
        cur = self._con.cursor()
        cur.execute("BEGIN TRANSACTION")
        self._local.cur = cur
        try:
            yield cur
        except BaseException:
            self._local.cur = None
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass  # a failed COMMIT has already ended the transaction
            raise
        else:
            self._local.cur = None
            cur.execute("COMMIT")
        finally:
            self._local.cur = None
            cur.close()

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T], *, attempts: int = 8) -> T:
        """Run `fn(cur)` in one transaction and return its result. A race with another
        transaction (`is_race`: the ingestion thread, another user, the same form sent twice)
        rolls back and runs `fn` again, so it re-reads the state it checks and answers, e.g.,
        "already done"; after `attempts` races the error is raised."""
        if self.in_transaction():
            return fn(self._active())
        for attempt in range(attempts):
            try:
                with self.transaction() as cur:
                    return fn(cur)
            except duckdb.Error as exc:
                if not is_race(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))  # the winner may not have committed yet
        raise AssertionError("unreachable")

    def rows(self, sql: str, params: list[Any] | tuple | None = None) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts."""
        cur = self.cursor()
        try:
            result = cur.execute(sql, params or [])
            names = [d[0] for d in result.description]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        finally:
            cur.close()

    def scalar(self, sql: str, params: list[Any] | tuple | None = None) -> Any:
        cur = self.cursor()
        try:  # read to the end: a transaction's cursor must not keep an unfinished result
            rows = cur.execute(sql, params or []).fetchall()
            return rows[0][0] if rows else None
        finally:
            cur.close()

    def df(self, sql: str, params: list[Any] | tuple | None = None):
        """Run a query and return a pandas DataFrame."""
        cur = self.cursor()
        try:
            return cur.execute(sql, params or []).df()
        finally:
            cur.close()

    def close(self) -> None:
        self._con.close()
        owner = self.path.with_name(self.path.name + ".owner")
        try:
            info = json.loads(owner.read_text())
            if info.get("pid") == os.getpid():
                owner.unlink()
        except (OSError, ValueError):
            pass
