"""Uncertainty scoring on the tiny model: mean NLL is the prompt-masked loss, batching and
chunking change nothing, and the score job writes rows that ingest into the scores table."""

from __future__ import annotations

import json

import pytest

from backend.review import scoring

EXAMPLES = [
    {
        "id": f"e{i}",
        "messages": [
            {"role": "user", "content": "How do I add a teammate? " * (i % 3 + 1)},
            {"role": "assistant", "content": "Open Settings, then Members. " * (i % 4 + 1)},
        ],
    }
    for i in range(7)
]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return scoring.load_model(str(tiny_model_dir), device="cpu")


def test_mean_nll_equals_the_prompt_masked_loss(loaded):
    import torch

    tok, model = loaded
    for ex in EXAMPLES[:3]:
        enc = scoring.encode(tok, ex["id"], ex["messages"], 1024)
        ids = torch.tensor([enc.input_ids])
        labels = ids.clone()
        labels[0, : enc.prompt_len] = -100
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss.item()
        row = scoring.score_examples(tok, model, [ex])[0]
        assert row["nll"] == pytest.approx(loss, rel=1e-4)
        assert row["n_tokens"] == len(enc.input_ids) - enc.prompt_len


def test_scored_span_is_the_content_and_its_end_of_turn_token(loaded):
    """The template writes '<|end|>' then a newline after each turn: the end-of-turn token
    is scored (stopping is the model's choice), the newline after it is not."""
    tok, model = loaded
    ex = EXAMPLES[1]
    prompt, answer = scoring.split_messages(ex["messages"])
    whole = tok.apply_chat_template(ex["messages"], tokenize=True, return_dict=False)
    end = tok.convert_tokens_to_ids("<|end|>")
    assert whole[-1] != end  # the template's newline follows the end-of-turn token

    enc = scoring.encode(tok, ex["id"], ex["messages"], 1024)

    assert enc.input_ids == whole[: len(enc.input_ids)]
    assert enc.input_ids[-1] == end
    response = tok.decode(enc.input_ids[enc.prompt_len :], skip_special_tokens=True)
    assert response.strip() == answer["content"].strip()
    row = scoring.score_examples(tok, model, [ex])[0]
    assert row["n_tokens"] == len(enc.input_ids) - enc.prompt_len


def test_batching_bucketing_and_chunking_do_not_change_scores(loaded):
    tok, model = loaded
    one = scoring.score_examples(tok, model, EXAMPLES, batch_size=1, bucket=False)
    many = scoring.score_examples(tok, model, EXAMPLES, batch_size=4, chunk=3, bucket=True)
    assert [r["id"] for r in many] == [e["id"] for e in EXAMPLES]
    for a, b in zip(one, many, strict=True):
        assert a["nll"] == pytest.approx(b["nll"], rel=1e-4)
        assert a["entropy"] == pytest.approx(b["entropy"], rel=1e-4)
    vocab = len(tok)
    assert all(0 < r["entropy"] <= __import__("math").log(vocab) + 1e-4 for r in many)


def test_prompt_is_masked_so_a_different_prompt_changes_the_score(loaded):
    tok, model = loaded
    a = {
        "id": "a",
        "messages": [
            {"role": "user", "content": "billing"},
            {"role": "assistant", "content": "Invoices arrive monthly."},
        ],
    }
    b = {
        "id": "b",
        "messages": [
            {"role": "user", "content": "gantt chart"},
            {"role": "assistant", "content": "Invoices arrive monthly."},
        ],
    }
    ra, rb = scoring.score_examples(tok, model, [a, b])
    assert ra["n_tokens"] == rb["n_tokens"]
    assert ra["nll"] != pytest.approx(rb["nll"], rel=1e-6)


def test_bad_input_names_the_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": "1", "messages": []}\n{"oops": 1}\n')
    with pytest.raises(ValueError, match="line 2"):
        scoring.read_examples(path)
    with pytest.raises(ValueError, match="no assistant turn"):
        scoring.split_messages([{"role": "user", "content": "hi"}])


def test_score_job_ingests_into_scores(ws, store, tiny_model_dir, run_inline):
    from backend.ingest.jobs import ingest_all
    from backend.jobs import queue

    path = ws.root / "in.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    job = queue.submit(
        ws,
        "score",
        {
            "examples_path": str(path),
            "model_path": str(tiny_model_dir),
            "dataset": "d",
            "batch_size": 3,
        },
    )
    status = run_inline(ws, job)
    assert status.state == "succeeded", status.error
    ingest_all(store, ws)
    rows = store.rows(
        "SELECT method, count(*) AS n FROM scores WHERE job_id = ? GROUP BY 1 ORDER BY 1", [job]
    )
    assert rows == [{"method": "entropy", "n": 7}, {"method": "nll", "n": 7}]
    ingest_all(store, ws)  # ingesting again adds nothing
    assert store.scalar("SELECT count(*) FROM scores") == 14
