"""The run config of a training job: one field per knob, each documented once.

`RunConfig` holds the fields every method shares and is the `train` job's spec; each method's
own fields sit on its subclass (`SFTRunConfig`, `DPORunConfig`), the way TRL keeps SFTConfig
and DPOConfig on one base. `METHODS` maps a method name to its config class; validating a dict
on `RunConfig` picks the class by the dict's `method` (sft when absent), so specs stored before
the split still load and resume. The Training page groups the fields by `GROUPS` and shows
each field's description as the widget's help; the CLI reads the same fields from
`--config run.yaml`. `preflight` checks what pydantic cannot (the model folder, the dataset
file, the target modules against the model's module names) before any job is queued.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from backend.jobs.kinds import JobSpec, SpecError, validate_spec

ALL_LINEAR = "all-linear"
METHOD_HELP = (
    "Training method: sft (supervised fine-tuning), dpo (preference pairs from a preference "
    "set), kto (answers marked good or bad: review verdicts, thumbs ratings, imports) or grpo "
    "(answers sampled for a dataset's prompts, scored by reward functions)."
)


class ConfigError(SpecError):
    """A run config that cannot run: the message names the field and what is wrong."""


class RunConfig(JobSpec):
    """What every LoRA/QLoRA run needs, whatever its method; the `train` job's spec."""

    about: ClassVar[str] = ""

    # Model
    base_model: str = Field(
        description="Base model: a local transformers folder (with config.json), or a hub id "
        "where the network allows."
    )
    method: str = Field("sft", description=METHOD_HELP)
    quant: Literal["auto", "4bit", "none"] = Field(
        "auto",
        description="Quantization of the base model: auto = 4-bit NF4 with double "
        "quantization on CUDA and none on CPU; 4bit forces QLoRA (on CPU with float32 compute, "
        "slow); none trains plain LoRA.",
    )
    merge: bool = Field(
        False,
        description="Also save the base model with the adapter merged "
        "in (runs/<id>/merged), for serving without PEFT.",
    )
    # Compute (backend/train/executors.py runs them)
    executor: Literal["local", "accelerate", "ray"] = Field(
        "local",
        description="Where the run trains: local (one process here), accelerate (several "
        "processes on this machine through accelerate launch: data parallel, FSDP where "
        "chosen; 2 processes over gloo on CPU), ray (submitted to a Ray cluster through the "
        "Jobs API).",
    )
    processes: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes for the accelerate executor (one per GPU). The batch size is "
        "per process: the global batch is batch size x accumulation x processes.",
    )
    fsdp: bool = Field(
        False,
        description="accelerate on CUDA only: shard weights, gradients and optimiser states "
        "across the processes (FSDP) instead of plain data parallel.",
    )
    ray_address: str | None = Field(
        None,
        description="Ray Jobs API address for a ray run (default: the FTSTUDIO_RAY_ADDRESS "
        "setting), e.g. http://127.0.0.1:8265.",
    )
    # Data
    dataset: str = Field(
        description="Dataset name, as shown on the Datasets page (or the "
        "file name when training from a JSONL file)."
    )
    dataset_version_id: str | None = Field(None, description="Dataset version id trained on.")
    dataset_hash: str | None = Field(None, description="Content hash of that dataset version.")
    data_path: str = Field(
        description='JSONL file the job reads: {"messages": [...]} lines for sft, '
        "prompt/chosen/rejected lines for dpo (written by the submitter from the version)."
    )
    eval_split: float = Field(
        0.1,
        ge=0.0,
        lt=0.9,
        description="Share of examples held out for evaluation loss and perplexity (0 = none).",
    )
    max_length: int = Field(
        512, ge=8, le=131072, description="Longest example in tokens; longer ones are truncated."
    )
    # LoRA
    lora_r: int = Field(
        16,
        ge=1,
        le=1024,
        description="LoRA rank: size of the low-rank "
        "update; higher learns more and costs more memory.",
    )
    lora_alpha: int = Field(
        32, ge=1, le=4096, description="LoRA alpha: the update is scaled by alpha / rank."
    )
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] = Field(
        default_factory=lambda: [ALL_LINEAR],
        description="Module names that get LoRA "
        "adapters (e.g. q_proj, v_proj), or all-linear for every linear layer but the head.",
    )
    # Optimisation
    learning_rate: float = Field(
        5e-5,
        gt=0.0,
        le=1.0,
        description="Peak learning rate; a cosine schedule decays it after the warm-up.",
    )
    warmup_ratio: float = Field(
        0.03,
        ge=0.0,
        le=0.5,
        description="Share of steps spent warming the learning rate up from zero.",
    )
    batch_size: int = Field(4, ge=1, le=4096, description="Examples per device per step.")
    grad_accum: int = Field(
        1,
        ge=1,
        le=1024,
        description="Gradient accumulation: steps summed before each optimiser update.",
    )
    epochs: float = Field(3.0, gt=0.0, le=1000.0, description="Passes over the training set.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimiser steps (overrides epochs when set)."
    )
    seed: int = Field(42, description="Seed for the split, LoRA initialisation and data order.")
    save_steps: int = Field(50, ge=1, description="Save a resumable checkpoint every N steps.")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept (oldest deleted).")
    # Evaluation
    eval_steps: int | None = Field(
        None,
        ge=1,
        description="Evaluate the held-out loss every N steps (default: at each checkpoint).",
    )
    eval_prompts: list[str] = Field(
        default_factory=list,
        description="Prompts answered after "
        "training, one per line (default: the first user turns "
        "of the held-out examples).",
    )
    n_eval_prompts: int = Field(
        4,
        ge=0,
        le=200,
        description="How many held-out prompts to answer when no eval prompts are given.",
    )
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Tokens generated per eval prompt.")
    temperature: float = Field(
        0.0,
        ge=0.0,
        le=5.0,
        description="Sampling temperature for eval generations (0 = greedy, reproducible).",
    )

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> RunConfig:
        """On the base class, validate with the config class of `obj["method"]`."""
        if cls is RunConfig and isinstance(obj, dict):
            method = obj.get("method", "sft")
            if method in METHODS:
                return METHODS[method].model_validate(obj, **kwargs)
        return super().model_validate(obj, **kwargs)

    @model_validator(mode="before")
    @classmethod
    def _other_methods_fields(cls, data: Any) -> Any:
        """A field of another method is dropped when it holds its default (specs stored before
        the split carry them all) and refused when it was set."""
        if not isinstance(data, dict) or cls is RunConfig:
            return data
        own = cls.model_fields
        data = dict(data)
        for other in METHODS.values():
            for name in other.model_fields.keys() - own.keys():
                if name in data:
                    value = data.pop(name)
                    if value != other.model_fields[name].get_default(call_default_factory=True):
                        raise ValueError(
                            f"{name}: only {other.method_name()} runs use this field, "
                            f"not {cls.method_name()}"
                        )
        return data

    @model_validator(mode="after")
    def _a_method_class(self) -> RunConfig:
        if type(self) is RunConfig:
            raise ValueError(f"use the config of a method ({', '.join(METHODS)})")
        return self

    @model_validator(mode="after")
    def _executor_fields(self) -> RunConfig:
        if self.processes > 1 and self.executor != "accelerate":
            raise ValueError(f"processes: {self.processes} processes need executor accelerate")
        if self.fsdp and self.executor != "accelerate":
            raise ValueError("fsdp: FSDP needs executor accelerate")
        return self

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"unknown method {value!r}; known: {', '.join(METHODS)}")
        return value

    @field_validator("target_modules")
    @classmethod
    def _modules(cls, value: list[str]) -> list[str]:
        value = [v.strip() for v in value if v.strip()]
        if not value:
            raise ValueError("name at least one target module, or all-linear")
        if ALL_LINEAR in value and len(value) > 1:
            raise ValueError("all-linear already covers every linear layer; give it alone")
        return value

    @classmethod
    def method_name(cls) -> str:
        return cls.model_fields["method"].default

    def title(self) -> str:
        return f"{self.method} {Path(self.base_model).name} on {self.dataset}"


