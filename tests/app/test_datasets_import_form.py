"""The Datasets page's import form: the detected shape, the column mapping and the first rows
as examples are shown before anything is stored; then the import uses that mapping."""

from __future__ import annotations

from tests.app.test_datasets_page import _seeded, _versions, lead_page

CSV = (
    "question,answer,category\n"
    "Where are invoices?,Billing > Invoices.,billing\n"
    'Can I undo an archive?,"Yes, from Archived boards.",boards\n'
)
ALPACA = (
    b'[{"instruction": "Give three tips for staying healthy.", "input": "", '
    b'"output": "Eat well, move, sleep."}]'
)


def _shape_text(at) -> str:
    return next(t.value for t in at.text if t.value.startswith("Detected shape"))


def test_preview_then_import_with_a_mapping(ws):
    _seeded(ws)
    at = lead_page(datasets_tab="Versions", datasets_dataset="evil")
    at.file_uploader(key="datasets_upload").set_value(("faq.csv", CSV.encode(), "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "none the studio knows" in _shape_text(at) and "question, answer, category" in (
        _shape_text(at)
    )
    [rows] = [d.value for d in at.dataframe if "becomes" in d.value.columns]
    assert list(rows["line"]) == [2, 3] and "needs a 'messages'" in rows["problem"][0]
    assert len(_versions(ws, "evil")) == 1  # a preview stores nothing
    at.text_input(key="datasets_import_map").input(
        "prompt=question, completion=answer, topic=category"
    ).run()
    assert "prompt and completion" in _shape_text(at)
    [rows] = [d.value for d in at.dataframe if "becomes" in d.value.columns]
    assert rows["becomes"][0] == "user: Where are invoices?\nassistant: Billing > Invoices."
    assert list(rows["problem"]) == ["", ""]
    [imp] = [b for b in at.button if b.label == "Import"]
    imp.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Imported 2 examples into evil v2" in s.value for s in at.success)
    assert [v["n_examples"] for v in _versions(ws, "evil")] == [1, 2]
    # the Versions tab now shows what changed from v1
    assert any(s.value == "What changed in v2" for s in at.subheader)
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Added"], metrics["Removed"], metrics["Edited"]) == ("2", "1", "0")
    assert any("Where are invoices?" in t.value for t in at.text)


def test_a_json_array_of_alpaca_rows_is_recognised(ws):
    _seeded(ws)
    at = lead_page(datasets_tab="Versions", datasets_dataset="evil")
    at.file_uploader(key="datasets_upload").set_value(("alpaca_data.json", ALPACA, "text/json"))
    at.run()
    assert "Alpaca" in _shape_text(at)
    [imp] = [b for b in at.button if b.label == "Import"]
    imp.click().run()
    assert any("Imported 1 examples into evil v2" in s.value for s in at.success), [
        e.value for e in at.error
    ]


def test_a_tool_calling_example_reads_plainly_on_the_examples_tab(ws):
    from backend.store import Store
    from backend.store import datasets as dstore
    from tests.unit.test_import_formats import TOOL_CHAT

    store = Store.open(ws.db_path)
    try:
        dstore.create_dataset(store, "tools")
        dstore.add_version(store, "tools", [TOOL_CHAT])
    finally:
        store.close()
    at = lead_page(datasets_tab="Examples", datasets_dataset="tools")
    texts = [t.value for t in at.text]
    assert "tools it may call: get_weather" in texts
    assert 'calls get_weather({"city": "Lyon"})' in texts
    assert '{"rain": true, "c": 11}' in texts
