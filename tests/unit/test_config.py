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


# --- settings saved in the browser -------------------------------------------------------------


def _clean_env(monkeypatch, tmp_path):
    _project_at(monkeypatch, tmp_path)
    for var in (
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "FTSTUDIO_LLM_MODEL",
        "OPENAI_MODEL",
        "LABEL_STUDIO_URL",
        "LABEL_STUDIO_API_KEY",
        "LABEL_STUDIO_TOKEN",
        "FTSTUDIO_ALLOWED_ENDPOINTS",
    ):
        monkeypatch.delenv(var, raising=False)


def test_saved_settings_win_over_dotenv_and_toml_but_not_the_environment(ws, tmp_path, monkeypatch):
    from backend.config import explain, write_saved

    _clean_env(monkeypatch, tmp_path)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        'OPENAI_API_KEY = "sk-toml"\nLABEL_STUDIO_URL = "http://toml.invalid"\n'
    )
    (tmp_path / ".env").write_text(
        "OPENAI_BASE_URL=http://dotenv.invalid/v1\nFTSTUDIO_LLM_MODEL=dotenv-model\n"
    )
    write_saved(
        ws.root,
        {"openai_base_url": "http://saved.invalid/v1", "llm_model": "saved-model"},
        {"openai_api_key": "sk-saved"},
    )
    cfg = Settings()
    assert cfg.openai_base_url == "http://saved.invalid/v1"  # saved beats .env
    assert cfg.llm_model == "saved-model"
    assert cfg.openai_api_key.get_secret_value() == "sk-saved"  # saved beats secrets.toml
    assert cfg.label_studio_url == "http://toml.invalid"  # nothing saved: the toml's
    info = explain(ws.root)
    assert info["openai_base_url"]["source"] == "saved in Settings"
    assert info["label_studio_url"]["source"] == "secrets.toml"
    assert info["label_studio_token"]["source"] == "default"
    assert not info["openai_base_url"]["overrides_saved"]

    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.invalid/v1")
    # an alias other than the first still beats a saved value
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    assert Settings().openai_base_url == "http://env.invalid/v1"
    assert Settings().llm_model == "env-model"
    info = explain(ws.root)
    assert info["openai_base_url"] == {
        "source": "environment",
        "env": "OPENAI_BASE_URL",
        "overrides_saved": True,
    }
    assert info["llm_model"]["overrides_saved"]


def test_saved_files_are_private_and_secrets_kept_apart(ws, tmp_path, monkeypatch):
    import json
    import stat

    from backend.config import SECRETS_FILE, SETTINGS_FILE, saved_stamp, write_saved

    _clean_env(monkeypatch, tmp_path)
    before = saved_stamp(ws.root)
    write_saved(
        ws.root,
        {"openai_base_url": "http://a.invalid/v1", "allowed_endpoints": ["http://b.invalid/v1"]},
        {"openai_api_key": "sk-apart", "endpoint_keys": {"http://b.invalid/v1": "sk-b"}},
    )
    assert saved_stamp(ws.root) != before
    for name in (SETTINGS_FILE, SECRETS_FILE):
        assert stat.S_IMODE((ws.root / name).stat().st_mode) == 0o600
    assert "sk-" not in (ws.root / SETTINGS_FILE).read_text()
    assert json.loads((ws.root / SECRETS_FILE).read_text())["openai_api_key"] == "sk-apart"
    cfg = Settings()
    assert cfg.endpoint_keys["http://b.invalid/v1"].get_secret_value() == "sk-b"
    shown = str(cfg.masked()) + repr(cfg) + cfg.model_dump_json()
    assert "sk-apart" not in shown and "sk-b" not in shown
    write_saved(ws.root, {}, {})  # nothing left: the files go
    assert not (ws.root / SETTINGS_FILE).exists() and not (ws.root / SECRETS_FILE).exists()


def test_allowed_endpoints_from_the_environment(monkeypatch, tmp_path):
    _clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("FTSTUDIO_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv(
        "FTSTUDIO_ALLOWED_ENDPOINTS",
        "http://A.invalid:8000/v1/, http://b.invalid/v1 http://a.invalid:8000/v1",
    )
    assert Settings().allowed_endpoints == ["http://a.invalid:8000/v1", "http://b.invalid/v1"]