class SFTRunConfig(RunConfig):
    """Supervised fine-tuning on chat examples (TRL SFTTrainer)."""

    about: ClassVar[str] = "supervised fine-tuning on chat examples (TRL SFTTrainer)"

    method: Literal["sft"] = Field("sft", description=METHOD_HELP)
    init_adapter: str | None = Field(
        None,
        description="Start from this LoRA adapter folder (a previous run's adapter, "
        "trained on the same base model) instead of a fresh LoRA; its rank, alpha and target "
        "modules apply and the lora_* fields are ignored.",
    )
    packing: bool = Field(
        False,
        description="Pack several short examples into one sequence "
        "of max_length (faster on short data).",
    )
    assistant_only_loss: bool = Field(
        True,
        description="Compute the loss on assistant "
        "tokens only (needs {% generation %} markers in the "
        "model's chat template).",
    )


class DPORunConfig(RunConfig):
    """Direct preference optimisation on prompt/chosen/rejected pairs (TRL DPOTrainer)."""

    about: ClassVar[str] = (
        "direct preference optimisation on prompt/chosen/rejected pairs (TRL DPOTrainer)"
    )

    method: Literal["dpo"] = Field("dpo", description=METHOD_HELP)
    beta: float = Field(
        0.1,
        gt=0.0,
        le=10.0,
        description="DPO only: how far the policy may move from the reference (lower = further).",
    )


