"""Configuration: defaults that work, the environment overrides them, bad values stop."""

from __future__ import annotations

import pytest

from services.common.config import Settings


def test_defaults_give_the_documented_ports_and_sqlite_files() -> None:
    settings = Settings.from_env({})
    assert [settings.port(s) for s in ("gateway", "auth", "profiles", "orders", "billing", "notifications")] == [
        8000,
        8001,
        8002,
        8003,
        8004,
        8005,
    ]
    assert settings.url("billing") == "http://127.0.0.1:8004"
    assert settings.database("orders").startswith("sqlite:///") and settings.database("orders").endswith("/orders.db")


def test_environment_overrides_scalars_and_per_service_values() -> None:
    settings = Settings.from_env(
        {
            "SYNCORDERS_THREADS": "4",
            "SYNCORDERS_HTTP_READ_TIMEOUT": "2.5",
            "SYNCORDERS_BILLING_PORT": "9004",
            "SYNCORDERS_ORDERS_DATABASE": "postgresql://db/orders",
            "SYNCORDERS_GATEWAY_THREADS": "32",
        }
    )
    assert settings.threads == 4 and settings.http_read_timeout == 2.5
    assert settings.port("billing") == 9004 and settings.url("billing") == "http://127.0.0.1:9004"
    assert settings.database("orders") == "postgresql://db/orders"
    assert settings.thread_count("gateway") == 32 and settings.thread_count("orders") == 4


def test_settings_survive_the_trip_through_a_child_environment() -> None:
    settings = Settings.from_env({"SYNCORDERS_SMTP_HOST": "mail", "SYNCORDERS_AUTH_URL": "http://auth:1"})
    assert Settings.from_env(settings.to_env()) == settings


def test_a_malformed_number_stops_with_a_clear_message() -> None:
    with pytest.raises(SystemExit, match="SYNCORDERS_THREADS"):
        Settings.from_env({"SYNCORDERS_THREADS": "many"})


def test_service_secret_is_made_once_and_kept(tmp_path) -> None:
    settings = Settings(data_dir=str(tmp_path))
    first = settings.secret()
    assert len(first) == 64 and Settings(data_dir=str(tmp_path)).secret() == first
    assert (tmp_path / "service-secret").stat().st_mode & 0o077 == 0


def test_password_hashes_cost_argon2id_memory_in_kib_and_passes_owasps_minimum_by_default() -> None:
    assert (Settings.from_env({}).password_hash_memory, Settings.from_env({}).password_hash_time) == (19456, 2)
    settings = Settings.from_env({"SYNCORDERS_PASSWORD_HASH_MEMORY": "65536", "SYNCORDERS_PASSWORD_HASH_TIME": "3"})
    assert (settings.password_hash_memory, settings.password_hash_time) == (65536, 3)
    with pytest.raises(SystemExit, match="SYNCORDERS_PASSWORD_HASH_MEMORY"):
        Settings.from_env({"SYNCORDERS_PASSWORD_HASH_MEMORY": "19MiB"})


def test_smtp_security_and_credentials_are_read_and_passed_on() -> None:
    env = {
        "SYNCORDERS_SMTP_HOST": "relay.example",
        "SYNCORDERS_SMTP_PORT": "587",
        "SYNCORDERS_SMTP_SECURITY": "starttls",
        "SYNCORDERS_SMTP_USERNAME": "orders",
        "SYNCORDERS_SMTP_PASSWORD": "secret",
        "SYNCORDERS_SMTP_CA_FILE": "/etc/ssl/private-ca.pem",
    }
    settings = Settings.from_env(env)
    assert (settings.smtp_security, settings.smtp_username, settings.smtp_ca_file) == (
        "starttls",
        "orders",
        "/etc/ssl/private-ca.pem",
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert Settings.from_env({}).smtp_security == "none"
