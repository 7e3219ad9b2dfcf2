"""Settings: file, environment, validation messages and masking."""

import subprocess
import sys

import pytest

from pandasrv.config import ConfigError, load_settings, show


def test_defaults_are_embedded(monkeypatch):
    monkeypatch.delenv("PANDASRV_DB_URL", raising=False)
    settings = load_settings()
    assert settings.db_backend == "sqlite" and settings.port == 25080 and settings.host == "127.0.0.1"
    assert settings.daemon.scripts["add_main"].loop


def test_toml_file_then_environment(tmp_path, monkeypatch):
    config = tmp_path / "pandasrv.toml"
    config.write_text('db_url = "postgresql://u:pw@127.0.0.1/db"\nworkers = 3\n'
                      '[daemon]\nn_proc = 5\n[daemon.scripts.copy_archive]\nperiod = 60\nsync = true\n')
    monkeypatch.setenv("PANDASRV_WORKERS", "4")
    settings = load_settings(str(config))
    assert settings.db_backend == "postgresql" and settings.workers == 4 and settings.daemon.n_proc == 5
    assert settings.daemon.scripts["copy_archive"].period == 60
    assert show(settings)["db_url"] == "postgresql://u:***@127.0.0.1/db"


@pytest.mark.parametrize("env,name", [("PANDASRV_DB_TIMEOUT", "db_timeout"), ("PANDASRV_DB_URL", "db_url"),
                                      ("PANDASRV_PORT", "port")])
def test_bad_values_name_the_setting(monkeypatch, env, name):
    monkeypatch.setenv(env, "nonsense://" if env == "PANDASRV_DB_URL" else "-1x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert name in message and "\n" not in message


@pytest.mark.parametrize("url", ["oracle://u:p@h:1521/svc", "mssql://sa@h/db", "nonsense://"])
def test_only_the_tested_database_schemes_are_accepted(url):
    with pytest.raises(ConfigError, match="db_url"):
        load_settings(db_url=url)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "nope.toml"))


def test_cli_config_show_masks_and_fails_cleanly(monkeypatch):
    monkeypatch.setenv("PANDASRV_DB_URL", "mysql://root:hunter2@127.0.0.1/test")
    out = subprocess.run([sys.executable, "-m", "pandasrv.cli", "config", "show"], capture_output=True, text=True)
    assert out.returncode == 0 and "hunter2" not in out.stdout and "***" in out.stdout
    monkeypatch.setenv("PANDASRV_THREADS", "zero")
    out = subprocess.run([sys.executable, "-m", "pandasrv.cli", "config", "show"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "threads" in out.stderr
