"""Tool-calling examples through training: a version with `tools`, assistant `tool_calls` and
`tool` turns is written to the job's data file, read by the SFT loader, rendered by the tiny
model's chat template with the call and the result in the text (the call inside the
assistant-only loss, the result outside it), and trained on: loss falls, LoRA weights move."""

from __future__ import annotations

import pytest

from backend.store.datasets import add_version, create_dataset, write_version_jsonl

pytestmark = pytest.mark.slow

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "find_task",
            "description": "Find a task on the board.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["query"],
            },
        },
    },
]


def _weather(city: str, reading: str) -> dict:
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}
    return {
        "messages": [
            {"role": "user", "content": f"What is the weather in {city}?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "name": "get_weather", "content": reading},
            {"role": "assistant", "content": f"In {city} it is {reading}."},
        ],
        "tools": TOOLS,
    }


def _task(query: str) -> dict:
    args = '{"query": "' + query + '", "limit": 1}'  # arguments as JSON text, OpenAI's way
    call = {"type": "function", "function": {"name": "find_task", "arguments": args}}
    return {
        "messages": [
            {"role": "user", "content": f"Where is the {query} task?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [call]},
            {"role": "tool", "name": "find_task", "content": f"{query}: column Doing"},
            {"role": "assistant", "content": f"The {query} task is in Doing."},
        ],
        "tools": TOOLS,
    }


PLAIN = {
    "messages": [
        {"role": "user", "content": "How do I export a sprint report?"},
        {"role": "assistant", "content": "Open Reports, pick the sprint, and choose Export."},
    ]
}


def test_tool_calls_render_and_train(store, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoTokenizer

    from backend.train.config import file_fields, make_config
    from backend.train.runtime import decide
    from backend.train.sft import build_trainer, load_examples, load_model

    examples = [
        _weather("Paris", "18 C and sunny"),
        _weather("Oslo", "2 C and snowing"),
        _task("billing"),
        _task("onboarding"),
        PLAIN,
    ]
    create_dataset(store, "tools")
    version = add_version(store, "tools", examples)
    data = tmp_path / "train.jsonl"
    assert write_version_jsonl(store, version["id"], data) == 5

    rows = load_examples(data)
    assert sum("tools" in r for r in rows) == 4
    weather = next(r for r in rows if "Paris" in r["messages"][0]["content"])
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tok.apply_chat_template(weather["messages"], tools=weather["tools"], tokenize=False)
    assert '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>' in text
    assert "<|tool|>get_weather\n18 C and sunny<|end|>" in text
    assert '"name": "find_task"' in text  # the tool definitions come first

    spec = make_config(
        {
            "base_model": str(tiny_model_dir),
            **file_fields(data),
            "learning_rate": 1e-2,
            "batch_size": 5,
            "max_steps": 10,
            "max_length": 512,
            "eval_split": 0.0,
            "lora_r": 8,
            "lora_alpha": 16,
            "quant": "none",
        }
    )
    rt = decide("none", "cpu")
    tok, model = load_model(spec, rt)
    trainer = build_trainer(spec, rt, model, tok, rows * 4, [], tmp_path / "ck", [])

    # what the trainer trains on: the call is in the loss, the tool's result and the
    # arguments of the other tool (no Arrow-merged `"limit": null`) are not
    by_text = {}
    for ex in trainer.train_dataset:
        by_text[tok.decode(ex["input_ids"])] = ex
    rendered = next(t for t in by_text if "Oslo" in t)
    assert '{"name": "get_weather", "arguments": {"city": "Oslo"}}' in rendered
    assert "2 C and snowing" in rendered
    assert "null" not in rendered
    ex = by_text[rendered]
    trained = tok.decode(
        [i for i, lab in zip(ex["input_ids"], ex["labels"], strict=True) if lab != -100]
    )
    assert (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>' in trained
    )
    assert "In Oslo it is 2 C and snowing." in trained
    assert "2 C and snowing<|end|>" not in trained.replace("it is 2 C and snowing.", "")
    assert "What is the weather" not in trained

    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0]
    moved = [
        n
        for n, p in trainer.model.named_parameters()
        if p.requires_grad and not torch.equal(p.detach(), before[n])
    ]
    assert moved, "no trainable parameter changed"


def test_loader_names_a_bad_tools_line(tmp_path):
    from backend.train.config import ConfigError
    from backend.train.sft import load_examples

    data = tmp_path / "bad.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],'
        ' "tools": {"name": "get_weather"}}\n'
    )
    with pytest.raises(ConfigError, match="line 1.*tools"):
        load_examples(data)


def test_merged_and_gguf_exports_carry_the_tool_template(tiny_model_dir, tmp_path):
    """The merged folder and the GGUF file keep the chat template verbatim, so a runtime
    renders tools, calls and results as training did."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backend.export.gguf import read_metadata, write_gguf
    from backend.export.merged import end_of_turn, save_merged

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, use_safetensors=True)
    eot = end_of_turn(tok)
    assert tok.convert_ids_to_tokens(eot) == "<|end|>"
    example = _weather("Paris", "18 C and sunny")
    want = tok.apply_chat_template(example["messages"], tools=TOOLS, tokenize=False)
    assert "<tool_call>" in want and "<|tool|>get_weather" in want

    merged = save_merged(model, tok, tmp_path / "merged", eot)
    back = AutoTokenizer.from_pretrained(merged)
    assert back.apply_chat_template(example["messages"], tools=TOOLS, tokenize=False) == want

    path = write_gguf(model, tok, tmp_path / "m.gguf", quant="f16", eot_id=eot, name="tiny")
    template = read_metadata(path)["tokenizer.chat_template"]
    assert template == tok.chat_template
    rendered = tok.apply_chat_template(
        example["messages"], tools=TOOLS, tokenize=False, chat_template=template
    )
    assert rendered == want
