"""Where a run can start from: a run's final adapter and its checkpoints (latest first),
only folders that hold an adapter, and nothing for an unknown or crafted run id."""

from __future__ import annotations

from backend.train.checkpoints import runs_with_adapters, starting_points


def _adapter(folder):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")


def test_a_runs_adapters_latest_first(ws):
    _adapter(ws.runs / "a" / "adapter")
    for step in (5, 10, 20):
        _adapter(ws.runs / "a" / "checkpoints" / f"checkpoint-{step}")
    (ws.runs / "a" / "checkpoints" / "checkpoint-30").mkdir()  # saving: no adapter yet
    (ws.runs / "a" / "checkpoints" / "checkpoint-x").mkdir()
    _adapter(ws.runs / "b" / "checkpoints" / "checkpoint-7")
    (ws.runs / "c").mkdir()
    assert starting_points(ws, "a") == [
        ("final adapter", "runs/a/adapter"),
        ("checkpoint at step 20", "runs/a/checkpoints/checkpoint-20"),
        ("checkpoint at step 10", "runs/a/checkpoints/checkpoint-10"),
        ("checkpoint at step 5", "runs/a/checkpoints/checkpoint-5"),
    ]
    assert starting_points(ws, "b") == [("checkpoint at step 7", "runs/b/checkpoints/checkpoint-7")]
    assert runs_with_adapters(ws, ["c", "b", "missing", "a"]) == ["b", "a"]
    for crafted in ("", "..", "../a", "a/../b", ".hidden"):
        assert starting_points(ws, crafted) == []
