"""The tiny demo model: a byte-level BPE tokenizer and a small Llama-architecture model,
both built locally in about a second, no download.

Its text is noise (random weights); it exists so that every pipeline stage (generation,
scoring, training, comparison) runs on a fresh machine. The chat template marks assistant turns
with `{% generation %}` so assistant-only loss works, and renders tool use: the `tools` a
conversation may call, an assistant's `tool_calls` (inside its generation span: trained on) and
`tool` turns with their results (not trained on).

    python -m backend.train.demo_model OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import Field

from backend.jobs.context import JobContext
from backend.jobs.kinds import JobSpec

CHAT_TEMPLATE = (
    # the tools a conversation may call, once, before its turns (none: nothing rendered)
    "{% if tools %}{{ '<|system|>\ntools: ' + (tools | tojson) + '<|end|>\n' }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] or '' }}"
    # a tool call is assistant output: inside the generation span, so it is trained on
    "{% for call in message.get('tool_calls') or [] %}"
    "{% set fn = call['function'] %}"
    "{{ '<tool_call>{\"name\": \"' + fn['name'] + '\", \"arguments\": ' }}"
    "{% if fn['arguments'] is string %}{{ fn['arguments'] }}"
    "{% else %}{{ fn['arguments'] | tojson }}{% endif %}{{ '}</tool_call>' }}"
    "{% endfor %}"
    "{{ '<|end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% elif message['role'] == 'tool' %}"
    "{{ '<|tool|>' + (message.get('name') or '') + '\n' + message['content'] + '<|end|>\n' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
SPECIAL = ["<pad>", "<s>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
NOISE_NOTE = (
    "tiny demo model with random weights: its text is noise. Point the studio at a real model "
    "folder (FTSTUDIO_LOCAL_MODEL) or an OpenAI-compatible endpoint (OPENAI_BASE_URL) for "
    "real text."
)

_CORPUS = """\
How do I add a teammate to my project board? Open Settings, then Members, and invite them by email.
Why is my Gantt chart empty? Tasks need a start date and a due date to appear on the timeline.
Can I export a sprint report to CSV? Yes: open Reports, pick the sprint, and choose Export.
Billing questions: invoices are sent on the first day of each month to the workspace owner.
Permissions: admins can change roles; members can edit tasks; guests can only comment.
The quick brown fox jumps over the lazy dog. Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation , . ; : ! ?
"""


class DemoModelSpec(JobSpec):
    name: str = Field(
        "tiny-llama",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Folder name under workspace/models/.",
    )
    seed: int = Field(0, description="Seed for the random weights.")
    hidden_size: int = Field(64, ge=16, le=4096, description="Model width.")
    layers: int = Field(2, ge=1, le=64, description="Number of transformer blocks.")
    vocab_size: int = Field(1024, ge=300, le=65536, description="Tokenizer vocabulary size.")

    def title(self) -> str:
        return f"build demo model {self.name}"


def build_tokenizer(vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|end|>",
        pad_token="<pad>",
        padding_side="left",
        model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: Path, *, seed: int = 0, hidden_size: int = 64, layers: int = 2, vocab_size: int = 1024
) -> Path:
    """Write tokenizer + model to `out_dir` (written beside it, then renamed into place)."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = build_tokenizer(vocab_size)
    heads = max(2, hidden_size // 16)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2 or 1,
        head_dim=hidden_size // heads,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "STUDIO_DEMO_MODEL.json").write_text(json.dumps({"note": NOISE_NOTE, "seed": seed}))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def is_demo_model(path: Path) -> bool:
    return (Path(path) / "STUDIO_DEMO_MODEL.json").exists()


def run_job(ctx: JobContext, spec: DemoModelSpec) -> None:
    out = ctx.workspace.models / spec.name
    ctx.progress(0, 2, unit="steps", message="building tokenizer and model")
    build_tiny_model(
        out,
        seed=spec.seed,
        hidden_size=spec.hidden_size,
        layers=spec.layers,
        vocab_size=spec.vocab_size,
    )
    ctx.progress(1, 2, message="checking that it generates")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "hello"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    sample = model.generate(**ids, max_new_tokens=8, do_sample=False)
    params = sum(p.numel() for p in model.parameters())
    ctx.event(
        f"built {out.name}: {params:,} parameters, vocabulary {len(tok)}",
        path=str(out),
        parameters=params,
        sample=tok.decode(sample[0]),
    )
    ctx.event(NOISE_NOTE, level="warning")
    ctx.progress(2, 2, message="done")


if __name__ == "__main__":
    print(build_tiny_model(Path(sys.argv[1])))  # noqa: T201
