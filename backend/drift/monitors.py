"""A monitor's configuration: which drift methods run, with what thresholds, on which window.

Every field has a default that works on a fresh project; a user changes them per monitor on the
Monitoring page (the field descriptions are the widgets' help text) or in the stored JSON.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

METHODS = ("vocabulary", "classifier", "mmd", "length", "topics")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VocabularyConfig(_Strict):
    enabled: bool = Field(True, description="Compare word (unigram) distributions.")
    alpha: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="False-alarm rate of the permutation "
        "test: the threshold is the (1 - alpha) quantile of the distance between "
        "random splits of the pooled texts.",
    )
    min_distance: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Smallest Jensen-Shannon distance that counts as drift, however significant.",
    )
    n_permutations: int = Field(200, ge=10, le=5000, description="Random splits for the baseline.")
    top_terms: int = Field(15, ge=1, le=100, description="Terms that moved most, kept per report.")


class ClassifierConfig(_Strict):
    enabled: bool = Field(
        True,
        description="Adversarial validation on sentence embeddings: can a "
        "classifier tell the window from the reference?",
    )
    auc_threshold: float = Field(
        0.55,
        gt=0.5,
        lt=1,
        description="Drift when the cross-validated "
        "ROC AUC exceeds this (0.5 = indistinguishable).",
    )
    alpha: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="For small samples the threshold is "
        "raised to the (1 - alpha) quantile of AUCs with shuffled labels.",
    )
    small_sample: int = Field(
        1000,
        ge=0,
        description="Below this many texts on either side, a "
        "permutation baseline guards against chance AUCs.",
    )
    n_permutations: int = Field(50, ge=5, le=1000, description="Label shuffles for the baseline.")
    folds: int = Field(5, ge=2, le=20, description="Cross-validation folds.")
    dims: int = Field(
        32,
        ge=2,
        le=384,
        description="Principal components kept before the "
        "logistic regression (fewer = less overfitting on small samples).",
    )


class MMDConfig(_Strict):
    enabled: bool = Field(
        True,
        description="Maximum mean discrepancy between embeddings "
        "(RBF kernel, median-distance bandwidth).",
    )
    alpha: float = Field(0.01, gt=0, lt=0.5, description="Permutation test level.")
    n_permutations: int = Field(200, ge=10, le=5000, description="Permutations for the p-value.")


class LengthConfig(_Strict):
    enabled: bool = Field(
        True,
        description="Two-sample Kolmogorov-Smirnov test on prompt "
        "lengths in words; PSI reported beside it.",
    )
    alpha: float = Field(0.01, gt=0, lt=0.5, description="Test level of the KS critical value.")
    min_statistic: float = Field(
        0.1, ge=0, le=1, description="Smallest KS statistic that counts as drift."
    )


class TopicsConfig(_Strict):
    enabled: bool = Field(
        True,
        description="Share of each topic (or embedding cluster when the "
        "window has no topics) in the window against the reference.",
    )
    clusters: int = Field(
        8, ge=2, le=50, description="k-means clusters fitted on the reference embeddings."
    )
    alpha: float = Field(0.01, gt=0, lt=0.5, description="Permutation test level.")
    min_distance: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Smallest Jensen-Shannon distance between topic shares that counts as drift.",
    )
    n_permutations: int = Field(200, ge=10, le=5000, description="Random splits for the baseline.")


class QualityConfig(_Strict):
    enabled: bool = Field(
        True,
        description="Score the window's prompts that came with responses under the newest "
        "run (mean NLL and entropy of the responses, nats per token) and compare them with the "
        "same scores on that run's held-out data.",
    )
    margin: float = Field(
        0.25,
        ge=0,
        le=10,
        description="Quality alert when the window's mean exceeds the training-time mean "
        "x (1 + margin).",
    )
    min_responses: int = Field(
        5, ge=1, description="Fewest prompts with responses a window needs for a quality report."
    )
    max_examples: int = Field(
        200,
        ge=5,
        le=100_000,
        description="Examples scored at most on each side (a seeded sample; keeps scoring "
        "to seconds on CPU).",
    )
    judge_model: str | None = Field(
        None,
        max_length=200,
        description="LLM judge at the Settings endpoint (OPENAI_BASE_URL / OPENAI_API_KEY): "
        "when set, each check also has it rate the window's (prompt, response) pairs 1-10 "
        "and compares the mean with its rating of the newest run's held-out examples. "
        "Empty: no judge.",
    )
    judge_base_url: str | None = Field(
        None,
        max_length=500,
        pattern=r"^https?://[^\s/?#]+(/\S*)?$",
        description="OpenAI-compatible base URL the judge is asked at: the configured "
        "endpoint or one an admin allowed on Settings (any, set by an admin). Empty: the "
        "configured endpoint.",
    )
    judge_margin: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Judge alert when the window's mean score falls below the training-time "
        "mean x (1 - margin).",
    )


class MonitorConfig(_Strict):
    """Per-method settings plus the window and trigger policy of one monitor."""

    vocabulary: VocabularyConfig = Field(default_factory=VocabularyConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    mmd: MMDConfig = Field(default_factory=MMDConfig)
    length: LengthConfig = Field(default_factory=LengthConfig)
    topics: TopicsConfig = Field(default_factory=TopicsConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    min_window: int = Field(
        20,
        ge=2,
        description="A check waits until at least this many new "
        "production prompts have arrived since the last check.",
    )
    max_samples: int = Field(
        1000,
        ge=20,
        description="Each side is subsampled to this many texts "
        "for the embedding methods (keeps a check to seconds on CPU).",
    )
    min_methods: int = Field(
        1,
        ge=1,
        le=len(METHODS),
        description="An alert fires when at least this many methods say drift.",
    )
    auto_approve: bool = Field(
        False,
        description="Approve the retraining plan as soon as it is "
        "proposed (queues review and training without a click).",
    )
    seed: int = Field(0, description="Seed of every random split, so a check can be repeated.")

    def enabled_methods(self) -> list[str]:
        return [m for m in METHODS if getattr(self, m).enabled]


def parse_config(data: dict | str | None) -> MonitorConfig:
    """A stored config (dict or JSON); missing fields take today's defaults."""
    if data is None:
        return MonitorConfig()
    if isinstance(data, str):
        return MonitorConfig.model_validate_json(data)
    return MonitorConfig.model_validate(data)


def config_of(monitor: dict) -> MonitorConfig:
    """The parsed config of a monitor row (the store keeps it as a plain dict)."""
    return parse_config(monitor["config"])
