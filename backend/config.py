"""Settings for the studio, read from env, saved settings, `.env` and `.streamlit/secrets.toml`.

Order of precedence: explicit arguments, environment, the settings an admin saved in the
browser (`workspace/settings.json`, and `workspace/secrets.json` for secrets: both mode 0600),
`.env`, `.streamlit/secrets.toml`, defaults. `.env` and the secrets file are the project's
(beside pyproject.toml), whatever the current folder. `explain()` says where each effective
value comes from and which saved value the environment overrides.

Secrets are `SecretStr`: they print masked and are only unwrapped at the point of use (an HTTP
client), never written to the database, logs, job specs or session state; the one file that
holds a secret typed in the browser is `secrets.json`, which the studio never shows back.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# resolved from the project, never from the folder the studio was started in
PROJECT = Path(__file__).resolve().parents[1]
SECRETS_TOML = PROJECT / ".streamlit" / "secrets.toml"
ENV_FILE = PROJECT / ".env"

# what an admin may save in the browser: plain values, and secrets (kept apart, never shown)
SETTINGS_FILE = "settings.json"
SECRETS_FILE = "secrets.json"
SAVED_FIELDS = ("openai_base_url", "llm_model", "label_studio_url", "allowed_endpoints")
SECRET_FIELDS = ("openai_api_key", "label_studio_token", "endpoint_keys")


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
    allowed_endpoints: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("FTSTUDIO_ALLOWED_ENDPOINTS", "allowed_endpoints"),
        description="Other OpenAI-compatible base URLs every user may pick in a form (the "
        "configured endpoint is always offered); only admins may type a URL not listed.",
    )
    endpoint_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("endpoint_keys"),
        description="API keys of allowed endpoints (base URL -> key), each sent only to its "
        "own endpoint's origin; saved in the browser only.",
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
    ray_address: str | None = Field(
        None,
        validation_alias=AliasChoices("FTSTUDIO_RAY_ADDRESS", "ray_address"),
        description="Ray cluster address for runs with executor ray: the Jobs API (dashboard) "
        "URL, e.g. http://127.0.0.1:8265.",
    )
    ray_shared_path: Path | None = Field(
        None,
        validation_alias=AliasChoices("FTSTUDIO_RAY_SHARED_PATH", "ray_shared_path"),
        description="This workspace as the Ray cluster's nodes see it (shared storage); "
        "default: the same path as here.",
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

    promotion_gate: str | None = Field(
        None,
        validation_alias=AliasChoices("FTSTUDIO_PROMOTION_GATE", "promotion_gate"),
        description="Rules a retraining plan's run must pass before it is promoted, "
        "comma-separated SUITE:SCORER:MARGIN (e.g. support-faq:rouge_l:0.02); empty: plans "
        "promote nothing.",
    )
    mlflow_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("FTSTUDIO_MLFLOW_URI", "mlflow_uri"),
        description="Mirror each run's params, metrics and artefacts to this MLflow tracking "
        "URI (a local folder such as ./mlruns, or a server); empty: off.",
    )
    wandb_mode: Literal["off", "offline"] = Field(
        "off",
        validation_alias=AliasChoices("FTSTUDIO_WANDB_MODE", "wandb_mode"),
        description="offline: mirror each run to a local W&B offline run (wandb sync uploads "
        "it later); off: no W&B.",
    )

    @field_validator("workspace", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("allowed_endpoints", mode="before")
    @classmethod
    def _url_list(cls, value: Any) -> Any:
        """A list, or one string of URLs separated by commas or white space (env, .env)."""
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if isinstance(value, list | tuple):
            return unique_urls(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env, saved, dotenv, toml = _sources(settings_cls)
        return (init_settings, env, saved, dotenv, toml)

    def masked(self) -> dict[str, str]:
        """Effective settings as display strings, secrets shown only as set / not set."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "•••• (set)" if value.get_secret_value() else "(empty)"
            elif name == "endpoint_keys":
                out[name] = f"•••• ({len(value)} set)" if value else "(not set)"
            elif value is None or value == []:
                out[name] = "(not set)"
            elif isinstance(value, list):
                out[name] = ", ".join(map(str, value))
            else:
                out[name] = str(value)
        return out


def secret(value: SecretStr | None) -> str | None:
    """Unwrap a secret at the point of use."""
    return value.get_secret_value() if value is not None else None


def normal_url(url: str) -> str:
    """A base URL as compared and stored: trimmed, scheme and host lower-cased, no trailing /.

    >>> normal_url(" HTTP://Host:8000/v1/ ")
    'http://host:8000/v1'
    """
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.rstrip("/")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")


def unique_urls(urls: list[str] | tuple[str, ...]) -> list[str]:
    """Normalised URLs, blanks dropped, each once, in the given order."""
    out: list[str] = []
    for url in urls:
        u = normal_url(str(url))
        if u and u not in out:
            out.append(u)
    return out


# --- sources: every source's keys as field names, so that priority alone decides --------------


