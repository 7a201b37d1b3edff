"""After-training evaluation of a run: held-out loss and perplexity, and answers to a fixed
set of eval prompts, so runs can be compared and ranked on the same questions.

Called by the training job with the model still loaded; returns plain rows that the job writes
to `run_eval.jsonl` and `generations.jsonl` (ingested into `run_eval` and `generations`).
"""

from __future__ import annotations

import math
from typing import Any


def perplexity(loss: float | None) -> float | None:
    """exp(loss), or None when there is no loss or it overflows.

    >>> round(perplexity(1.0), 4)
    2.7183
    """
    if loss is None or not math.isfinite(loss):
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return None


def first_user_turn(messages: list[dict]) -> str | None:
    for m in messages:
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return None


def pick_prompts(explicit: list[str], held_out: list[dict], train: list[dict], n: int) -> list[str]:
    """The eval prompts: the ones given, else the first user turns of held-out examples
    (training examples when nothing is held out), without repeats."""
    if explicit:
        return list(explicit)
    out: list[str] = []
    for row in [*held_out, *train]:
        prompt = first_user_turn(row["messages"])
        if prompt and prompt not in out:
            out.append(prompt)
        if len(out) >= n:
            break
    return out


def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Answer each prompt as a single user turn; greedy when temperature is 0."""
    import torch

    params = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "do_sample": temperature > 0,
        "seed": seed,
    }
    if not prompts:
        return []
    torch.manual_seed(seed)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    was_training = model.training
    model.eval()
    device = next(p for p in model.parameters()).device
    out: list[dict[str, Any]] = []
    try:
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i : i + batch_size]
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
                )
                for p in chunk
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                device
            )
            kwargs: dict[str, Any] = {
                "max_new_tokens": max_new_tokens,
                "pad_token_id": tokenizer.pad_token_id,
            }
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature)
            else:
                kwargs.update(do_sample=False)
            with torch.no_grad():
                gen = model.generate(**enc, **kwargs)
            width = enc["input_ids"].shape[1]
            for prompt, row in zip(chunk, gen, strict=True):
                text = tokenizer.decode(row[width:], skip_special_tokens=True)
                out.append({"prompt": prompt, "output": text, "params": params})
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out