class KTORunConfig(RunConfig):
    """Answers marked desirable or undesirable, no pairs needed (TRL KTOTrainer)."""

    about: ClassVar[str] = (
        "answers marked good or bad by reviewers, ratings or imports (TRL KTOTrainer)"
    )

    method: Literal["kto"] = Field("kto", description=METHOD_HELP)
    beta: float = Field(
        0.1,
        gt=0.0,
        le=10.0,
        description="KTO: how far the policy may move from the reference (lower = further).",
    )
    desirable_weight: float | None = Field(
        None,
        gt=0.0,
        le=100.0,
        description="Weight of the desirable answers' loss (default: set from the class counts "
        "so that desirable x weight : undesirable x weight lies in [1, 4/3], as TRL advises).",
    )
    undesirable_weight: float | None = Field(
        None,
        gt=0.0,
        le=100.0,
        description="Weight of the undesirable answers' loss (default 1, or from the class "
        "counts when desirable answers are the fewer).",
    )
    batch_size: int = Field(
        4, ge=2, le=4096, description="Examples per device per step (KTO needs at least 2)."
    )
    sources: dict[str, Any] = Field(
        default_factory=dict,
        description="Where the rows came from (verdicts, ratings, imports), written by the "
        "submitter for the run's lineage.",
    )


class GRPORunConfig(RunConfig):
    """Answers sampled for a dataset's prompts, scored by reward functions (TRL GRPOTrainer)."""

    about: ClassVar[str] = (
        "answers sampled for a dataset's prompts and scored by reward functions (TRL GRPOTrainer)"
    )

    method: Literal["grpo"] = Field("grpo", description=METHOD_HELP)
    rewards: list[str] = Field(
        default_factory=list,
        description="Reward functions, each SPEC[@WEIGHT]: regex:PATTERN, json-schema:FILE, "
        "reference (or reference:numeric:TOL), length:MIN-MAX, judge:RUBRIC_FILE, "
        "file:rewards/NAME.py:FUNCTION.",
    )
    num_generations: int = Field(
        4,
        ge=2,
        le=64,
        description="Answers sampled per prompt; each is scored against its group's mean. "
        "Examples per step x steps per update must be a multiple of it.",
    )
    max_completion_length: int = Field(
        64, ge=1, le=8192, description="Longest sampled answer in tokens."
    )
    gen_temperature: float = Field(
        1.0, gt=0.0, le=5.0, description="Sampling temperature of the answers being scored."
    )
    kl_beta: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="KL penalty towards the base model (0 = none; then no reference pass).",
    )
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group",
        description="Divide advantages by the reward spread of the group, the batch, or not "
        "at all (none avoids a bias towards easy prompts).",
    )
    completions_logged: int = Field(
        8, ge=0, le=256, description="Sampled answers kept with their rewards per logged step."
    )
    judge_model: str = Field("", description="Model of the LLM judge reward at the endpoint.")
    judge_base_url: str | None = Field(
        None, description="Endpoint of the LLM judge reward (default: Settings)."
    )

    @field_validator("rewards")
    @classmethod
    def _reward_specs(cls, value: list[str]) -> list[str]:
        from backend.train.rewards import parse_spec

        return [parse_spec(v).text for v in value if v.strip()]

    @model_validator(mode="after")
    def _groups_fit(self) -> GRPORunConfig:
        if not self.rewards:
            raise ValueError("rewards: give at least one reward function")
        if (self.batch_size * self.grad_accum) % self.num_generations:
            raise ValueError(
                f"num_generations: {self.num_generations} must divide examples per step x "
                f"steps per update ({self.batch_size} x {self.grad_accum})"
            )
        return self


