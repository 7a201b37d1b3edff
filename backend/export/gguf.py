"""GGUF for llama.cpp and Ollama, written with the `gguf` package from a merged model in memory.

Llama-family models only (`LlamaForCausalLM`, and Mistral, which llama.cpp reads as llama);
any other architecture is refused with `ExportError` naming it. Quantisations: `f16` (every
matrix in float16, norms in float32, as llama.cpp's converter does) and `q8_0` (matrices whose
rows split into 32-value blocks in Q8_0, the rest in float16). Tokenizers: byte-level BPE
(`tokenizer.ggml.model = gpt2`, the Llama 3 / Qwen / demo-model kind). The file carries the
chat template, the special tokens, the add-BOS flag and, as its EOS and EOT ids, the chat
template's end-of-turn token, so a runtime stops where the fine-tune learned to stop.

    write_gguf(model, tokenizer, path, quant="q8_0", eot_id=2, name="my-run")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

QUANTS = ("f16", "q8_0")
ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama"}
# llama.cpp's name for each per-layer weight of a HF Llama block
_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
# the pre-tokenizer split llama.cpp names for a byte-level vocabulary, by its regex
_LLAMA3_REGEX_HEAD = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"


class ExportError(ValueError):
    """An export cannot be made: what was wrong, and with which model."""


def check_supported(config: Any) -> str:
    """The GGUF architecture of a transformers config, or ExportError naming the one it is."""
    archs = list(getattr(config, "architectures", None) or [])
    for arch in archs:
        if arch in ARCHITECTURES:
            return ARCHITECTURES[arch]
    name = archs[0] if archs else getattr(config, "model_type", "unknown")
    raise ExportError(
        f"GGUF export of architecture {name} is not supported yet; supported: "
        f"{', '.join(sorted(ARCHITECTURES))}. The merged export works for any architecture."
    )


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's row order for q/k projections (its rotary embedding pairs rows as GPT-J)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def gguf_tensors(model: Any) -> list[tuple[str, np.ndarray]]:
    """(llama.cpp name, float32 array) of every weight of a HF Llama model."""
    cfg = model.config
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads
    out: list[tuple[str, np.ndarray]] = []
    for name, tensor in model.state_dict().items():
        arr = tensor.detach().float().cpu().numpy()
        if name == "model.embed_tokens.weight":
            out.append(("token_embd.weight", arr))
        elif name == "model.norm.weight":
            out.append(("output_norm.weight", arr))
        elif name == "lm_head.weight":
            if not cfg.tie_word_embeddings:
                out.append(("output.weight", arr))
        elif name.startswith("model.layers."):
            _, _, idx, rest = name.split(".", 3)
            stem, _, kind = rest.rpartition(".")
            if stem not in _LAYER_NAMES or kind != "weight":
                raise ExportError(f"GGUF export: no llama.cpp name for tensor {name}")
            if stem == "self_attn.q_proj":
                arr = _permute(arr, n_head)
            elif stem == "self_attn.k_proj":
                arr = _permute(arr, n_kv)
            out.append((f"blk.{idx}.{_LAYER_NAMES[stem]}.weight", arr))
        elif not name.endswith("rotary_emb.inv_freq"):
            raise ExportError(f"GGUF export: no llama.cpp name for tensor {name}")
    return out


def _encode(arr: np.ndarray, quant: str):
    """(data, raw dtype) of one tensor under `quant`: 1-D tensors stay float32."""
    import gguf

    if arr.ndim == 1:
        return arr.astype(np.float32), None
    if quant == "q8_0" and arr.shape[-1] % 32 == 0:
        q = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(arr, q), q
    return arr.astype(np.float16), None


def pre_tokenizer_name(tokenizer: Any) -> str:
    """llama.cpp's `tokenizer.ggml.pre` for this byte-level tokenizer: `llama-bpe` for the
    Llama 3 split, else `gpt-2` (the plain byte-level split); anything else is refused."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
    if spec.get("type") == "ByteLevel" and spec.get("use_regex", True):
        return "gpt-2"
    if spec.get("type") == "Sequence":
        for step in spec.get("pretokenizers", []):
            pattern = (step.get("pattern") or {}).get("Regex", "")
            if step.get("type") == "Split" and pattern.startswith(_LLAMA3_REGEX_HEAD):
                return "llama-bpe"
    raise ExportError(
        f"GGUF export: the tokenizer's pre-tokenizer ({spec.get('type', 'none')}) has no "
        "llama.cpp equivalent here yet; supported: byte-level BPE (GPT-2 or Llama 3 split)"
    )


def tokenizer_fields(tokenizer: Any, vocab_size: int) -> dict[str, Any]:
    """The vocabulary of a byte-level BPE tokenizer as GGUF stores it: tokens by id, their
    types (special added tokens CONTROL, other added tokens USER_DEFINED, padding UNUSED) and
    merges. ExportError for a tokenizer that is not byte-level BPE."""
    import gguf

    model = json.loads(tokenizer.backend_tokenizer.to_str()).get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ExportError(
            f"GGUF export: tokenizer model {model.get('type')!r} is not supported yet; "
            "supported: byte-level BPE"
        )
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i in added:
            tokens.append(added[i].content)
            special = added[i].special
            types.append(int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED))
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(int(gguf.TokenType.NORMAL))
        else:
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokens": tokens, "types": types, "merges": merges}


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts BOS in front of a plain encode."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]


def write_gguf(
    model: Any,
    tokenizer: Any,
    path: Path,
    *,
    quant: str,
    eot_id: int,
    name: str,
    chat_template: str | None = None,
) -> Path:
    """Write `model` (a merged HF Llama, any dtype) and its tokenizer to a GGUF file at `path`
    (written beside it, then renamed into place)."""
    import gguf

    if quant not in QUANTS:
        raise ExportError(f"quant: {quant!r} is not one of {', '.join(QUANTS)}")
    cfg = model.config
    arch = check_supported(cfg)
    pre = pre_tokenizer_name(tokenizer)
    vocab = tokenizer_fields(tokenizer, cfg.vocab_size)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    path = Path(path)
    tmp = path.with_name(f".{path.name}.writing")
    writer = gguf.GGUFWriter(tmp, arch)
    writer.add_name(name)
    writer.add_file_type(
        gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    )
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads or cfg.num_attention_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope = getattr(cfg, "rope_parameters", None) or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))))
    if rope.get("rope_type", "default") not in ("default", None):
        raise ExportError(f"GGUF export: rope scaling {rope.get('rope_type')!r} not supported yet")
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(vocab["tokens"])
    writer.add_token_types(vocab["types"])
    writer.add_token_merges(vocab["merges"])
    if tokenizer.bos_token_id is not None:
        writer.add_bos_token_id(tokenizer.bos_token_id)
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(tokenizer.pad_token_id)
    # the end-of-turn token is what a chat runtime must stop at: EOS and EOT both name it
    writer.add_eos_token_id(eot_id)
    writer.add_eot_token_id(eot_id)
    writer.add_add_bos_token(adds_bos(tokenizer))
    writer.add_add_eos_token(False)
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if template:
        writer.add_chat_template(template)
    for tname, arr in gguf_tensors(model):
        data, raw = _encode(arr, quant)
        if raw is None:
            writer.add_tensor(tname, data)
        else:
            writer.add_tensor(tname, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return path


def read_metadata(path: Path) -> dict[str, Any]:
    """The scalar and string fields of a GGUF file (arrays as their length), for checks."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    out: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
            out[key] = len(field.data)
        else:
            out[key] = field.contents()
    return out
