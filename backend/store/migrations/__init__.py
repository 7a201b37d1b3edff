"""Versioned schema migrations: `NNNN_name.sql` files in this folder, applied in order.

Each file runs once, inside the opening transaction, and is recorded in `schema_version`.
A module adds its tables by adding the next numbered file; never edit an applied one.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

HERE = Path(__file__).parent
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def available() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(HERE.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append((int(match.group(1)), match.group(2), path))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a version number in {HERE}")
    return found


def migrate(cur: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration newer than the database; return the versions applied."""
    cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    done = {row[0] for row in cur.execute("SELECT version FROM schema_version").fetchall()}
    applied = []
    for version, name, path in available():
        if version in done:
            continue
        cur.execute(path.read_text())
        cur.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
        applied.append(version)
    return applied