# method name -> its config class (the runner of each is in backend.train.sft.RUNNERS)
METHODS: dict[str, type[RunConfig]] = {
    "sft": SFTRunConfig,
    "dpo": DPORunConfig,
    "kto": KTORunConfig,
    "grpo": GRPORunConfig,
}

# (group title, field names) in form order; every field of every method appears once.
GROUPS: list[tuple[str, list[str]]] = [
    ("Model", "base_model init_adapter method beta quant merge".split()),
    ("Data", "dataset eval_split max_length packing assistant_only_loss".split()),
    (
        "Alignment",
        "desirable_weight undesirable_weight sources rewards num_generations "
        "max_completion_length gen_temperature kl_beta scale_rewards completions_logged "
        "judge_model judge_base_url".split(),
    ),
    ("LoRA", "lora_r lora_alpha lora_dropout target_modules".split()),
    (
        "Optimisation",
        "learning_rate warmup_ratio batch_size grad_accum epochs max_steps seed save_steps "
        "save_total_limit".split(),
    ),
    ("Evaluation", "eval_steps eval_prompts n_eval_prompts max_new_tokens temperature".split()),
    ("Compute", "executor processes fsdp ray_address".split()),
]


def field_info(name: str):
    """A field's definition, from the shared base or the method that owns it."""
    for cls in (RunConfig, *METHODS.values()):
        if name in cls.model_fields:
            return cls.model_fields[name]
    raise KeyError(f"no run config field {name!r}")


# field -> (label in the user's words, the library's term for it). Forms show the label and
# put the term in the help text, so "LoRA rank" reads plainly and "r" is still findable.
LABELS: dict[str, tuple[str, str]] = {
    "base_model": ("Base model", "model_name_or_path (transformers)"),
    "init_adapter": ("Start from an earlier adapter", "a PEFT adapter folder"),
    "method": ("Training method", "the TRL trainer: SFTTrainer or DPOTrainer"),
    "beta": ("How far from the base model (DPO, KTO)", "beta (TRL DPOConfig, KTOConfig)"),
    "desirable_weight": ("Weight of good answers (KTO)", "desirable_weight (TRL KTOConfig)"),
    "undesirable_weight": ("Weight of bad answers (KTO)", "undesirable_weight (TRL KTOConfig)"),
    "sources": ("Where the rows came from", "lineage"),
    "rewards": ("Reward functions (GRPO)", "reward_funcs, reward_weights (TRL GRPOTrainer)"),
    "num_generations": ("Answers sampled per prompt", "num_generations (TRL GRPOConfig)"),
    "max_completion_length": (
        "Longest sampled answer (tokens)",
        "max_completion_length (TRL GRPOConfig)",
    ),
    "gen_temperature": ("Sampling temperature", "temperature (TRL GRPOConfig)"),
    "kl_beta": ("Pull towards the base model (GRPO)", "beta (TRL GRPOConfig)"),
    "scale_rewards": ("Scale rewards by", "scale_rewards (TRL GRPOConfig)"),
    "completions_logged": ("Answers kept per step", "log_completions (TRL GRPOConfig)"),
    "judge_model": ("Judge model", "an OpenAI-compatible chat model"),
    "judge_base_url": ("Judge endpoint", "base_url (OpenAI SDK)"),
    "quant": ("Quantization", "load_in_4bit, NF4 (bitsandbytes): QLoRA"),
    "merge": ("Also save a merged model", "merge_and_unload (PEFT)"),
    "dataset": ("Dataset", "train_dataset"),
    "eval_split": ("Share held out for evaluation", "eval_dataset split"),
    "max_length": ("Longest example (tokens)", "max_length (TRL)"),
    "packing": ("Pack short examples together", "packing (TRL SFTConfig)"),
    "assistant_only_loss": ("Learn from the answers only", "assistant_only_loss (TRL)"),
    "lora_r": ("LoRA rank", "LoRA rank (r), PEFT LoraConfig"),
    "lora_alpha": ("LoRA scale", "lora_alpha (PEFT LoraConfig)"),
    "lora_dropout": ("LoRA dropout", "lora_dropout (PEFT LoraConfig)"),
    "target_modules": ("Layers that get LoRA", "target_modules (PEFT LoraConfig)"),
    "learning_rate": ("Learning rate", "learning_rate"),
    "warmup_ratio": ("Warm-up share of the steps", "warmup_ratio"),
    "batch_size": ("Examples per step", "per_device_train_batch_size"),
    "grad_accum": ("Steps per update", "gradient_accumulation_steps"),
    "epochs": ("Passes over the data", "num_train_epochs"),
    "max_steps": ("Stop after this many steps", "max_steps"),
    "seed": ("Random seed", "seed"),
    "save_steps": ("Save a checkpoint every N steps", "save_steps"),
    "save_total_limit": ("Checkpoints kept", "save_total_limit"),
    "eval_steps": ("Evaluate every N steps", "eval_steps"),
    "eval_prompts": ("Prompts to answer after training", "eval prompts"),
    "n_eval_prompts": ("Held-out prompts to answer", "number of eval prompts"),
    "max_new_tokens": ("Answer length (tokens)", "max_new_tokens (generate)"),
    "temperature": ("Answer temperature", "temperature (generate)"),
    "executor": ("Where it trains", "executor: local | accelerate launch | Ray Jobs API"),
    "processes": ("Processes", "num_processes (accelerate launch)"),
    "fsdp": ("Shard the model across processes", "FSDP (accelerate)"),
    "ray_address": ("Ray cluster address", "JobSubmissionClient address (Ray Jobs API)"),
}


