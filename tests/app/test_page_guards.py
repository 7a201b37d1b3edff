"""Pages guard what users type and upload, and act as the signed-in user: a typed export path
that leaves the workspace is refused with the reason, an upload is judged by its bytes, and
imports, exports and job launches are refused by role in the backend and audited."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.jobs import queue, worker
from backend.store import Store
from backend.store import datasets as dstore
from backend.store.users import audit_rows

ROOT = Path(__file__).resolve().parents[2]
LEAD = ("lee", "lead")


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


def _seed(ws) -> None:
    store = Store.open(ws.db_path)
    try:
        dstore.create_dataset(store, "support")
        dstore.add_version(
            store,
            "support",
            [
                {
                    "messages": [
                        {"role": "user", "content": f"How do I reset sprint {i}?"},
                        {"role": "assistant", "content": "Open Settings, then Reset."},
                    ]
                }
                for i in range(4)
            ],
        )
    finally:
        store.close()


def _page(name: str, who: tuple[str, str] = LEAD) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=60)
    at.session_state["actor"] = who
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _audit(ws, action: str) -> list[dict]:
    store = Store.open(ws.db_path)
    try:
        return audit_rows(store, action=action).to_dict("records")
    finally:
        store.close()


def _export(at: AppTest, typed: str) -> AppTest:
    [box] = [t for t in at.text_input if t.label.startswith("Write to")]
    box.set_value(typed)
    at.button(key="FormSubmitter:export-Export").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_typed_export_path_stays_inside_the_workspace(ws, tmp_path):
    _seed(ws)
    os.symlink(tmp_path, ws.root / "outside")
    at = _page("datasets")
    [box] = [t for t in at.text_input if t.label.startswith("Write to")]
    assert not Path(box.value).is_absolute()  # the default is typed relative to the workspace
    for typed, why in (
        ("../escape.jsonl", "'..' is not allowed"),
        (str(tmp_path / "abs.jsonl"), "not an absolute one"),
        ("outside/x.jsonl", "symbolic link"),
    ):
        _export(at, typed)
        assert any(why in e.value for e in at.error), (typed, [e.value for e in at.error])
    assert not list(tmp_path.glob("*.jsonl")) and not (ws.root.parent / "escape.jsonl").exists()
    assert _audit(ws, "dataset.export") == []

    _export(at, "exports/ok.jsonl")
    assert any("Wrote 4 examples" in s.value for s in at.success)
    assert (ws.root / "exports" / "ok.jsonl").exists()
    [row] = _audit(ws, "dataset.export")
    assert row["actor"] == "lee" and row["target"] == "support"


def test_upload_is_judged_by_its_bytes_and_the_import_attributed(ws):
    _seed(ws)
    at = _page("datasets")
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
    at.file_uploader[0].set_value(("examples.jsonl", png, "application/octet-stream"))
    at.run()
    at.button(key=[b.key for b in at.button if b.label == "Import"][0]).click().run()
    assert any("examples.jsonl" in e.value and "binary" in e.value for e in at.error), [
        e.value for e in at.error
    ]
    assert _audit(ws, "dataset.import") == []

    good = (
        b'{"messages": [{"role": "user", "content": "hi"}, '
        b'{"role": "assistant", "content": "hello"}]}\n'
    )
    at.file_uploader[0].set_value(("more.jsonl", good, "application/octet-stream"))
    at.run()
    at.button(key=[b.key for b in at.button if b.label == "Import"][0]).click().run()
    assert not at.exception
    [row] = _audit(ws, "dataset.import")
    assert row["actor"] == "lee" and '"more.jsonl"' in row["detail"]


def test_training_launch_is_attributed_and_refused_for_an_analyst(ws, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    _seed(ws)
    at = _page("training")
    at.number_input(key="training_new_max_steps").set_value(2)
    at.button(key="training_start_run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [job_id] = queue.job_ids(ws)
    assert queue.get(ws, job_id).submitted_by == "lee"

    # the page is hidden from analysts; a stale tab or typed URL is stopped by the guard
    at = _page("training", ("ann", "analyst"))
    assert any("may not open this page" in e.value for e in at.error)
    assert queue.job_ids(ws) == [job_id]


def test_analyst_cannot_import_or_download_preferences(ws):
    at = _page("preferences", ("ann", "analyst"))
    at.file_uploader[0].set_value(
        (
            "p.jsonl",
            b'{"prompt": "q", "chosen": "a", "rejected": "b"}\n',
            "application/octet-stream",
        )
    )
    at.run()
    at.button(key=[b.key for b in at.button if b.label == "Import"][0]).click().run()
    assert any("may not import export" in e.value for e in at.error), [e.value for e in at.error]
    assert _audit(ws, "prefs.import") == []
    store = Store.open(ws.db_path)
    try:
        from backend.store import prefs as S

        assert S.list_preference_sets(store) == []
    finally:
        store.close()
