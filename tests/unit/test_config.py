"""Settings come from env, .env and .streamlit/secrets.toml; secrets stay masked."""

from __future__ import annotations

from pathlib import Path

from backend.config import Settings


def _project_at(monkeypatch, folder):
    """Point the settings at a project folder of the test's own."""
    from backend import config

    monkeypatch.setattr(config, "SECRETS_TOML", folder / ".streamlit" / "secrets.toml")
    monkeypatch.setattr(config, "ENV_FILE", folder / ".env")


def test_sources_and_precedence(tmp_path, monkeypatch):
    _project_at(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    for var in ("FTSTUDIO_WORKSPACE", "OPENAI_BASE_URL", "OPENAI_API_KEY", "LABEL_STUDIO_URL"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        'OPENAI_API_KEY = "sk-from-secrets"\nLABEL_STUDIO_URL = "http://127.0.0.1:9"\n'
        'OPENAI_BASE_URL = "http://secrets.invalid/v1"\n'
    )
    (tmp_path / ".env").write_text("OPENAI_BASE_URL=http://dotenv.invalid/v1\n")
    monkeypatch.setenv("FTSTUDIO_WORKSPACE", str(tmp_path / "ws"))
    cfg = Settings()
    assert cfg.workspace == (tmp_path / "ws").resolve()
    assert cfg.openai_base_url == "http://dotenv.invalid/v1"  # .env beats secrets.toml
    assert cfg.openai_api_key.get_secret_value() == "sk-from-secrets"
    assert cfg.label_studio_url == "http://127.0.0.1:9"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.invalid/v1")
    assert Settings().openai_base_url == "http://env.invalid/v1"  # env beats .env


def test_secrets_never_show(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    cfg = Settings()
    assert "sk-very-secret" not in repr(cfg)
    assert "sk-very-secret" not in str(cfg.masked())
    assert "sk-very-secret" not in cfg.model_dump_json()


def test_default_workspace_is_relative_to_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FTSTUDIO_WORKSPACE", raising=False)
    assert Settings().workspace == (tmp_path / "workspace").resolve()


def test_env_and_secrets_come_from_the_project_not_the_current_folder(tmp_path, monkeypatch):
    from backend import config

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    for folder, url in (
        (project, "http://project.invalid/v1"),
        (elsewhere, "http://cwd.invalid/v1"),
    ):
        (folder / ".streamlit").mkdir(parents=True)
        (folder / ".streamlit" / "secrets.toml").write_text(f'OPENAI_BASE_URL = "{url}"\n')
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    _project_at(monkeypatch, project)
    monkeypatch.chdir(elsewhere)
    assert Settings().openai_base_url == "http://project.invalid/v1"
    assert config.SECRETS_TOML.is_absolute() and config.ENV_FILE.is_absolute()
    assert Path(config.__file__).resolve().parents[1] == config.PROJECT