def label(name: str) -> str:
    """A field's label in the user's words ("LoRA rank" for lora_r)."""
    return LABELS[name][0] if name in LABELS else name.replace("_", " ")


def help_text(name: str) -> str:
    """The one description of a field, reused as the form's help, with the library's term
    ("Library term: LoRA rank (r), PEFT LoraConfig")."""
    text = field_info(name).description or ""
    term = LABELS.get(name, (None, name))[1]
    return f"{text} Library term: {term}." if text else f"Library term: {term}."


def in_words(message: str) -> str:
    """A config error as a form shows it: 'lora_r: ...' -> 'LoRA rank (lora_r): ...', so the
    message names the field by the label the user sees."""
    name, sep, rest = message.partition(":")
    return f"{label(name)} ({name}):{rest}" if sep and name in LABELS else message


def method_fields(method: str) -> set[str]:
    """The fields a run of `method` has (a form shows only these)."""
    return set(METHODS[method].model_fields)


def make_config(fields: dict[str, Any]) -> RunConfig:
    """Validate fields into a method's config and run the preflight; ConfigError on failure."""
    try:
        config = validate_spec("train", fields)
    except SpecError as exc:
        raise ConfigError(str(exc)) from None
    preflight(config)
    return config


def file_fields(path: Path) -> dict[str, Any]:
    """Spec fields for training straight from a JSONL file (no dataset in the store)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"dataset: no file {path}")
    return {
        "dataset": path.name,
        "dataset_version_id": None,
        "dataset_hash": hashlib.sha256(path.read_bytes()).hexdigest(),
        "data_path": str(path),
    }


# --- preflight -------------------------------------------------------------------------------


def _safetensors_names(path: Path) -> list[str]:
    """Tensor names from a safetensors header (8-byte length, then JSON), without torch."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    return [k for k in header if k != "__metadata__"]


def module_names(model_dir: Path) -> set[str]:
    """Module names of a local model, read from its weight files (cheap) or, failing that,
    from the architecture built on the meta device."""
    model_dir = Path(model_dir)
    names: list[str] = []
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        names = list(json.loads(index.read_text())["weight_map"])
    elif (model_dir / "model.safetensors").exists():
        names = _safetensors_names(model_dir / "model.safetensors")
    if names:
        return {n.rsplit(".", 1)[0] for n in names}
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return {n for n, _ in model.named_modules() if n}


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


