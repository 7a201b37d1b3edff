"""The merged model: a run's adapter folded into its base, saved as safetensors with the
tokenizer, the chat template and a generation config that stops at the end-of-turn token.

The base is loaded unquantized in float32 (a QLoRA run merges into the de-quantized base:
merging into 4-bit weights would round the update away), merged, and saved in the base
checkpoint's own dtype. `end_of_turn` finds the token the chat template closes an assistant
turn with; a model that does not stop there is the gibberish-that-never-ends of a bad export.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

_SENTINEL = "Zq7Xv"  # an assistant reply no template changes, to find what follows it


class TemplateError(ValueError):
    """A chat template that cannot be used for an export, and why."""


def end_of_turn(tokenizer: Any) -> int:
    """The id of the token that ends an assistant turn in the chat template (the first special
    token after the reply), else the tokenizer's EOS; TemplateError when neither exists.

    For the demo template (`...reply<|end|>\\n`) that is `<|end|>`; for Llama 3 `<|eot_id|>`,
    for ChatML `<|im_end|>`."""
    specials = set(tokenizer.all_special_ids) | {
        i for i, t in tokenizer.added_tokens_decoder.items() if t.special
    }
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": _SENTINEL},
            ],
            tokenize=False,
        )
        if _SENTINEL not in text:
            raise TemplateError("the chat template drops the assistant's reply")
        tail = text.split(_SENTINEL, 1)[1]
        for tid in tokenizer(tail, add_special_tokens=False)["input_ids"]:
            if tid in specials:
                return int(tid)
    if tokenizer.eos_token_id is None:
        raise TemplateError("the tokenizer has no end-of-turn token in its template and no EOS")
    return int(tokenizer.eos_token_id)


def stop_ids(tokenizer: Any, eot: int) -> list[int]:
    """The ids generation must stop at: the end-of-turn token first, then EOS if it differs."""
    ids = [eot]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id != eot:
        ids.append(int(tokenizer.eos_token_id))
    return ids


def storage_dtype(base_model: str) -> str:
    """The dtype the base checkpoint is stored in (float32 when it does not say; bfloat16 for
    anything narrower than 16 bits, which a merged update cannot be stored in)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_model)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    name = str(dtype).replace("torch.", "") if dtype else "float32"
    return name if name in ("float32", "float16", "bfloat16") else "bfloat16"


def load_reference(base_model: str, adapter: Path, device: str = "cpu"):
    """(tokenizer, base + adapter as a PeftModel) in float32: what every export is held to."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(adapter)
    base = AutoModelForCausalLM.from_pretrained(
        base_model, dtype=torch.float32, use_safetensors=True
    ).to(device)
    model = PeftModel.from_pretrained(base, adapter).to(device)
    model.eval()
    return tok, model


def merge(reference: Any, dtype: str) -> Any:
    """Fold the adapter into the base (in place) and cast to `dtype`; returns the plain model."""
    import torch

    merged = reference.merge_and_unload()
    merged.to(getattr(torch, dtype))
    merged.eval()
    return merged


def save_merged(model: Any, tokenizer: Any, out: Path, eot: int) -> Path:
    """Write the merged model, tokenizer and chat template, with a generation config whose
    EOS ids start with the end-of-turn token (written beside `out`, then moved into place)."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.writing")
    shutil.rmtree(tmp, ignore_errors=True)
    gen = model.generation_config
    gen.eos_token_id = stop_ids(tokenizer, eot)
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = gen.eos_token_id
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
