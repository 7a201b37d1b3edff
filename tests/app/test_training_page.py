"""The Training page: empty state, the new-run form queues a validated run (and refuses a bad
one), and a finished run shows its curves, generations, config and artefacts. Inputs that
depend on another follow it (a dataset's versions, a run's checkpoints) and the run trains on
exactly what the form shows; the tab and run live in the URL, a queued run opens in the Run tab,
actions keep the tab; labels are plain words; the log is read from its tail; the counters
follow runs and jobs live."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.store import Store
from backend.store.datasets import add_version, create_dataset
from backend.train import actions
from tests.support.seed_runs import seed_runs

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "training.py")


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Queued jobs stay queued: the tests run them inline when they need them run."""
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


def seed_dataset(ws, n=12):
    store = Store.open(ws.db_path)
    try:
        create_dataset(store, "support")
        add_version(
            store,
            "support",
            [
                {
                    "messages": [
                        {"role": "user", "content": f"How do I export sprint {i}?"},
                        {
                            "role": "assistant",
                            "content": "Open Reports, pick the sprint, choose Export.",
                        },
                    ]
                }
                for i in range(n)
            ],
        )
    finally:
        store.close()


def page(ws) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_empty_workspace_says_what_to_do(ws):
    at = page(ws)
    assert at.title[0].value == "Training"
    infos = " ".join(i.value for i in at.info)
    assert "No datasets yet" in infos and "No runs yet" in infos


def test_form_queues_a_run_and_refuses_a_bad_one(ws, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))  # its folder is allowed
    seed_dataset(ws)
    at = page(ws)
    assert at.text_input(key="training_new_base_model").value == tiny_model_dir.name
    for typed, why in (
        (str(tiny_model_dir), "not an absolute one"),
        (f"../{tiny_model_dir.name}", "'..' is not allowed"),
    ):
        at.text_input(key="training_new_base_model").set_value(typed)
        at.button(key="training_start_run").click()
        at.run()
        assert any(why in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="training_new_base_model").set_value(tiny_model_dir.name)
    at.text_area(key="training_new_target_modules").set_value("q_proj\nnot_a_module")
    at.button(key="training_start_run").click()
    at.run()
    assert not at.exception
    assert any("not_a_module" in e.value for e in at.error)
    assert queue.job_ids(ws) == []

    at.text_area(key="training_new_target_modules").set_value("all-linear")
    at.number_input(key="training_new_max_steps").set_value(3)
    at.button(key="training_start_run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [job_id] = queue.job_ids(ws)
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert spec["max_steps"] == 3 and spec["dataset"] == "support" and spec["dataset_hash"]
    assert spec["base_model"] == str(tiny_model_dir.resolve())


@pytest.mark.slow
def test_finished_run_shows_curves_generations_and_what_ran(ws, tiny_model_dir, run_inline):
    seed_dataset(ws)
    store = Store.open(ws.db_path)
    fields = {
        "base_model": str(tiny_model_dir),
        **actions.dataset_file(store, ws, "support"),
        "max_steps": 4,
        "max_length": 64,
        "learning_rate": 1e-3,
        "n_eval_prompts": 1,
        "max_new_tokens": 4,
        "eval_split": 0.25,
        "quant": "none",
    }
    job_id = actions.start_run(Ctx(store=store, ws=ws, settings=Settings()), fields)
    store.close()
    assert run_inline(ws, job_id).state == "succeeded"
    store = Store.open(ws.db_path)
    ingest_all(store, ws)
    store.close()

    at = page(ws)
    assert at.metric[0].value == "1"  # runs
    texts = " ".join(t.value for t in at.text)
    assert "How do I export sprint" in texts  # the eval prompt, shown as text
    assert "adapter:" in texts and "device: CPU" in texts
    codes = " ".join(c.value for c in at.code)
    assert '"max_steps": 4' in codes and '"trl"' in codes
    assert len(at.get("plotly_chart")) == 3
    # a succeeded run can be neither cancelled nor resumed
    assert at.button(key="training_resume").disabled and at.button(key="training_cancel").disabled


def _adapter(folder: Path, base: Path) -> Path:
    import json

    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(base.resolve())})
    )
    return folder