def test_a_damaged_saved_file_never_stops_the_studio(ws, tmp_path, monkeypatch):
    from backend.config import SETTINGS_FILE

    _clean_env(monkeypatch, tmp_path)
    (ws.root / SETTINGS_FILE).write_text("{not json")
    assert Settings().openai_base_url is None


# --- the settings action -----------------------------------------------------------------------


def test_save_settings_is_an_audited_admin_action(ws, store, act, tmp_path, monkeypatch):
    import pytest

    from backend.action import AlreadyDone
    from backend.auth import Actor, PermissionDenied
    from backend.settings.actions import save_settings
    from backend.store import audit

    _clean_env(monkeypatch, tmp_path)
    admin, lead = Actor("ada", "admin"), Actor("lee", "lead")
    with pytest.raises(PermissionDenied):
        save_settings(act(lead), values={"openai_base_url": "http://x.invalid/v1"})
    out = save_settings(
        act(admin),
        values={"openai_base_url": "http://X.invalid/v1/", "llm_model": "m1"},
        secrets={"openai_api_key": "sk-audit-never-0042"},
    )
    assert out["changed"] == ["llm_model", "openai_api_key", "openai_base_url"]
    cfg = Settings()
    assert cfg.openai_base_url == "http://x.invalid/v1" and cfg.llm_model == "m1"
    assert cfg.openai_api_key.get_secret_value() == "sk-audit-never-0042"
    with pytest.raises(AlreadyDone):  # the same again
        save_settings(act(admin), values={"llm_model": "m1"})
    with pytest.raises(ValueError, match="http"):
        save_settings(act(admin), values={"label_studio_url": "ftp://nope"})
    with pytest.raises(ValueError, match="not an allowed endpoint"):
        save_settings(act(admin), endpoint_keys={"http://y.invalid/v1": "sk-y"})
    save_settings(act(admin), values={"allowed_endpoints": ["http://y.invalid/v1"]})
    save_settings(act(admin), endpoint_keys={"http://y.invalid/v1": "sk-y-0043"})
    assert Settings().endpoint_keys["http://y.invalid/v1"].get_secret_value() == "sk-y-0043"
    # removing the endpoint from the list takes its key with it
    save_settings(act(admin), values={"allowed_endpoints": []})
    assert Settings().endpoint_keys == {} and Settings().allowed_endpoints == []
    # blank removes a saved value; None removes a saved secret
    save_settings(act(admin), values={"llm_model": ""}, secrets={"openai_api_key": None})
    assert Settings().llm_model is None and Settings().openai_api_key is None

    rows = audit.rows(store, action="settings.save")
    assert len(rows) == 5 and set(rows["actor"]) == {"ada"}
    dump = rows.to_string() + repr(rows["detail"].tolist())
    assert "sk-audit-never-0042" not in dump and "sk-y-0043" not in dump
    assert "openai_api_key" in dump and "http://x.invalid/v1" in dump


def test_endpoint_rule_non_admins_pick_from_the_list(ws, store, act, tmp_path, monkeypatch):
    import pytest

    from backend.auth import Actor, PermissionDenied
    from backend.settings import endpoints
    from backend.settings.actions import save_settings

    _clean_env(monkeypatch, tmp_path)
    admin, lead = Actor("ada", "admin"), Actor("lee", "lead")
    save_settings(
        act(admin),
        values={
            "openai_base_url": "http://conf.invalid/v1",
            "allowed_endpoints": ["http://other.invalid:8000/v1"],
        },
    )
    assert endpoints.choices(Settings()) == [
        "http://conf.invalid/v1",
        "http://other.invalid:8000/v1",
    ]
    assert endpoints.vet(act(lead), None) is None
    assert endpoints.vet(act(lead), "http://conf.invalid/v1/") == "http://conf.invalid/v1/"
    assert endpoints.vet(act(lead), "http://OTHER.invalid:8000/v1")
    with pytest.raises(PermissionDenied, match="only admins may type"):
        endpoints.vet(act(lead), "http://evil.invalid/v1")
    with pytest.raises(PermissionDenied, match="may not give an API key"):
        endpoints.vet(act(lead), "http://other.invalid:8000/v1", "sk-typed")
    assert endpoints.vet(act(admin), "http://evil.invalid/v1", "sk-typed")
    assert endpoints.vet(act(None), "http://evil.invalid/v1", "sk-typed")  # the shell
    with pytest.raises(ValueError, match="http"):
        endpoints.vet(act(admin), "file:///etc/passwd")
