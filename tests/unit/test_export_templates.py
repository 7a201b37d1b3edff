"""Chat templates on the way out: the end-of-turn token each template closes a reply with, the
Ollama pieces measured from the template (which reproduce its text on a conversation), the
Modelfile, the serve commands, and GGUF refusing what it cannot write yet, naming it."""

from __future__ import annotations

import pytest

from backend.export.gguf import ExportError, check_supported, pre_tokenizer_name
from backend.export.merged import end_of_turn, stop_ids
from backend.export.ollama import (
    TemplateTranslationError,
    check_pieces,
    go_template,
    modelfile,
    render_pieces,
    served_name,
    template_pieces,
    vllm_command,
)
from backend.train.demo_model import build_tokenizer

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim"
    " + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
REWRITES = (  # puts the system prompt into the first user turn: not turn by turn
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] + '</s>' }}{% endif %}{% endfor %}"
    "{% if messages|length > 2 %}{{ 'x' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def _with(tok, template: str, specials: list[str]):
    t = build_tokenizer()
    t.add_special_tokens({"additional_special_tokens": specials})
    t.chat_template = template
    return t


def test_end_of_turn_is_the_token_that_closes_a_reply(tok):
    assert tok.convert_ids_to_tokens(end_of_turn(tok)) == "<|end|>"
    chatml = _with(tok, CHATML, ["<|im_start|>", "<|im_end|>"])
    eot = end_of_turn(chatml)
    assert chatml.convert_ids_to_tokens(eot) == "<|im_end|>"
    assert stop_ids(chatml, eot) == [eot, chatml.eos_token_id]  # EOS still stops too
    llama3 = _with(tok, LLAMA3, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    assert llama3.convert_ids_to_tokens(end_of_turn(llama3)) == "<|eot_id|>"


@pytest.mark.parametrize("name", ["demo", "chatml", "llama3"])
def test_ollama_pieces_reproduce_the_chat_template(tok, name):
    t = {
        "demo": tok,
        "chatml": _with(tok, CHATML, ["<|im_start|>", "<|im_end|>"]),
        "llama3": _with(tok, LLAMA3, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
    }[name]
    pieces = template_pieces(t)
    assert check_pieces(t, pieces)["ok"]
    conversation = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    want = t.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert pieces.bos + render_pieces(pieces, conversation) == want
    go = go_template(pieces)
    assert "{{-" not in go and "{{ $m.Content }}" in go  # trim markers would eat newlines
    if name == "llama3":  # the demo tokenizer adds no BOS itself, so the template's stays
        assert (
            pieces.head == "<s>"
            and pieces.bos == ""
            and pieces.user[0] == "<|start_header_id|>user<|end_header_id|>\n\n"
        )


def test_bos_the_runtime_adds_is_left_out_of_the_ollama_template(tok):
    from tokenizers import processors

    t = _with(tok, LLAMA3, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    bos = t.bos_token_id
    t.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", bos)]
    )
    assert t("hi")["input_ids"][0] == bos
    pieces = template_pieces(t)
    assert pieces.bos == "<s>" and pieces.head == "" and check_pieces(t, pieces)["ok"]
    assert "<s>" not in go_template(pieces)


def test_a_template_that_is_not_turn_by_turn_is_refused(tok):
    t = _with(tok, REWRITES, [])
    with pytest.raises(TemplateTranslationError, match="rewrites earlier text|renders"):
        template_pieces(t)


def test_modelfile_and_commands(tok):
    text = modelfile("run-q8_0.gguf", template_pieces(tok), stops=["<|end|>"], context=100_000)
    lines = text.splitlines()
    assert lines[0] == "FROM ./run-q8_0.gguf" and lines[1].startswith('TEMPLATE """')
    assert 'PARAMETER stop "<|end|>"' in lines and "PARAMETER num_ctx 8192" in lines
    assert served_name("20250101-000000-train-AB12") == "20250101-000000-train-ab12"
    cmd = vllm_command("/m/base model", "r1", "/runs/r1/adapter")
    assert cmd == "vllm serve '/m/base model' --enable-lora --lora-modules r1=/runs/r1/adapter"


def test_gguf_refuses_other_architectures_and_tokenizers_naming_them(tok):
    from transformers import GPT2Config, LlamaConfig

    assert check_supported(LlamaConfig(architectures=["LlamaForCausalLM"])) == "llama"
    with pytest.raises(ExportError, match="GPT2LMHeadModel is not supported yet"):
        check_supported(GPT2Config(architectures=["GPT2LMHeadModel"]))
    assert pre_tokenizer_name(tok) == "gpt-2"


def test_a_stop_that_misses_the_end_of_turn_fails_with_what_it_stops_at():
    from backend.export.verify import failures, stop_check

    assert failures({"stops": stop_check([2, 5], 2, "generation_config.json")}) == []
    assert failures({"stops": stop_check(5, 2, "gguf metadata")}) == [
        "stops: gguf metadata stops at [5], not at the end-of-turn token 2"
    ]