def test_checkpoints_follow_the_chosen_run(ws, tiny_model_dir, monkeypatch):
    """Start from: the list of a run's adapters and checkpoints follows the run picked, and
    the queued spec starts from exactly the one shown; a typed folder is still confined."""
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    seed_dataset(ws)
    store = Store.open(ws.db_path)
    try:
        first, second = seed_runs(ws, 2, steps=5, store=store)
    finally:
        store.close()
    _adapter(ws.runs / first / "adapter", tiny_model_dir)
    for step in (2, 4):
        _adapter(ws.runs / first / "checkpoints" / f"checkpoint-{step}", tiny_model_dir)
    _adapter(ws.runs / second / "checkpoints" / "checkpoint-3", tiny_model_dir)
    (ws.runs / second / "checkpoints" / "checkpoint-9").mkdir()  # no adapter in it: left out

    at = page(ws)
    start = at.selectbox(key="training_from_run")
    assert start.options == ["a fresh LoRA", second, first, "an adapter folder I type"]
    start.set_value(first).run()
    point = at.selectbox(key="training_from_checkpoint")
    assert point.options == ["final adapter", "checkpoint at step 4", "checkpoint at step 2"]
    point.set_value("checkpoint at step 2").run()
    at.selectbox(key="training_from_run").set_value(second).run()
    assert not at.exception, [e.value for e in at.exception]
    point = at.selectbox(key="training_from_checkpoint")
    assert point.options == ["checkpoint at step 3"] and point.value == "checkpoint at step 3"
    at.button(key="training_start_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [job_id] = [j for j in queue.job_ids(ws) if j not in (first, second)]
    _, spec = queue.read_spec(ws.job_dir(job_id))
    shown = ws.runs / second / "checkpoints" / "checkpoint-3"
    assert spec["init_adapter"] == str(shown.resolve())

    at.selectbox(key="training_from_run").set_value("an adapter folder I type").run()
    at.text_input(key="training_from_folder").set_value("../elsewhere/adapter").run()
    at.button(key="training_start_run").click().run()
    assert any("'..' is not allowed" in e.value for e in at.error), [e.value for e in at.error]


def seed_two_datasets(ws) -> dict[str, list[str]]:
    """support v1, v2 and billing v1; returns each dataset's version ids, oldest first."""
    store = Store.open(ws.db_path)
    try:
        out = {}
        for name, sizes in (("support", (6, 9)), ("billing", (5,))):
            create_dataset(store, name)
            out[name] = []
            for n in sizes:
                rows = [
                    {
                        "messages": [
                            {"role": "user", "content": f"{name} question {i}?"},
                            {"role": "assistant", "content": f"{name} answer {i}."},
                        ]
                    }
                    for i in range(n)
                ]
                out[name].append(add_version(store, name, rows)["id"])
        return out
    finally:
        store.close()


def test_version_list_follows_the_dataset_and_the_run_trains_on_it(ws, tiny_model_dir, monkeypatch):
    """The version picker lists the chosen dataset's versions (newest first) and moves with
    the dataset; the queued run trains on exactly the version shown."""
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    versions = seed_two_datasets(ws)
    at = page(ws)
    dataset, version = at.selectbox(key="training_dataset"), at.selectbox(key="training_version")
    assert dataset.value == "support" and version.options == ["v2", "v1"]
    assert version.value == "v2"
    version.set_value("v1").run()
    at.selectbox(key="training_dataset").set_value("billing").run()
    assert not at.exception, [e.value for e in at.exception]
    version = at.selectbox(key="training_version")
    assert version.options == ["v1"] and version.value == "v1"
    assert any("billing v1: 5 examples" in c.value for c in at.caption)
    at.selectbox(key="training_dataset").set_value("support").run()
    shown = at.selectbox(key="training_version").value
    assert shown == "v2"  # the dataset's newest version, not the v1 picked before
    assert any("support v2: 9 examples" in c.value for c in at.caption)

    at.button(key="training_start_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [job_id] = queue.job_ids(ws)
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert spec["dataset"] == "support" and spec["dataset_version_id"] == versions["support"][1]

    # the sweep tab has its own picker, which follows its own dataset
    at.selectbox(key="training_sweep_dataset").set_value("billing").run()
    assert at.selectbox(key="training_sweep_version").options == ["v1"]
    assert at.selectbox(key="training_version").value == "v2"


def test_a_sweep_trains_on_the_version_its_form_shows(ws, tiny_model_dir, monkeypatch):
    """The Sweep tab's own pickers: after switching datasets, every queued run of the sweep
    trains on the version shown, and the Queue tab opens."""
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    versions = seed_two_datasets(ws)
    at = page(ws)
    at.selectbox(key="training_sweep_version").set_value("v1").run()
    at.selectbox(key="training_sweep_dataset").set_value("billing").run()
    assert at.selectbox(key="training_sweep_version").value == "v1"
    at.text_input(key="training_sw_try_lora_r").set_value("4")
    at.number_input(key="training_sw_max_steps").set_value(2)
    at.button(key="training_queue_sweep").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    ids = queue.job_ids(ws)
    assert len(ids) == 2  # two learning rates x one rank
    for job_id in ids:
        _, spec = queue.read_spec(ws.job_dir(job_id))
        assert spec["dataset_version_id"] == versions["billing"][0] and spec["max_steps"] == 2
    assert at.session_state["training_tab"] == "Queue"
    assert at.query_params["training_tab"] == "Queue"
    assert any("Queued 2 runs in sweep-" in s.value for s in at.success)


def test_a_queued_run_opens_in_the_run_tab(ws, tiny_model_dir, monkeypatch):
    """After queueing, the Run tab shows THAT run, not the previous one, even before the
    studio has read the new job into the database; the URL names both."""
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    seed_dataset(ws)
    store = Store.open(ws.db_path)
    try:
        fields = {"base_model": str(tiny_model_dir), **actions.dataset_file(store, ws, "support")}
        earlier = actions.start_run(Ctx(store=store, ws=ws, settings=Settings()), fields)
        ingest_all(store, ws)
    finally:
        store.close()
    at = page(ws)
    shown = at.selectbox(key="training_run")
    assert shown.value is None and shown.proto.placeholder == f"the newest: {earlier}"
    at.button(key="training_start_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [new] = [j for j in queue.job_ids(ws) if j != earlier]
    assert at.session_state["training_tab"] == "Run"
    assert at.selectbox(key="training_run").value == new
    assert any(f"Queued run {new} on support v1" in s.value for s in at.success)
    assert any("Queued just now" in c.value for c in at.caption)
    # both in the URL: a reload or a shared link opens the same tab and run
    assert at.query_params["training_tab"] == "Run" and at.query_params["training_run"] == new
    at.run()
    assert at.query_params["training_tab"] == "Run" and at.query_params["training_run"] == new


def test_labels_are_plain_words_with_the_library_term_in_help(ws):
    """Labels in the user's words, the library's term in the help; the SFT form shows no
    field of another method and asks for nothing it does not show."""
    from streamlit.testing.v1.element_tree import Widget

    from backend.train.config import method_fields

    seed_dataset(ws)
    at = page(ws)
    rank = at.number_input(key="training_new_lora_r")
    assert rank.label == "LoRA rank" and "LoRA rank (r)" in rank.proto.help
    steps = at.number_input(key="training_new_batch_size")
    assert steps.label == "Examples per step"
    assert "per_device_train_batch_size" in steps.proto.help
    keys = {
        w.key[len("training_new_") :]
        for w in at.main
        if isinstance(w, Widget) and str(w.key or "").startswith("training_new_")
    }
    assert "beta" not in keys and "method" not in keys
    assert keys <= method_fields("sft"), keys - method_fields("sft")


def test_cancel_and_resume_go_through_the_actions_and_keep_the_tab(ws, tiny_model_dir):
    """A queued run cancelled from the Run tab (opened by a link) never starts; Resume
    queues it again; each answer shows on the same tab and run."""
    seed_dataset(ws)
    store = Store.open(ws.db_path)
    try:
        fields = {"base_model": str(tiny_model_dir), **actions.dataset_file(store, ws, "support")}
        ctx = Ctx(store=store, ws=ws, settings=Settings())
        job_id = actions.start_run(ctx, fields)
        other = actions.start_run(ctx, fields)  # the newest: not the one the link opens
        ingest_all(store, ws)
    finally:
        store.close()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["training_tab"] = "Run"
    at.query_params["training_run"] = job_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["training_tab"] == "Run"
    assert at.selectbox(key="training_run").value == job_id != other
    at.button(key="training_cancel").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert queue.get(ws, job_id).state == "cancelled"
    assert at.session_state["training_tab"] == "Run"
    assert at.selectbox(key="training_run").value == job_id
    assert at.query_params["training_run"] == job_id
    assert any("Cancel requested" in s.value for s in at.success)
    at.run()  # the redraw the action's change brings (the live watcher's)
    assert at.button(key="training_cancel").disabled
    assert at.session_state["training_tab"] == "Run"
    at.button(key="training_resume").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert queue.get(ws, job_id).state == "queued"
    assert at.session_state["training_tab"] == "Run"
    assert any("queued again" in s.value for s in at.success)


def test_counters_follow_a_running_run_live(ws, monkeypatch):
    """The page follows runs and jobs: a run that starts moves the counters it drew from
    (so the watcher redraws it), and the redraw says Running 1."""
    from backend.changes import CHANGES
    from backend.ingest.loop import Ingestor
    from backend.jobs.status import JobState, read_status, write_status

    monkeypatch.setattr(Ingestor, "start", lambda self: self)  # the test is the one ingesting
    store = Store.open(ws.db_path)
    try:
        [run_id] = seed_runs(ws, 1, steps=5, store=store)
        status = read_status(ws.job_dir(run_id))
        status.state, status.finished = JobState.queued, None
        write_status(ws.job_dir(run_id), status)
        ingest_all(store, ws)
        at = page(ws)
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Running"] == "0" and metrics["Queued"] == "1"
        drawn = at.session_state["live:runs,jobs"]
        status.state = JobState.running
        write_status(ws.job_dir(run_id), status)
        ingest_all(store, ws)
        assert CHANGES.snapshot(("runs", "jobs")) != drawn  # the watcher reruns the page
    finally:
        store.close()
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Running"] == "1" and metrics["Queued"] == "0"


def test_the_log_is_read_from_its_tail(ws, monkeypatch):
    """The Run tab shows the log's last lines, read from the end of the file (a long log is
    never read whole)."""
    store = Store.open(ws.db_path)
    try:
        [run_id] = seed_runs(ws, 1, steps=5, store=store)
    finally:
        store.close()
    lines = [f"line {i} " + "x" * 100 for i in range(40_000)]  # about 4 MB
    (ws.job_dir(run_id) / "log.txt").write_text("\n".join(lines) + "\n")
    read_text = Path.read_text

    def no_whole_log(self, *a, **k):
        assert self.name != "log.txt", "the whole log was read"
        return read_text(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", no_whole_log)
    at = page(ws)
    [log] = [c.value for c in at.code if "line 39999" in c.value]
    assert log.splitlines()[-1] == lines[-1] and len(log.splitlines()) == 30
    assert "line 0 " not in log