# executor -> (the package it needs, how to install it)
EXECUTOR_PACKAGES = {
    "accelerate": ("accelerate", "pip install accelerate"),
    "ray": ("ray", "pip install 'finetune-studio[ray]' (ray[default])"),
}


def missing_executor_package(executor: str) -> str | None:
    """Why `executor` cannot run here (its package is not installed), or None."""
    import importlib.util

    if executor not in EXECUTOR_PACKAGES:
        return None
    module, install = EXECUTOR_PACKAGES[executor]
    if importlib.util.find_spec(module) is None:
        return f"executor {executor} needs the {module} package, which is not installed: {install}"
    return None


def check_executor(config: RunConfig) -> None:
    """Refuse a run whose executor cannot start here (ConfigError names the field)."""
    from backend.config import Settings

    problem = missing_executor_package(config.executor)
    if problem:
        raise ConfigError(f"executor: {problem}")
    if config.executor == "accelerate" and config.processes < 2:
        raise ConfigError("processes: the accelerate executor needs at least 2 processes")
    if config.executor == "ray" and not (config.ray_address or Settings().ray_address):
        raise ConfigError(
            "ray_address: the ray executor needs a cluster address: --ray-address URL or the "
            "FTSTUDIO_RAY_ADDRESS setting (the Jobs API URL, e.g. http://127.0.0.1:8265)"
        )


def preflight(config: RunConfig) -> None:
    """Check the model, the data and the target modules; raise ConfigError naming the field."""
    check_executor(config)
    model = Path(config.base_model).expanduser()
    if not model.exists():
        if (
            model.is_absolute()
            or config.base_model.startswith((".", "~"))
            or config.base_model.count("/") != 1
        ):
            raise ConfigError(f"base_model: no model folder at {config.base_model}")
        return  # looks like a hub id: checked when the job loads it
    if not (model / "config.json").exists():
        raise ConfigError(
            f"base_model: {model} has no config.json; is it a transformers model folder?"
        )
    data = Path(config.data_path)
    if not data.is_file():
        raise ConfigError(
            f"data_path: dataset file {data} does not exist (dataset {config.dataset!r})"
        )
    n = _count_lines(data)
    if n == 0:
        raise ConfigError(f"dataset {config.dataset!r}: {data} has no examples")
    if config.eval_split > 0 and n < 2:
        raise ConfigError(
            f"eval_split: dataset {config.dataset!r} has {n} example; hold-out "
            "needs at least 2 (set eval_split to 0)"
        )
    if getattr(config, "init_adapter", None):
        _check_init_adapter(config.init_adapter, config.base_model)
    if config.target_modules != [ALL_LINEAR]:
        names = module_names(model)
        leaves = {n.rsplit(".", 1)[-1] for n in names}
        unknown = [
            t
            for t in config.target_modules
            if t not in leaves and not any(n.endswith("." + t) or n == t for n in names)
        ]
        if unknown:
            raise ConfigError(
                f"target_modules: {', '.join(unknown)} not in {model.name}; its modules "
                f"include {', '.join(sorted(leaves - {'weight', 'bias'})[:12])}"
            )


def _check_init_adapter(adapter: str, base_model: str) -> None:
    """The adapter folder exists, is a PEFT adapter, and was trained on `base_model`."""
    folder = Path(adapter).expanduser()
    meta = folder / "adapter_config.json"
    if not meta.is_file():
        raise ConfigError(
            f"init_adapter: {folder} "
            + (
                "has no adapter_config.json; is it a run's adapter folder?"
                if folder.is_dir()
                else "does not exist"
            )
        )
    try:
        base = json.loads(meta.read_text()).get("base_model_name_or_path") or ""
    except ValueError as exc:
        raise ConfigError(f"init_adapter: {meta} is not JSON ({exc})") from None
    same = base == base_model or (
        Path(base).expanduser().exists()
        and Path(base).expanduser().resolve() == Path(base_model).expanduser().resolve()
    )
    if not same:
        raise ConfigError(
            f"init_adapter: {folder} was trained on {base or 'an unnamed base'}, "
            f"not on base_model {base_model}"
        )
