"""Configuration: one frozen class with working defaults, read from the environment.

Every variable is ``SYNCORDERS_`` plus the upper-case field name; per-service values are
``SYNCORDERS_<SERVICE>_PORT``, ``_URL``, ``_DATABASE`` and ``_THREADS``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from contracts.operations import DEFAULT_PORTS, SERVICES

__all__ = ["DEFAULT_PORTS", "SERVICES", "Settings"]

INTERNAL_SERVICES = SERVICES[1:]
PREFIX = "SYNCORDERS_"


@attrs.frozen
class Settings:
    data_dir: str = "./data"
    bind_host: str = "127.0.0.1"
    ports: Mapping[str, int] = attrs.field(factory=lambda: dict(DEFAULT_PORTS))
    urls: Mapping[str, str] = attrs.field(factory=dict)
    databases: Mapping[str, str] = attrs.field(factory=dict)
    service_threads: Mapping[str, int] = attrs.field(factory=dict)

    # Trust between services, and the clients' access tokens.
    service_secret: str | None = None
    # The operator console's password (HTTP Basic, user "operator").
    operator_secret: str | None = None
    # How many recent runs the gateway keeps for its console.
    console_runs: int = 1000
    signing_key_file: str | None = None
    token_ttl: int = 900
    token_issuer: str = "syncorders-auth"
    token_audience: str = "syncorders"
    token_leeway: int = 5
    jwks_refresh_interval: float = 30.0

    # Outbound HTTP: every call has both timeouts; only idempotent calls are retried.
    http_connect_timeout: float = 1.0
    http_read_timeout: float = 5.0
    http_retries: int = 2
    http_backoff: float = 0.05
    # The longest one retry waits for a callee's Retry-After, seconds.
    http_retry_after_max: float = 1.0
    http_max_response: int = 1_048_576
    http_transport: str = "socket"

    # The HTTP server: waitress, or granian (HTTP in Rust; services.common.granian_server).
    server: str = "waitress"
    # Server limits, on either server: a service needs at least as many threads as its
    # callers hold connections.
    threads: int = 16
    connection_limit: int = 200
    backlog: int = 1024
    channel_timeout: int = 30
    max_body: int = 65_536
    # A request must arrive in time, however slowly its bytes trickle: its headers within
    # header_timeout seconds of its first byte, then its body within body_timeout.
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    # Stopping (SIGTERM or SIGINT): not ready at once; the listener closes after the
    # delay (time for load balancers to stop sending here), then what is in flight has
    # the timeout to finish.
    shutdown_delay: float = 0.0
    shutdown_timeout: float = 20.0

    currency: str = "RUB"
    login_max_failures: int = 5
    login_window: int = 300
    order_run_lease: float = 30.0
    recovery_after: float = 60.0
    # Argon2id: memory in KiB and passes; OWASP's recommended minimum (services/auth/passwords.py).
    password_hash_memory: int = 19456
    password_hash_time: int = 2

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "orders@syncorders.localhost"
    smtp_timeout: float = 5.0
    # none, starttls or tls (services/notifications/mailer.py); credentials only over TLS.
    smtp_security: str = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_ca_file: str | None = None

    log_level: str = "INFO"

    def port(self, service: str) -> int:
        return self.ports.get(service, DEFAULT_PORTS[service])

    def url(self, service: str) -> str:
        return self.urls.get(service) or f"http://127.0.0.1:{self.port(service)}"

    def database(self, service: str) -> str:
        default = f"sqlite:///{Path(self.data_dir).resolve() / (service + '.db')}"
        return self.databases.get(service) or default

    def thread_count(self, service: str) -> int:
        return self.service_threads.get(service, self.threads)

    @property
    def delivery_claim(self) -> float:
        """How long one sender holds a letter's delivery: an SMTP attempt may take its
        connect and its send timeouts."""
        return 2 * self.smtp_timeout + 1

    def secret(self, create: bool = True) -> str:
        """The shared service credential: configured, or kept in the data folder so
        every service started on this machine agrees on it (made there unless ``create``
        is false, which makes a missing one an error)."""
        if self.service_secret:
            return self.service_secret
        path = Path(self.data_dir) / "service-secret"
        if not path.exists() and not create:
            raise SystemExit(f"configuration: no service secret in {path} and SYNCORDERS_SERVICE_SECRET is unset")
        return self._kept("service-secret")[0]

    def operator(self) -> str:
        """The console's operator password: configured, or kept in the data folder."""
        return self.operator_secret or self._kept("operator-secret")[0]

    def operator_is_new(self) -> bool:
        """Make the kept operator password if there is none yet; whether it was made now
        (``run`` prints it then, once)."""
        return not self.operator_secret and self._kept("operator-secret")[1]

    def _kept(self, name: str) -> tuple[str, bool]:
        """A random value kept in the data folder, readable by its owner alone, made on
        first use; and whether this call made it."""
        path = Path(self.data_dir) / name
        made = False
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first: read theirs
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(32))
                made = True
        return path.read_text().strip(), made

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            raw = env.get(PREFIX + field.name.upper())
            if raw is not None and field.type in SCALARS:
                values[field.name] = _parse(PREFIX + field.name.upper(), raw, SCALARS[field.type])
        per_service: dict[str, dict[str, Any]] = {"ports": {}, "urls": {}, "databases": {}, "service_threads": {}}
        for service in SERVICES:
            for suffix, target, kind in (
                ("PORT", "ports", int),
                ("URL", "urls", str),
                ("DATABASE", "databases", str),
                ("THREADS", "service_threads", int),
            ):
                name = f"{PREFIX}{service.upper()}_{suffix}"
                if name in env:
                    per_service[target][service] = _parse(name, env[name], kind)
        per_service["ports"] = {**DEFAULT_PORTS, **per_service["ports"]}
        return cls(**values, **per_service)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env: dict[str, str] = {}
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            if field.type in SCALARS and value is not None:
                env[PREFIX + field.name.upper()] = str(value)
        for service in SERVICES:
            env[f"{PREFIX}{service.upper()}_PORT"] = str(self.port(service))
            for suffix, table in (("URL", self.urls), ("DATABASE", self.databases), ("THREADS", self.service_threads)):
                if service in table:
                    env[f"{PREFIX}{service.upper()}_{suffix}"] = str(table[service])
        return env


SCALARS: dict[Any, type] = {
    "str": str,
    "int": int,
    "float": float,
    "str | None": str,
    str: str,
    int: int,
    float: float,
}


def _parse(name: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError as exc:
        raise SystemExit(f"configuration: {name}={raw!r} is not a valid {kind.__name__}") from exc