def _aliases(settings_cls: type[BaseSettings]) -> dict[str, list[str]]:
    """field name -> the names it may be given by (its aliases in order, then itself)."""
    out: dict[str, list[str]] = {}
    for name, field in settings_cls.model_fields.items():
        alias = field.validation_alias
        choices = [c for c in getattr(alias, "choices", []) if isinstance(c, str)]
        if isinstance(alias, str):
            choices = [alias]
        out[name] = [*choices, *([name] if name not in choices else [])]
    return out


class _ByName(PydanticBaseSettingsSource):
    """Another source, its keys renamed to field names (the first alias found wins). Without
    it, a value saved under a field name would lose to a `.env` value under an alias whatever
    the sources' order, since pydantic tries the aliases in their declared order."""

    def __init__(self, inner: PydanticBaseSettingsSource, label: str):
        super().__init__(inner.settings_cls)
        self.inner, self.label = inner, label

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does it all
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data = self.inner()
        lower = {k.lower(): v for k, v in data.items()}
        out: dict[str, Any] = {}
        for name, names in _aliases(self.settings_cls).items():
            for key in names:
                if key in data or key.lower() in lower:
                    out[name] = data[key] if key in data else lower[key.lower()]
                    break
        return out


def read_json(path: Path) -> dict[str, Any]:
    """A saved settings file's content; {} when it is missing or unreadable (the Settings
    page says so), so a damaged file never stops the studio."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def saved_values(root: Path) -> dict[str, Any]:
    """What an admin saved in the browser for this workspace (secrets included, unwrapped:
    for Settings() and the saving action only)."""
    plain = read_json(root / SETTINGS_FILE)
    secrets = read_json(root / SECRETS_FILE)
    out = {k: plain[k] for k in SAVED_FIELDS if plain.get(k) not in (None, "", [])}
    out |= {k: secrets[k] for k in SECRET_FIELDS if secrets.get(k) not in (None, "", {})}
    return out


class _Saved(PydanticBaseSettingsSource):
    """The settings saved in the browser, from the workspace the other sources name."""

    label = "saved in Settings"

    def __init__(self, settings_cls: type[BaseSettings], *before: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.before = before

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does it all
        return None, field_name, False

    def workspace(self) -> Path:
        for key in ("FTSTUDIO_WORKSPACE", "workspace"):
            if self._current_state.get(key):  # the explicit arguments, and the environment
                return Path(self._current_state[key]).expanduser().resolve()
        for source in self.before:
            found = source().get("workspace")
            if found:
                return Path(found).expanduser().resolve()
        return Path("workspace").resolve()

    def __call__(self) -> dict[str, Any]:
        return saved_values(self.workspace())


def _sources(settings_cls: type[BaseSettings]):
    """(environment, saved, .env, secrets.toml), each keyed by field name; the module's
    paths are read now (tests point them at a folder of their own)."""
    env = _ByName(EnvSettingsSource(settings_cls), "environment")
    dotenv = _ByName(
        DotEnvSettingsSource(settings_cls, env_file=ENV_FILE, env_file_encoding="utf-8"), ".env"
    )
    toml = _ByName(TomlConfigSettingsSource(settings_cls, toml_file=SECRETS_TOML), "secrets.toml")
    return env, _Saved(settings_cls, env, dotenv, toml), dotenv, toml


def explain(workspace: Path | None = None) -> dict[str, dict[str, Any]]:
    """Where each setting's effective value comes from: {field: {"source": label, "env":
    its environment variable, "overrides_saved": whether the environment hides a value saved
    in the browser}}. Labels: environment, saved in Settings, .env, secrets.toml, default."""
    env, saved, dotenv, toml = _sources(Settings)
    found = {s: s() for s in (env, dotenv, toml)}
    saved_data = saved_values(workspace) if workspace is not None else saved()
    names = _aliases(Settings)
    out: dict[str, dict[str, Any]] = {}
    for name in Settings.model_fields:
        order = [
            (env.label, name in found[env]),
            (saved.label, name in saved_data),
            (dotenv.label, name in found[dotenv]),
            (toml.label, name in found[toml]),
        ]
        source = next((label for label, has in order if has), "default")
        out[name] = {
            "source": source,
            "env": names[name][0] if names[name][0] != name else None,
            "overrides_saved": source == env.label and name in saved_data,
        }
    return out


# --- the saved files ----------------------------------------------------------------------------


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` atomically with `data` as JSON, readable by this user only (0600)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)


def write_saved(root: Path, values: dict[str, Any], secrets: dict[str, Any]) -> None:
    """Write the browser's settings (plain `values` and `secrets`, each file 0600); a file
    with nothing left in it is removed."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data, allowed in (
        (SETTINGS_FILE, values, SAVED_FIELDS),
        (SECRETS_FILE, secrets, SECRET_FIELDS),
    ):
        kept = {k: v for k, v in data.items() if k in allowed and v not in (None, "", [], {})}
        if kept:
            _write_private(root / name, kept)
        else:
            (root / name).unlink(missing_ok=True)


def saved_stamp(root: Path) -> tuple:
    """Changes whenever a saved settings file is written or removed (a cache key)."""
    out = []
    for name in (SETTINGS_FILE, SECRETS_FILE):
        try:
            st = (root / name).stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)
