"""The Playground on the tiny model: one base with two runs' adapters switched on it (answers
match each model run on its own, the base's stays the base's), streamed answers, `ftstudio
chat RUN --base` in a terminal (the page: tests/app/test_playground_page.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backend.cli import app
from backend.playground.chat import BASE, ChatModels, Sampling
from backend.store import Store
from backend.store.runs import ingest_run_rows
from tests.support.seed_runs import run_id_for, train_spec, write_run

GREEDY = Sampling(max_new_tokens=12, temperature=0.0)
HELLO = [{"role": "user", "content": "How do I add a teammate?"}]


def _adapter(tiny_model_dir: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random non-zero weights (so its answers differ from the base's)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(
        r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(base, config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def _seed_runs(ws, tiny_model_dir, n: int = 2) -> list[str]:
    ids = []
    store = Store.open(ws.db_path)
    try:
        for i in range(n):
            run_id = run_id_for(i, "play")
            write_run(ws, run_id, train_spec(i, base_model=str(tiny_model_dir)), steps=5)
            adapter = _adapter(tiny_model_dir, ws.runs / run_id / "adapter", seed=i)
            from backend.ingest.jobs import ingest_all

            ingest_all(store, ws)
            row = json.dumps({"id": run_id, "adapter_path": str(adapter)}) + "\n"
            store.write(lambda cur, row=row, rid=run_id: ingest_run_rows(cur, rid, row.encode()))
            ids.append(run_id)
    finally:
        store.close()
    return ids


def _alone(model_dir: Path, adapter: Path | None) -> str:
    """The greedy answer of one model loaded on its own, as the reference."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    text = tok.apply_chat_template(HELLO, add_generation_prompt=True, tokenize=False)
    enc = tok(text, add_special_tokens=False, return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def test_one_base_two_adapters_switched(ws, tiny_model_dir):
    a, b = _seed_runs(ws, tiny_model_dir)
    models = ChatModels(tiny_model_dir)
    assert models.answer(BASE, HELLO, GREEDY) == _alone(tiny_model_dir, None)
    models.add_run(a, ws.runs / a / "adapter")
    models.add_run(b, ws.runs / b / "adapter")
    answers = {s: models.answer(s, HELLO, GREEDY) for s in (a, BASE, b, a)}
    assert answers[a] == _alone(tiny_model_dir, ws.runs / a / "adapter")
    assert answers[b] == _alone(tiny_model_dir, ws.runs / b / "adapter")
    assert answers[BASE] == _alone(tiny_model_dir, None)  # adapters off, not merged in
    assert len({answers[a], answers[b], answers[BASE]}) == 3
    pieces = list(models.stream(a, HELLO, GREEDY))
    assert len(pieces) > 1 and "".join(pieces) == answers[a]
    with pytest.raises(ValueError, match="not attached"):
        list(models.stream("nope", HELLO, GREEDY))
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=-1)


def test_chat_cli_answers_with_base_and_run(ws, tiny_model_dir):
    (run_id,) = _seed_runs(ws, tiny_model_dir, n=1)
    args = ["chat", run_id, "--base", "--temperature", "0", "--max-new-tokens", "12"]
    result = CliRunner().invoke(app, args, input="How do I add a teammate?\n\n")
    assert result.exit_code == 0, result.output
    base_line = next(x for x in result.stdout.splitlines() if x.startswith("base> "))
    run_line = next(x for x in result.stdout.splitlines() if x.startswith("run> "))
    assert base_line == "base> " + _alone(tiny_model_dir, None).split("\n")[0]
    assert run_line.startswith("run> ") and run_line != base_line
    bad = CliRunner().invoke(app, ["chat", "20250101-000000-train-missing"], input="\n")
    assert bad.exit_code == 2 and "no job" in bad.output
