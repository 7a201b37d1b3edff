"""The `export` job: a run's adapter shipped as a merged model, a GGUF, or a GGUF with an
Ollama Modelfile, verified against base + adapter before it is marked done.

Steps: load base + adapter (float32) and record the reference (logits and 32 greedy tokens on
fixed chat prompts); merge; write the format into a hidden folder beside `out_dir`; load what
was written back (safetensors, or the GGUF through transformers' GGUF loader) and compare
(backend.export.verify); move the folder into place with an `export.json` manifest. The one
`export.jsonl` row (format, path, size, hash, checks and their numbers, wall times, commands)
is ingested into the `exports` table. A failed check writes the row with `verified` false and
fails the job with the numbers; the half-made folder is removed, so nothing looks shippable.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from backend.export import merged as merging
from backend.export import ollama, verify
from backend.export.gguf import read_metadata, write_gguf
from backend.jobs.context import JobContext
from backend.jobs.kinds import JobSpec

FORMATS = ("merged", "gguf", "ollama")
MANIFEST = "export.json"


class ExportSpec(JobSpec):
    run_id: str = Field(description="The training run whose adapter is exported.")
    base_model: str = Field(description="The run's base model folder.")
    adapter: str = Field(description="The run's adapter folder.")
    format: Literal["merged", "gguf", "ollama"] = Field(
        "merged",
        description="merged: safetensors folder; gguf: one GGUF file for llama.cpp; "
        "ollama: the GGUF with a Modelfile beside it.",
    )
    quant: Literal["f16", "q8_0"] | None = Field(
        None, description="GGUF quantisation (gguf and ollama; default q8_0)."
    )
    out_dir: str = Field(description="Folder the export is written to.")
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Model name for Ollama and vLLM."
    )
    prompts: list[str] = Field(
        default_factory=lambda: list(verify.PROMPTS),
        min_length=1,
        description="Chat prompts the checks run on.",
    )

    @model_validator(mode="after")
    def _quant_fits_format(self) -> ExportSpec:
        if self.format == "merged" and self.quant:
            raise ValueError("quant applies to gguf and ollama exports, not merged")
        if self.format != "merged" and self.quant is None:
            self.quant = "q8_0"
        return self

    def title(self) -> str:
        return f"export {self.run_id} as {self.format}" + (f" {self.quant}" if self.quant else "")


class ExportFailed(RuntimeError):
    """An export failed its checks; the message carries the numbers."""


def folder_digest(folder: Path) -> tuple[int, str]:
    """(total bytes, sha256) of a folder's files: the hash of each file's name and content in
    name order, so the same export gives the same hash."""
    total, digest = 0, hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        total += path.stat().st_size
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return total, digest.hexdigest()


def _device() -> str:
    import torch

    from backend.config import Settings

    return "cuda" if torch.cuda.is_available() and Settings().device != "cpu" else "cpu"


class _Clock:
    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.times: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = round(now - self.t, 3)
        self.t = now


def _export_merged(spec, tok, model, tmp: Path, eot: int, ref, device: str, dtype: str) -> dict:
    """Save the merged folder, load it back and hold it to the reference."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merging.save_merged(model, tok, tmp, eot)
    back = (
        AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32, use_safetensors=True)
        .to(device)
        .eval()
    )
    back_tok = AutoTokenizer.from_pretrained(tmp)
    checks = {"merged": verify.compare(ref, back, verify.TOLERANCE[f"merged-{dtype}"])}
    stops = back.generation_config.eos_token_id
    checks["stops"] = verify.stop_check(stops, eot, "generation_config.json")
    same = verify.prompt_ids(back_tok, spec.prompts) == ref.prompt_ids
    checks["chat_template"] = {"ok": same, "message": None if same else "template differs"}
    checks["tokens_to_eos"] = verify.tokens_to_eos(
        back, ref.prompt_ids[0], checks["stops"]["eos_ids"], tok.pad_token_id
    )
    return checks


