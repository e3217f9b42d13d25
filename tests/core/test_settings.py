from pathlib import Path

import pytest

from core.settings import SettingsError, describe_settings, load_settings


def test_defaults_are_embedded_mode():
    settings = load_settings(environ={})
    assert settings.database.url == ""
    assert settings.redis.url == ""
    assert settings.server.port == 8080


def test_file_then_environment_precedence(tmp_path: Path):
    config = tmp_path / "pratica.toml"
    config.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[locale]\ndefault_region = "GB"\n')
    settings = load_settings(
        config, environ={"PRATICA_SERVER_PORT": "9100", "DATABASE_URL": "postgresql://x@h/db"}
    )
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"
    assert settings.locale.default_region == "GB"
    assert settings.database.url == "postgresql://x@h/db"


def test_every_bad_value_is_reported_with_its_source(tmp_path: Path):
    config = tmp_path / "pratica.toml"
    config.write_text('[server]\nport = "eighty"\n[ami]\nnonsense = 1\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(
            config, environ={"REDIS_URL": "http://wrong", "PRATICA_DATABASE_POOL_MIN": "x"}
        )
    message = str(caught.value)
    assert "port = " not in message  # names, not raw TOML
    assert f"{config} [server] port: expected an integer, got 'eighty'" in message
    assert "unknown setting ami.nonsense" in message
    assert "environment PRATICA_DATABASE_POOL_MIN: expected an integer" in message


def test_semantic_validation():
    with pytest.raises(SettingsError, match="redis.url: must start with redis://"):
        load_settings(environ={"REDIS_URL": "http://wrong"})
    with pytest.raises(SettingsError, match="server.port: must be 1..65535"):
        load_settings(environ={"PRATICA_SERVER_PORT": "70000"})
    with pytest.raises(SettingsError, match="dial_template: must contain"):
        load_settings(environ={"PRATICA_AMI_DIAL_TEMPLATE": "PJSIP/carrier"})


def test_missing_and_broken_config_files(tmp_path: Path):
    with pytest.raises(SettingsError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(SettingsError, match="broken.toml"):
        load_settings(broken, environ={})


def test_every_setting_is_described():
    names = {env for env, _, _ in describe_settings()}
    assert {
        "PRATICA_SERVER_PORT",
        "PRATICA_DATABASE_URL",
        "PRATICA_REDIS_URL",
        "PRATICA_AMI_SECRET",
    } <= names


def test_agent_dialer_and_inbound_settings_are_parsed_and_checked():
    settings = load_settings(
        environ={
            "PRATICA_AGENTS_PAUSE_REASONS": "break:10, coaching:45",
            "PRATICA_DIALER_MANUAL_WINDOW_END": "24:00",
            "PRATICA_INBOUND_MAX_WAIT": "120",
        }
    )
    assert settings.agents.pause_limits() == {"break": 600, "coaching": 2700}
    assert settings.manual_window()[1].hour == 23
    assert settings.inbound.max_wait == 120.0
    with pytest.raises(SettingsError) as caught:
        load_settings(
            environ={
                "PRATICA_AGENTS_PAUSE_REASONS": "break:ten",
                "PRATICA_DIALER_MANUAL_WINDOW_START": "22:00",
                "PRATICA_INBOUND_MAX_WAIT": "1",
            }
        )
    message = str(caught.value)
    assert "agents.pause_reasons: expected code:minutes, got 'break:ten'" in message
    assert "dialer.manual_window_start: must be before manual_window_end" in message
    assert "inbound.max_wait: must be 5..3600 seconds" in message
