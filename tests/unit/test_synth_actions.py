"""Dataset actions: a role without the permission changes nothing and leaves no audit row; an
allowed call writes its change with exactly one audit row naming the actor; saving the same
content twice (one after the other, or from two threads at once) makes one version and answers
"already" to the other caller. The generate job's code never imports the store or DuckDB."""

from __future__ import annotations

import ast
import json
import threading
from pathlib import Path

import pytest

from backend.action import ActionError, AlreadyDone, Ctx
from backend.auth import Actor, PermissionDenied
from backend.config import Settings
from backend.jobs import read as jobs
from backend.jobs import worker
from backend.security import UnsafePathError
from backend.store import audit
from backend.store import datasets as dstore
from backend.synth import actions, import_actions, version_actions
from backend.synth.demo import DEMO_DATASET

ROOT = Path(__file__).resolve().parents[2]
ANALYST = Actor("ann", "analyst")
REVIEWER = Actor("rita", "reviewer")
LEAD = Actor("lee", "lead")


def chat(q: str, a: str = "An answer.", topic: str | None = None) -> dict:
    turns = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": turns, "topic": topic}


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Queued jobs stay queued: nothing here generates."""
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


def as_(store, ws, actor: Actor | None) -> Ctx:
    return Ctx(store=store, ws=ws, settings=Settings(), actor=actor)


def audit_rows(store) -> list[dict]:
    return list(reversed(audit.rows(store).to_dict("records")))


@pytest.fixture
def seeded(ws, store, tmp_path):
    """Dataset "support" with one version of three examples, and an import file."""
    dstore.create_dataset(store, "support", recipe={"topics": ["billing"]})
    dstore.add_version(
        store,
        "support",
        [chat("Invoices?", topic="billing"), chat("Gantt?", topic="gantt"), chat("Roles?")],
    )
    (ws.root / "in.jsonl").write_text(json.dumps(chat("Imported?")) + "\n")
    return store


def latest_first(store) -> tuple[str, list[dict]]:
    """The first example of the newest version, and an edit of it."""
    first = dstore.version_examples(store, dstore.resolve_version(store, "support")["id"])[0]
    return first["id"], first["messages"][:-1] + [{"role": "assistant", "content": "Better."}]


def calls(store, ws) -> dict:
    """Every action, with arguments that change something when allowed (in this order)."""
    v1 = dstore.version_examples(store, dstore.resolve_version(store, "support", 1)["id"])
    upload = (json.dumps(chat("Uploaded?")) + "\n").encode()
    return {
        "create_dataset": lambda c: actions.create_dataset(c, "new-ds"),
        "save_recipe": lambda c: actions.save_recipe(c, "support", {"topics": ["exports"]}),
        "generate": lambda c: actions.generate(c, "support", changes={"per_topic": 2}),
        "import_file": lambda c: import_actions.import_file(c, "support", "in.jsonl"),
        "import_upload": lambda c: import_actions.import_upload(c, "support", "up.jsonl", upload),
        "export_version": lambda c: import_actions.export_version(
            c, "support", "messages-jsonl", "exports/out.jsonl"
        ),
        "download_version": lambda c: import_actions.download_version(c, "support", "parquet"),
        "edit_example": lambda c: version_actions.edit_example(c, "support", *latest_first(store)),
        "save_selection": lambda c: version_actions.save_selection(
            c, "support", [v1[0]["id"]], version=1
        ),
        "save_filtered": lambda c: version_actions.save_filtered(
            c, "support", topic="gantt", version=1
        ),
        "save_version": lambda c: version_actions.save_version(c, "support", [chat("New?")]),
        "seed_demo_dataset": lambda c: actions.seed_demo_dataset(c),
    }


AUDITED = {
    "create_dataset": "dataset.create",
    "save_recipe": "dataset.recipe",
    "generate": "dataset.generate",
    "import_file": "dataset.import",
    "import_upload": "dataset.import",
    "export_version": "dataset.export",
    "download_version": "dataset.download",
    "edit_example": "dataset.edit_example",
    "save_selection": "dataset.version",
    "save_filtered": "dataset.version",
    "save_version": "dataset.version",
    "seed_demo_dataset": "dataset.import",
}


def snapshot(store, ws) -> tuple:
    return (
        dstore.list_datasets(store),
        dstore.list_versions(store, "support"),
        dstore.get_dataset(store, "support")["recipe"],
        jobs.job_ids(ws),
        sorted(
            p.name
            for p in ws.root.rglob("*")
            if p.is_file() and not p.name.startswith("studio.duckdb")
        ),
    )


def test_each_action_refuses_a_role_without_the_permission(ws, seeded):
    store = seeded
    before = snapshot(store, ws)
    assert set(calls(store, ws)) == set(AUDITED)
    for name, call in calls(store, ws).items():
        for who in (ANALYST, REVIEWER):
            with pytest.raises(PermissionDenied, match=f"{who.username} \\({who.role}\\)"):
                call(as_(store, ws, who))
                pytest.fail(f"{name} was allowed for a {who.role}")
    assert snapshot(store, ws) == before
    assert audit_rows(store) == []


def test_each_allowed_action_writes_one_audit_row_naming_the_actor(ws, seeded):
    store = seeded
    for name, call in calls(store, ws).items():
        seen = len(audit_rows(store))
        call(as_(store, ws, LEAD))
        rows = audit_rows(store)[seen:]
        assert [(r["actor"], r["action"]) for r in rows] == [("lee", AUDITED[name])], name
    assert (ws.exports / "out.jsonl").exists()
    [job_id] = jobs.job_ids(ws)
    assert jobs.get(ws, job_id).submitted_by == "lee"
    _, spec = jobs.read_spec(ws.job_dir(job_id))
    assert spec["recipe"]["per_topic"] == 2 and spec["recipe"]["topics"] == ["exports"]
    assert Path(spec["base_jsonl"]).exists()  # the examples the job dedupes against
    assert dstore.get_dataset(store, "support")["recipe"]["per_topic"] == 2
    assert dstore.find_dataset(store, DEMO_DATASET) is not None


def test_the_same_content_twice_makes_one_version(ws, seeded):
    store, ctx = seeded, as_(seeded, ws, LEAD)
    made = version_actions.save_version(ctx, "support", [chat("A?"), chat("B?")])
    with pytest.raises(AlreadyDone, match=r"support v2 already holds these 2 examples") as err:
        version_actions.save_version(ctx, "support", [chat("A?"), chat("B?"), chat("A?")])
    assert err.value.result["id"] == made["id"]
    # an import of the same rows, a selection of all of them, an unchanged edit: no version
    (ws.root / "same.jsonl").write_text("".join(json.dumps(chat(q)) + "\n" for q in ("A?", "B?")))
    items = dstore.version_examples(store, made["id"])
    for again in (
        lambda: import_actions.import_file(ctx, "support", "same.jsonl"),
        lambda: version_actions.save_selection(ctx, "support", [e["id"] for e in items]),
        lambda: version_actions.edit_example(ctx, "support", items[0]["id"], items[0]["messages"]),
        lambda: version_actions.save_filtered(ctx, "support", text="?"),
    ):
        with pytest.raises(AlreadyDone):
            again()
    assert [v["number"] for v in dstore.list_versions(store, "support")] == [1, 2]
    assert [r["action"] for r in audit_rows(store)] == ["dataset.version"]


def test_an_edit_twice_answers_already(ws, seeded):
    store, ctx = seeded, as_(seeded, ws, LEAD)
    first = dstore.version_examples(store, dstore.resolve_version(store, "support")["id"])[0]
    better = first["messages"][:-1] + [{"role": "assistant", "content": "Billing > Invoices."}]
    v2 = version_actions.edit_example(ctx, "support", first["id"], better)
    items = dstore.version_examples(store, v2["id"])
    assert items[0]["parent_id"] == first["id"] and items[0]["origin"]["edited"] is True
    assert v2["parent_version_id"] == dstore.resolve_version(store, "support", 1)["id"]
    with pytest.raises(AlreadyDone, match="already edited"):
        version_actions.edit_example(ctx, "support", first["id"], better)
    with pytest.raises(dstore.DatasetNotFound, match="is not in support v2"):
        version_actions.edit_example(ctx, "support", "f" * 64, better)
    v1 = dstore.resolve_version(store, "support", 1)
    assert dstore.version_examples(store, v1["id"])[0]["id"] == first["id"]  # unchanged


def test_a_recipe_saved_twice_and_a_name_taken(ws, seeded):
    store, ctx = seeded, as_(seeded, ws, LEAD)
    actions.save_recipe(ctx, "support", {"topics": ["billing", "exports"]})
    with pytest.raises(AlreadyDone, match="already saved"):
        actions.save_recipe(ctx, "support", {"topics": ["billing", "exports"]})
    with pytest.raises(dstore.DatasetExists, match="already exists"):
        actions.create_dataset(ctx, "support")
    assert [r["action"] for r in audit_rows(store)] == ["dataset.recipe"]


def _race(fn, n: int = 2) -> tuple[list, list]:
    """Run `fn()` on `n` threads released at once; (results, exceptions)."""
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run() -> None:
        barrier.wait()
        try:
            results.append(fn())
        except Exception as exc:  # collected for the assertions
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


def test_two_threads_saving_the_same_version_make_one(ws, seeded):
    store, ctx = seeded, as_(seeded, ws, LEAD)
    for i in range(3):
        examples = [chat(f"Race {i}?"), chat("Shared?")]
        results, errors = _race(
            lambda ex=examples: version_actions.save_version(ctx, "support", ex)
        )
        assert len(results) == 1 and len(errors) == 1, errors
        assert isinstance(errors[0], AlreadyDone), repr(errors[0])
        assert errors[0].result["id"] == results[0]["id"]
    assert [v["number"] for v in dstore.list_versions(store, "support")] == [1, 2, 3, 4]
    assert [r["action"] for r in audit_rows(store)] == ["dataset.version"] * 3


def test_two_threads_importing_or_creating_at_once(ws, seeded):
    store, ctx = seeded, as_(seeded, ws, LEAD)
    results, errors = _race(lambda: import_actions.import_file(ctx, "support", "in.jsonl"))
    assert len(results) == 1 and [type(e) for e in errors] == [AlreadyDone]
    results, errors = _race(lambda: actions.create_dataset(ctx, "twice"))
    assert len(results) == 1 and [type(e) for e in errors] == [dstore.DatasetExists]
    assert [r["action"] for r in audit_rows(store)] == ["dataset.import", "dataset.create"]


def test_paths_from_the_dashboard_stay_in_the_workspace(ws, seeded, tmp_path):
    store, ctx = seeded, as_(seeded, ws, LEAD)
    for typed in ("../x.jsonl", str(tmp_path / "x.jsonl")):
        with pytest.raises(UnsafePathError):
            import_actions.export_version(ctx, "support", "messages-jsonl", typed)
        with pytest.raises(UnsafePathError):
            import_actions.import_file(ctx, "support", typed)
    assert audit_rows(store) == []
    # the shell writes where it is told
    out = tmp_path / "shell.jsonl"
    info = import_actions.export_version(as_(store, ws, None), "support", "messages-jsonl", out)
    assert info["examples"] == 3 and out.exists()
    assert [(r["actor"], r["action"]) for r in audit_rows(store)] == [("shell", "dataset.export")]


def test_selection_and_filter_make_versions_of_their_examples(ws, seeded):
    store, ctx = seeded, as_(seeded, ws, LEAD)
    items = dstore.version_examples(store, dstore.resolve_version(store, "support")["id"])
    v2 = version_actions.save_selection(ctx, "support", [items[2]["id"], items[0]["id"]])
    assert [e["id"] for e in dstore.version_examples(store, v2["id"])] == [
        items[0]["id"],
        items[2]["id"],
    ]
    v3 = version_actions.save_filtered(ctx, "support", topic="gantt", version=1)
    assert v3["n_examples"] == 1 and "topic 'gantt'" in v3["note"]
    with pytest.raises(dstore.DatasetNotFound, match="1 selected examples are not in"):
        version_actions.save_selection(ctx, "support", ["nope"])
    with pytest.raises(ActionError, match="nothing to make a version of"):
        version_actions.save_filtered(ctx, "support", text="no such words")


def test_generate_builds_the_spec_and_creates_the_dataset(ws, store):
    ctx = as_(store, ws, LEAD)
    job_id = actions.generate(
        ctx, "fresh", changes={"topics": ["billing"], "model": "m"}, concurrency=3
    )
    _, spec = jobs.read_spec(ws.job_dir(job_id))
    assert spec["dataset"] == "fresh" and spec["model"] == "m" and spec["concurrency"] == 3
    assert spec["base_jsonl"] is None  # nothing to dedupe against yet
    assert dstore.get_dataset(store, "fresh")["recipe"]["topics"] == ["billing"]
    [row] = audit_rows(store)
    assert row["target"] == "fresh" and json.loads(row["detail"])["created"] is True
    with pytest.raises(dstore.DatasetNotFound):
        actions.generate(ctx, "missing", create=False)
    with pytest.raises(ValueError, match="qc"):
        actions.generate(ctx, "fresh", qc_share=0.5)
    assert jobs.job_ids(ws) == [job_id] and dstore.find_dataset(store, "missing") is None


def test_actions_need_the_database(ws):
    with pytest.raises(ActionError, match="needs the database|does not hold"):
        version_actions.save_version(as_(None, ws, None), "support", [chat("q")])


def _module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def test_the_generate_job_never_imports_the_store_or_duckdb():
    """Every module the runner can import, counting imports inside functions and the
    packages around each module, stays clear of backend.store and duckdb."""
    seen: set[str] = set()
    todo, bad = ["backend.synth.generate"], []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [name.rpartition(".")[0]] if "." in name else []
        path = _module_file(name)
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            bad += [(name, n) for n in names if n == "duckdb" or n.startswith("backend.store")]
            todo += [n for n in names if n.startswith("backend")]
    assert "backend.integrations.llm" in seen and "backend.synth.parse" in seen
    assert bad == []
