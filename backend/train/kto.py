"""KTO runs: the `train` job with method `kto` (TRL KTOTrainer + LoRA).

The job reads prompt / completion / label rows (TRL's conversational unpaired-preference
format) from `spec.data_path`, written by the submitter from review verdicts (accept =
desirable, reject = undesirable, a correction = the corrected answer desirable and the original
undesirable), thumbs ratings and imports (backend.prefs.feedback). No pairs are needed. The
reference is the base with the adapter switched off (ref_model=None on a PEFT model), as for
DPO. The desirable and undesirable weights default to values from the class counts of the
training rows, the way TRL's docs advise (desirable x weight : undesirable x weight in
[1, 4/3]); the job says which it used. Besides the loss, rewards/chosen, rewards/rejected,
rewards/margins, logps/* and kl are kept as metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.jsonl import read_jsonl
from backend.train.common import Method, lora_trainer, prompts_of_rows, trainer_kwargs
from backend.train.config import ConfigError, KTORunConfig, RunConfig
from backend.train.runtime import Runtime

KTO_PREFIXES = ("rewards/", "eval_rewards/", "logps/", "eval_logps/", "kl", "eval_kl")


def load_labelled(path: Path) -> list[dict]:
    """prompt / completion / label rows; a bad line is a ConfigError naming it."""

    def row(obj: dict) -> dict:
        if any(k not in obj for k in ("prompt", "completion", "label")):
            raise ValueError("a KTO row needs prompt, completion and label")
        if not isinstance(obj["label"], bool):
            raise ValueError(f"label must be true or false, not {obj['label']!r}")
        return {k: obj[k] for k in ("prompt", "completion", "label")}

    rows = list(read_jsonl(path, row, ConfigError))
    if not rows:
        raise ConfigError(f"{path} has no labelled answers")
    return rows


def kto_weights(
    n_desirable: int,
    n_undesirable: int,
    desirable: float | None = None,
    undesirable: float | None = None,
) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight): given ones kept, the others from the counts so
    that desirable x n_desirable / (undesirable x n_undesirable) lies in [1, 4/3] (TRL's
    advice, from Eq. 8 of the KTO paper); the scarcer class is weighted up.

    >>> kto_weights(30, 10)
    (1.0, 3.0)
    >>> kto_weights(10, 30)
    (3.0, 1.0)
    >>> kto_weights(10, 30, undesirable=0.5)
    (1.5, 0.5)
    """
    nd, nu = max(n_desirable, 1), max(n_undesirable, 1)
    if desirable is not None and undesirable is not None:
        return desirable, undesirable
    if desirable is not None:
        return desirable, round(desirable * nd / nu, 4)
    if undesirable is not None:
        return round(undesirable * nu / nd, 4), undesirable
    if nd >= nu:
        return 1.0, round(nd / nu, 4)
    return round(nu / nd, 4), 1.0


def kto_args(config: KTORunConfig, rt: Runtime, output_dir: Path, has_eval: bool, **overrides):
    """TRL KTOConfig for this run (float32 on CPU, bf16 where CUDA has it)."""
    from trl import KTOConfig

    kwargs = trainer_kwargs(config, rt, output_dir, has_eval)
    kwargs.update(
        beta=config.beta,
        desirable_weight=config.desirable_weight,
        undesirable_weight=config.undesirable_weight,
    )
    kwargs.update(overrides)
    return KTOConfig(**kwargs)


class KTO(Method):
    """Kahneman-Tversky optimisation on answers marked desirable or undesirable."""

    what = "KTO training"
    unit = "labelled answers"
    metric_prefixes = KTO_PREFIXES

    def load_rows(self, path: Path) -> list[dict]:
        return load_labelled(path)

    def build_trainer(
        self,
        config: KTORunConfig,
        rt: Runtime,
        model: Any,
        tokenizer: Any,
        train_rows: list[dict],
        eval_rows: list[dict],
        output_dir: Path,
        callbacks: list,
        **overrides: Any,
    ) -> Any:
        """KTOTrainer with a LoRA adapter; weights from the class counts unless given."""
        from trl import KTOTrainer

        n_good = sum(r["label"] for r in train_rows)
        dw, uw = kto_weights(
            n_good, len(train_rows) - n_good, config.desirable_weight, config.undesirable_weight
        )
        config = config.model_copy(update={"desirable_weight": dw, "undesirable_weight": uw})
        ctx = getattr(callbacks[0], "ctx", None) if callbacks else None
        if ctx is not None:
            ctx.event(
                f"KTO weights: desirable {dw:g}, undesirable {uw:g} "
                f"({n_good} desirable, {len(train_rows) - n_good} undesirable answers)",
                desirable_weight=dw,
                undesirable_weight=uw,
                n_desirable=n_good,
                n_undesirable=len(train_rows) - n_good,
            )
        args = kto_args(config, rt, output_dir, bool(eval_rows), **overrides)
        return lora_trainer(
            KTOTrainer, args, config, model, tokenizer, train_rows, eval_rows, callbacks
        )

    def prompts(self, config: RunConfig, eval_rows: list[dict], train_rows: list[dict]) -> list:
        """The eval prompts given, else the last user turn of each row's prompt."""
        return prompts_of_rows(config, eval_rows, train_rows)