def _export_gguf(spec, tok, model, tmp: Path, eot: int, ref, device: str, dtype: str) -> dict:
    """Write the GGUF, load it back through transformers and hold it to the merged model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model.to(torch.float32)  # the stored dtype's values, computed in float32
    checks = {"merged": verify.compare(ref, model, verify.TOLERANCE[f"merged-{dtype}"])}
    merged_ref = verify.Probe(
        ref.prompt_ids,
        ref.greedy,
        [verify.logits_of(model, r + g) for r, g in zip(ref.prompt_ids, ref.greedy, strict=True)],
    )
    tmp.mkdir(parents=True)
    path = tmp / f"{spec.name}-{spec.quant}.gguf"
    write_gguf(model.cpu(), tok, path, quant=spec.quant, eot_id=eot, name=spec.name)
    back = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=path.name, dtype=torch.float32)
    back = back.to(device).eval()
    checks["gguf"] = verify.compare(merged_ref, back, verify.TOLERANCE[spec.quant])
    meta = read_metadata(path)
    stops = [meta.get("tokenizer.ggml.eos_token_id"), meta.get("tokenizer.ggml.eot_token_id")]
    checks["stops"] = verify.stop_check([s for s in stops if s is not None], eot, "gguf metadata")
    same = meta.get("tokenizer.chat_template") == tok.chat_template
    checks["chat_template"] = {"ok": same, "message": None if same else "template differs"}
    back_tok = AutoTokenizer.from_pretrained(tmp, gguf_file=path.name)
    same_ids = [
        back_tok(tok.decode(ids), add_special_tokens=False)["input_ids"] for ids in ref.prompt_ids
    ] == ref.prompt_ids
    checks["tokenizer"] = {
        "ok": same_ids,
        "message": None if same_ids else "the GGUF's tokenizer encodes the prompts differently",
    }
    checks["tokens_to_eos"] = verify.tokens_to_eos(
        back, ref.prompt_ids[0], checks["stops"]["eos_ids"], tok.pad_token_id
    )
    if spec.format == "ollama":
        try:
            pieces = ollama.template_pieces(tok)
        except ollama.TemplateTranslationError as exc:
            checks["ollama_template"] = {"ok": False, "message": f"Modelfile TEMPLATE: {exc}"}
            return checks
        checks["ollama_template"] = ollama.check_pieces(tok, pieces)
        stop_text = [tok.convert_ids_to_tokens(i) for i in merging.stop_ids(tok, eot)]
        text = ollama.modelfile(
            path.name, pieces, stops=stop_text, context=model.config.max_position_embeddings
        )
        (tmp / "Modelfile").write_text(text)
    return checks


def run_export(ctx: JobContext, spec: ExportSpec) -> None:
    """The `export` job's runner."""
    device, clock = _device(), _Clock()
    total = 4
    ctx.progress(0, total, unit="steps", message="loading base model and adapter")
    tok, ref_model = merging.load_reference(spec.base_model, Path(spec.adapter), device)
    eot = merging.end_of_turn(tok)
    ids = verify.prompt_ids(tok, spec.prompts)
    ref = verify.probe(ref_model, ids, tok.pad_token_id)
    clock.lap("reference")
    ctx.event(
        f"reference: base + adapter on {device}, end-of-turn token "
        f"{tok.convert_ids_to_tokens(eot)!r} ({eot})"
    )
    ctx.check_cancelled()
    ctx.progress(1, total, message="merging the adapter into the base")
    dtype = merging.storage_dtype(spec.base_model)
    model = merging.merge(ref_model, dtype)
    clock.lap("merge")
    out = Path(spec.out_dir)
    tmp = out.with_name(f".{out.name}.{ctx.id}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    ctx.progress(2, total, message=f"writing {spec.format}")
    write = _export_merged if spec.format == "merged" else _export_gguf
    try:
        checks = write(spec, tok, model, tmp, eot, ref, device, dtype)
        clock.lap("write_and_verify")
        clock.times["total"] = round(sum(clock.times.values()), 3)
        ctx.progress(3, total, message="recording the export")
        _publish(ctx, spec, checks, tmp, out, clock.times)
    finally:  # a failed export leaves nothing behind that could be taken for one
        shutil.rmtree(tmp, ignore_errors=True)
    ctx.progress(total, total, message="done")


def _publish(
    ctx: JobContext, spec: ExportSpec, checks: dict, tmp: Path, out: Path, times: dict
) -> None:
    """Record the export (export.jsonl) and move it into place, or fail with the numbers."""
    problems = verify.failures(checks)
    size, sha = folder_digest(tmp)
    gguf_name = f"{spec.name}-{spec.quant}.gguf" if spec.format != "merged" else None
    served_path = str(out / gguf_name) if gguf_name else str(out)
    commands = {"vllm": ollama.vllm_command(spec.base_model, spec.name, spec.adapter)}
    if spec.format == "ollama":
        commands["ollama"] = ollama.ollama_command(spec.name, str(out / "Modelfile"))
    if spec.format == "gguf":
        commands["llama_cpp"] = f"llama-server -m {served_path} --jinja"
    row: dict[str, Any] = {
        "id": ctx.id,
        "run_id": spec.run_id,
        "format": spec.format,
        "quant": spec.quant,
        "path": served_path,
        "size_bytes": size,
        "sha256": sha,
        "verified": not problems,
        "checks": checks,
        "commands": commands,
        "wall_s": times,
        "error": "; ".join(problems) or None,
        "t": time.time(),
    }
    if problems:
        ctx.output("export.jsonl", [row])
        raise ExportFailed("export failed its checks: " + "; ".join(problems))
    (tmp / MANIFEST).write_text(json.dumps(row, indent=2, default=str))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    ctx.output("export.jsonl", [row])
    ctx.event(
        f"{spec.format} export verified: {size / 2**20:.1f} MiB at {served_path}",
        path=served_path,
        checks={k: v for k, v in checks.items() if k != "tokens_to_eos"},
    )
