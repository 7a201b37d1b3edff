"""The store: migrations, cursors per call, and the lock held by another process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from backend.store import Store, StoreLockedError, holder_of, migrations


def test_migrations_apply_once_and_record_versions(tmp_path):
    path = tmp_path / "s.duckdb"
    store = Store.open(path)
    versions = [r["version"] for r in store.rows("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [v for v, _, _ in migrations.available()]
    store.close()
    again = Store.open(path)
    with again.transaction() as cur:
        assert migrations.migrate(cur) == []
    assert again.scalar("SELECT count(*) FROM schema_version") == len(versions)
    again.close()


def test_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.transaction() as cur:
        cur.execute("INSERT INTO audit_log (actor, action) VALUES ('a', 'x')")
        raise RuntimeError("boom")
    assert store.scalar("SELECT count(*) FROM audit_log") == 0


def test_threads_each_get_their_own_cursor(store):
    with store.transaction() as cur:
        cur.execute("CREATE TABLE nums AS SELECT range AS n FROM range(1000)")
    results: dict[int, int] = {}

    def worker(k: int) -> None:
        for _ in range(20):
            results[k] = store.scalar("SELECT sum(n) FROM nums WHERE n % 8 = ?", [k])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: sum(n for n in range(1000) if n % 8 == k) for k in range(8)}


def test_second_process_gets_an_error_naming_the_holder(tmp_path):
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from backend.store import Store
            s = Store.open({str(path)!r})
            print("ready", flush=True)
            time.sleep(60)
        """),
            "--marker-for-test",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError) as info:
            Store.open(path)
        err = info.value
        assert err.pid == holder.pid
        assert "--marker-for-test" in str(err)
        assert str(path) in str(err)
        assert holder_of(path)[0] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert holder_of(path) == (None, None)
    Store.open(path).close()  # free again once the holder is gone


def test_bad_migration_file_name_is_refused(tmp_path, monkeypatch):
    (tmp_path / "7_bad.sql").write_text("SELECT 1")
    monkeypatch.setattr(migrations, "HERE", tmp_path)
    with pytest.raises(ValueError, match="7_bad.sql"):
        migrations.available()


def test_a_write_conflict_between_two_threads_is_retried_not_raised(store):
    """The ingestion thread and a page writing the same row at once: DuckDB aborts one of the
    two transactions with a conflict; Store.write runs that one again, so neither caller sees
    an error and no write is lost."""
    import threading

    with store.transaction() as cur:
        cur.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)")
        cur.execute("INSERT INTO counter VALUES (1, 0)")
    meet = threading.Barrier(2)
    errors: list[BaseException] = []
    attempts: list[int] = []

    def bump(cur) -> None:
        attempts.append(1)
        n = cur.execute("SELECT n FROM counter WHERE id = 1").fetchone()[0]
        if len(attempts) <= 2:
            meet.wait(timeout=10)  # both have read before either writes: one must conflict
        cur.execute("UPDATE counter SET n = ? WHERE id = 1", [n + 1])

    def run() -> None:
        try:
            store.write(bump)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(attempts) == 3  # one of the two ran again
    assert store.scalar("SELECT n FROM counter WHERE id = 1") == 2
