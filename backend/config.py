"""Settings for the studio, read once from env, `.env` and `.streamlit/secrets.toml`.

Order of precedence: explicit arguments, environment, `.env`, `.streamlit/secrets.toml`, defaults;
`.env` and the secrets file are the project's (beside pyproject.toml), whatever the current folder.
Secrets are `SecretStr`: they print masked and are only unwrapped at the point of use (an HTTP
client), never written to the database, logs, job specs or session state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# resolved from the project, never from the folder the studio was started in
PROJECT = Path(__file__).resolve().parents[1]
SECRETS_TOML = PROJECT / ".streamlit" / "secrets.toml"
ENV_FILE = PROJECT / ".env"


class Settings(BaseSettings):
    """Everything the studio needs to know about its surroundings."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    workspace: Path = Field(
        Path("workspace"),
        validation_alias=AliasChoices("FTSTUDIO_WORKSPACE", "workspace"),
        description="Folder holding the database, job folders, runs, models and exports.",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url"),
        description="Base URL of an OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp).",
    )
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key"),
        description="API key for the endpoint; local servers usually accept any value.",
    )
    llm_model: str | None = Field(
        None,
        validation_alias=AliasChoices("FTSTUDIO_LLM_MODEL", "OPENAI_MODEL", "llm_model"),
        description="Model name to ask the endpoint for (e.g. gpt-4o-mini, a vLLM model id).",
    )
    local_model_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("FTSTUDIO_LOCAL_MODEL", "local_model_dir"),
        description="A local transformers model folder used for generation and scoring.",
    )
    label_studio_url: str | None = Field(
        None,
        validation_alias=AliasChoices("LABEL_STUDIO_URL", "label_studio_url"),
        description="Base URL of a Label Studio server, e.g. http://127.0.0.1:8080.",
    )
    label_studio_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(
            "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_TOKEN", "label_studio_token"
        ),
        description="Label Studio API token (legacy token of the reviewing account).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        validation_alias=AliasChoices("FTSTUDIO_DEVICE", "device"),
        description="Where jobs run models: auto picks CUDA when present, else CPU.",
    )
    heartbeat_s: float = Field(
        2.0,
        validation_alias=AliasChoices("FTSTUDIO_HEARTBEAT_S", "heartbeat_s"),
        description="How often a running job refreshes its heartbeat, in seconds.",
    )
    stale_after_s: float = Field(
        30.0,
        validation_alias=AliasChoices("FTSTUDIO_STALE_AFTER_S", "stale_after_s"),
        description="A running job whose heartbeat is older than this is marked interrupted.",
    )
    watch_interval_s: float = Field(
        30.0,
        ge=0,
        validation_alias=AliasChoices("FTSTUDIO_WATCH_INTERVAL_S", "watch_interval_s"),
        description="How often the dashboard reads monitors' watched folders and starts the "
        "checks that have enough new prompts, in seconds (0: only on demand).",
    )

    session_hours: float = Field(
        12.0,
        gt=0,
        validation_alias=AliasChoices("FTSTUDIO_SESSION_HOURS", "session_hours"),
        description="How long a browser stays signed in (hours); signing out or disabling "
        "the account ends it at once.",
    )

    oidc_domains: str | None = Field(
        None,
        validation_alias=AliasChoices("FTSTUDIO_OIDC_DOMAINS", "oidc_domains"),
        description="Comma-separated e-mail domains allowed to sign in with the identity "
        "provider (e.g. example.com); empty: any domain.",
    )
    oidc_unknown: Literal["auto", "refuse", "reviewer"] = Field(
        "auto",
        validation_alias=AliasChoices("FTSTUDIO_OIDC_UNKNOWN", "oidc_unknown"),
        description="What a provider sign-in of someone with no account gets: refuse, or a "
        "reviewer; auto: refuse once any account exists.",
    )

    @field_validator("workspace", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the module's paths, read now (tests point them at a folder of their own)
        dotenv = DotEnvSettingsSource(settings_cls, env_file=ENV_FILE, env_file_encoding="utf-8")
        toml = TomlConfigSettingsSource(settings_cls, toml_file=SECRETS_TOML)
        return (init_settings, env_settings, dotenv, toml)

    def masked(self) -> dict[str, str]:
        """Effective settings as display strings, secrets shown only as set / not set."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "•••• (set)" if value.get_secret_value() else "(empty)"
            elif value is None:
                out[name] = "(not set)"
            else:
                out[name] = str(value)
        return out


def secret(value: SecretStr | None) -> str | None:
    """Unwrap a secret at the point of use."""
    return value.get_secret_value() if value is not None else None
