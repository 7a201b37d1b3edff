"""Uncertainty scoring: how unsure a model is of each example's response, given its prompt.

Two signals per example, over the tokens of the last assistant turn (prompt tokens masked):
- `nll`: mean token negative log-likelihood (nats per token; equals the causal-LM loss with the
  prompt masked), high when the response surprises the model;
- `entropy`: mean predictive entropy of the next-token distribution at those positions, high when
  the model is unsure what comes next whatever the response says.

Examples are sorted by length and batched so padding stays small (length bucketing). The
vocabulary projection runs on the response positions only, in chunks, so a 150k vocabulary never
materialises a [batch, seq, vocab] tensor. A batch that runs out of accelerator memory is halved
and retried down to one example (backend/integrations/oom.py), noted in the job's log. Runs
as the job kind `score`; the submitting action
(backend/review/actions.py, with backend/review/inputs.py) writes the examples to a JSONL file
({"id", "messages"} per line) and names it in the spec. This module never opens the database.

    python -m backend.review.scoring MODEL_DIR EXAMPLES.jsonl   # prints one JSON line per example
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from backend.jobs.context import JobContext
from backend.jobs.kinds import JobSpec
from backend.jsonl import read_jsonl

METHODS = ("nll", "entropy")


class ScoreSpec(JobSpec):
    examples_path: str = Field(description="JSONL file with one {id, messages} per line.")
    model_path: str = Field(description="A local transformers model folder (the base model).")
    adapter_path: str | None = Field(
        None, description="A LoRA adapter folder from a run, applied on top of the base model."
    )
    dataset: str | None = Field(None, description="Dataset name (for the record).")
    version_id: str | None = Field(None, description="Dataset version id (for the record).")
    round: int = Field(1, ge=1, description="Review round this scoring belongs to.")
    batch_size: int = Field(16, ge=1, le=1024, description="Examples per forward pass.")
    max_length: int = Field(1024, ge=8, le=131072, description="Tokens kept per example.")
    chunk_positions: int = Field(
        512, ge=1, description="Response positions projected onto the vocabulary at a time."
    )
    bucket: bool = Field(True, description="Sort by length before batching (less padding).")
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$", description="Where to run.")

    def title(self) -> str:
        what = self.dataset or Path(self.examples_path).name
        return f"score {what} under {model_label(self.model_path, self.adapter_path)}"


def model_label(model_path: str, adapter_path: str | None = None) -> str:
    """A short, stable name for a model (+ adapter), used as the `model` key of scores."""
    name = Path(model_path).name
    return (
        f"{name}+{Path(adapter_path).parent.name or Path(adapter_path).name}"
        if adapter_path
        else name
    )


@dataclass
class Encoded:
    id: str
    input_ids: list[int]
    prompt_len: int  # tokens before the response; the response is input_ids[prompt_len:]


def split_messages(messages: Sequence[dict]) -> tuple[list[dict], dict]:
    """The prompt (every turn before the last assistant turn) and that assistant turn."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "assistant":
            return list(messages[:i]), messages[i]
    raise ValueError("example has no assistant turn to score")


def _special_ids(tok: Any) -> set[int]:
    ids = set(getattr(tok, "all_special_ids", []) or [])
    for token_id, added in (getattr(tok, "added_tokens_decoder", None) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return ids


def trim_template_tail(tok: Any, prompt: list[dict], answer: dict, full: list[int]) -> list[int]:
    """`full` without what the chat template writes after the response's end-of-turn token
    (the newline of '<|end|>\n' or '<|im_end|>\n'): the model did not choose it, and at a
    near-constant few nats it would weigh more on short responses than on long ones. The
    end-of-turn token itself stays (stopping is the model's decision). Left unchanged when
    the tail cannot be found as the last tokens."""
    content = answer.get("content") or ""
    if not content:
        return full
    text = tok.apply_chat_template([*prompt, answer], tokenize=False)
    at = text.rfind(content)
    tail = text[at + len(content) :] if at >= 0 else ""
    if not tail:
        return full
    tail_ids = tok(tail, add_special_tokens=False)["input_ids"]
    if not tail_ids or full[-len(tail_ids) :] != tail_ids:
        return full
    keep = 1 if tail_ids[0] in _special_ids(tok) else 0
    return full[: len(full) - len(tail_ids) + keep]


def encode(tok: Any, example_id: str, messages: Sequence[dict], max_length: int) -> Encoded:
    """Token ids of prompt + response with the prompt length, via the chat template. The
    response ends at its end-of-turn token (`trim_template_tail`)."""
    prompt, answer = split_messages(messages)
    if getattr(tok, "chat_template", None):
        p_ids = tok.apply_chat_template(
            prompt, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        full = tok.apply_chat_template([*prompt, answer], tokenize=True, return_dict=False)
        if full[: len(p_ids)] != p_ids:  # template re-tokenises the boundary: fall back
            full = p_ids + tok(answer["content"], add_special_tokens=False)["input_ids"]
        else:
            full = trim_template_tail(tok, prompt, answer, full)
    else:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in prompt) + "assistant: "
        p_ids = tok(text)["input_ids"]
        full = p_ids + tok(answer["content"], add_special_tokens=False)["input_ids"]
        if tok.eos_token_id is not None:
            full.append(tok.eos_token_id)
    if len(full) > max_length:  # keep the response: cut the prompt from the left
        cut = len(full) - max_length
        full = full[cut:]
        p_ids = p_ids[cut:] if cut < len(p_ids) else []
    prompt_len = max(1, len(p_ids))  # the first token has no prediction
    if prompt_len >= len(full):
        raise ValueError(f"example {example_id}: empty response after tokenisation")
    return Encoded(example_id, list(full), prompt_len)


def batches(items: list[Encoded], batch_size: int, bucket: bool) -> Iterator[list[Encoded]]:
    """Fixed-size batches; with `bucket`, of similar lengths (sorted, longest first)."""
    order = sorted(items, key=lambda e: -len(e.input_ids)) if bucket else items
    for i in range(0, len(order), batch_size):
        yield order[i : i + batch_size]


def score_batch(model: Any, batch: list[Encoded], pad_id: int, chunk: int) -> list[dict]:
    """Mean NLL and mean entropy of each example's response tokens (one forward pass)."""
    import torch

    device = next(model.parameters()).device
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    target = torch.zeros((len(batch), width), dtype=torch.bool)  # positions that predict
    for row, e in enumerate(batch):  # right padding keeps real positions at 0..n-1
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        attn[row, :n] = 1
        target[row, e.prompt_len - 1 : n - 1] = True
    ids, attn, target = ids.to(device), attn.to(device), target.to(device)
    with torch.inference_mode():
        hidden = model.get_decoder()(input_ids=ids, attention_mask=attn).last_hidden_state
        head = model.get_output_embeddings()
        rows, cols = target.nonzero(as_tuple=True)
        labels = ids[rows, cols + 1]
        states = hidden[rows, cols]
        nll = torch.empty(len(rows), dtype=torch.float32, device=device)
        ent = torch.empty_like(nll)
        for s in range(0, len(rows), chunk):
            logits = head(states[s : s + chunk]).float()
            logp = torch.log_softmax(logits, dim=-1)
            nll[s : s + chunk] = -logp.gather(1, labels[s : s + chunk, None]).squeeze(1)
            ent[s : s + chunk] = -(logp.exp() * logp).sum(-1)
        counts = target.sum(1)
        nll_sum = torch.zeros(len(batch), device=device).index_add_(0, rows, nll)
        ent_sum = torch.zeros(len(batch), device=device).index_add_(0, rows, ent)
    out = []
    for row, e in enumerate(batch):
        n = int(counts[row])
        out.append(
            {
                "id": e.id,
                "nll": float(nll_sum[row]) / n,
                "entropy": float(ent_sum[row]) / n,
                "n_tokens": n,
            }
        )
    return out


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was asked for but CUDA is not available on this machine")
    return device


def load_model(model_path: str, adapter_path: str | None = None, device: str = "auto"):
    """Tokenizer and model in eval mode (base + LoRA adapter when given)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for path in (model_path, adapter_path):
        if path and not Path(path).is_dir():
            raise FileNotFoundError(f"model folder {path} does not exist")
    dev = pick_device(device)
    dtype = torch.bfloat16 if dev == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, use_safetensors=True)
    if adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_path).merge_and_unload()
    model.to(dev).eval()
    return tok, model


def read_examples(path: Path) -> list[dict]:
    """The {id, messages} lines of a JSONL file, with a clear error naming a bad line."""
    return list(
        read_jsonl(path, lambda obj: {"id": str(obj["id"]), "messages": list(obj["messages"])})
    )


def score_examples(
    tok: Any,
    model: Any,
    examples: list[dict],
    *,
    batch_size: int = 16,
    max_length: int = 1024,
    chunk: int = 512,
    bucket: bool = True,
    on_batch: Any = None,
    note: Any = None,
    size: Any = None,
    score_fn: Any = None,
) -> list[dict]:
    """Score every example; returns rows {id, nll, entropy, n_tokens} in input order.
    Out-of-memory halves the batch (`size`, a shared `BatchSize`, keeps the smaller size across
    calls); `note` hears of each halving; `score_fn` scores one batch (`score_batch`)."""
    from backend.integrations.oom import BatchSize, in_batches

    encoded = [encode(tok, e["id"], e["messages"], max_length) for e in examples]
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    size = size or BatchSize(batch_size)
    one_batch = score_fn or score_batch
    by_id: dict[str, dict] = {}
    for group in batches(encoded, batch_size, bucket):
        rows = in_batches(
            group, lambda c: one_batch(model, c, pad, chunk), size, note=note, what="scoring batch"
        )
        for row in rows:
            by_id[row["id"]] = row
        if on_batch:
            on_batch(len(by_id), group)
    return [by_id[e.id] for e in encoded]


def run_job(ctx: JobContext, spec: ScoreSpec) -> None:
    from backend.integrations.oom import BatchSize

    examples = read_examples(Path(spec.examples_path))
    done_ids = set(ctx.read_checkpoint().get("done", []))
    todo = [e for e in examples if e["id"] not in done_ids]
    ctx.progress(len(done_ids), len(examples), unit="examples", message="loading the model")
    tok, model = load_model(spec.model_path, spec.adapter_path, spec.device)
    label = model_label(spec.model_path, spec.adapter_path)
    ctx.event(
        f"scoring {len(todo)} examples under {label}",
        model=label,
        device=str(next(model.parameters()).device),
    )
    started = time.time()
    done = list(done_ids)
    size = BatchSize(spec.batch_size)

    # score in slices so a cancel or crash loses at most one slice
    step = max(spec.batch_size * 4, 1)
    for i in range(0, len(todo), step):
        ctx.check_cancelled()
        rows = score_examples(
            tok,
            model,
            todo[i : i + step],
            batch_size=spec.batch_size,
            max_length=spec.max_length,
            chunk=spec.chunk_positions,
            bucket=spec.bucket,
            note=ctx.log,
            size=size,
        )
        ctx.output(
            "scores.jsonl",
            [
                {
                    "example_id": r["id"],
                    "method": m,
                    "model": label,
                    "score": r[m],
                    "n_tokens": r["n_tokens"],
                    "version_id": spec.version_id,
                    "dataset": spec.dataset,
                    "round": spec.round,
                }
                for r in rows
                for m in METHODS
                if math.isfinite(r[m])
            ],
        )
        done.extend(r["id"] for r in rows)
        ctx.write_checkpoint({"done": done})
        ctx.progress(len(done), len(examples))
    elapsed = time.time() - started
    ctx.event(f"scored {len(todo)} examples in {elapsed:.1f}s", seconds=elapsed)


if __name__ == "__main__":
    _tok, _model = load_model(sys.argv[1])
    for _row in score_examples(_tok, _model, read_examples(Path(sys.argv[2]))):
        print(json.dumps(_row))  # noqa: T201
