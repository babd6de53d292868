"""Letters over SMTP with TLS: STARTTLS with AUTH as on a submission port (587), TLS from
the first byte as on 465, against local aiosmtpd servers holding a certificate from a
throw-away CA made here. A wrong password, an untrusted certificate, a certificate for
another host and a server that does not offer STARTTLS each leave the letter
undelivered (``delivery: failed``), with one warning line, and nothing is sent in
plaintext. A username without TLS stops Notifications at start.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator.tools.supervisor import Stack, StartFailed
from tests.e2e.conftest import log_text
from tests.harness import Customer, Gateway, Inbox, start_smtp
from tests.invariants import run_recovery

USERNAME, PASSWORD = "orders@relay.example", "relay secret"


@attrs.frozen
class Pki:
    ca_file: Path
    other_ca_file: Path
    server: ssl.SSLContext  # a certificate for 127.0.0.1 from the CA
    server_for_another_host: ssl.SSLContext  # from the same CA, for mail.example only


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None, **kind: Any
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(kind["names"]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _server_context(folder: Path, name: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Any:
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(_pem(certificate))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("syncorders test CA", ca_key, None)
    other_ca = _certificate("another CA", other_key, None)
    (folder / "ca.pem").write_bytes(_pem(ca))
    (folder / "other-ca.pem").write_bytes(_pem(other_ca))
    issuer = ("syncorders test CA", ca_key)
    loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    for_loopback = _certificate("127.0.0.1", server_key, issuer, names=loopback)
    for_another = _certificate("mail.example", server_key, issuer, names=[x509.DNSName("mail.example")])
    return Pki(
        folder / "ca.pem",
        folder / "other-ca.pem",
        _server_context(folder, "server", for_loopback, server_key),
        _server_context(folder, "another-host", for_another, server_key),
    )


class Logins:
    """aiosmtpd's authenticator: one account; remembers every attempt."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, bool]] = []
        self.lock = threading.Lock()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = (login, password) == (USERNAME, PASSWORD)
        with self.lock:
            self.attempts.append((login, ok))
        return AuthResult(success=ok, handled=False)


@attrs.frozen
class Relay:
    port: int
    inbox: Inbox
    logins: Logins


@contextlib.contextmanager
def _relay(**options: Any) -> Iterator[Relay]:
    logins = Logins()
    controller, inbox = start_smtp(authenticator=logins, **options)
    try:
        yield Relay(controller.port, inbox, logins)
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def submission(pki: Pki) -> Iterator[Relay]:
    """As on port 587: STARTTLS before anything else, then AUTH, then mail."""
    with _relay(tls_context=pki.server, require_starttls=True, auth_required=True) as relay:
        yield relay


@pytest.fixture(scope="module")
def implicit(pki: Pki) -> Iterator[Relay]:
    """As on port 465: TLS from the first byte, then AUTH (aiosmtpd counts only STARTTLS
    as TLS for its own AUTH check, so that check is off here)."""
    with _relay(ssl_context=pki.server, auth_required=True, auth_require_tls=False) as relay:
        yield relay


@pytest.fixture(scope="module")
def another_host(pki: Pki) -> Iterator[Relay]:
    """A server whose certificate, from the trusted CA, names another host."""
    with _relay(ssl_context=pki.server_for_another_host) as relay:
        yield relay


@pytest.fixture(scope="module")
def stack_options(submission: Relay, pki: Pki) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": submission.port,
        "smtp_security": "starttls",
        "smtp_username": USERNAME,
        "smtp_password": PASSWORD,
        "smtp_ca_file": str(pki.ca_file),
        "smtp_timeout": 2.0,
    }


def _notifications_with(stack: Stack, **smtp: Any) -> None:
    stack.settings = attrs.evolve(stack.settings, **smtp)
    stack.restart("notifications")


def _order_letter(gateway: Gateway, customer: Customer) -> dict[str, Any]:
    placed = gateway.order(customer, price=100)
    assert placed.status_code == 201, placed.text
    letter_id = placed.json()["letter_id"]
    assert letter_id is not None
    letter = gateway.request("GET", f"/letters/{letter_id}", customer.token)
    assert letter.status_code == 200
    return letter.json()


def _warnings(stack: Stack, since: int) -> list[str]:
    lines = log_text(stack, "notifications")[since:].splitlines()
    return [line for line in lines if " WARNING " in line and "delivery to" in line]


def test_a_letter_goes_over_starttls_after_the_relay_saw_the_login(
    stack: Stack, gateway: Gateway, submission: Relay
) -> None:
    customer = gateway.customer(deposit=1_000)
    letter = _order_letter(gateway, customer)
    assert letter["delivery"] == "sent"
    (mail,) = submission.inbox.to(customer.email)
    assert mail["Subject"] == letter["subject"]
    assert (USERNAME, True) in submission.logins.attempts


def test_a_letter_goes_over_tls_from_the_first_byte(stack: Stack, gateway: Gateway, implicit: Relay, pki: Pki) -> None:
    _notifications_with(stack, smtp_port=implicit.port, smtp_security="tls")
    customer = gateway.customer(deposit=1_000)
    assert _order_letter(gateway, customer)["delivery"] == "sent"
    assert len(implicit.inbox.to(customer.email)) == 1
    assert implicit.logins.attempts == [(USERNAME, True)]


def test_a_wrong_password_leaves_the_letter_failed_until_recovery_after_the_fix(
    stack: Stack, gateway: Gateway, submission: Relay
) -> None:
    _notifications_with(stack, smtp_port=submission.port, smtp_security="starttls", smtp_password="wrong")
    customer = gateway.customer(deposit=1_000)
    logged = len(log_text(stack, "notifications"))
    letter = _order_letter(gateway, customer)
    assert letter["delivery"] == "failed"
    assert submission.inbox.to(customer.email) == []
    assert submission.logins.attempts[-1] == (USERNAME, False)
    (warning,) = _warnings(stack, logged)
    assert "535" in warning and "wrong" not in warning

    refused = run_recovery(stack)
    assert refused.exit_code == 1 and "not delivered" in refused.output, refused.output

    _notifications_with(stack, smtp_password=PASSWORD)
    report = run_recovery(stack)
    assert report.exit_code == 0 and report.failures == 0, report.output
    assert gateway.request("GET", f"/letters/{letter['id']}", customer.token).json()["delivery"] == "sent"
    assert len(submission.inbox.to(customer.email)) == 1


@pytest.mark.parametrize("trust", ["system CAs", "another CA"])
def test_a_certificate_from_an_untrusted_ca_is_refused(
    stack: Stack, gateway: Gateway, submission: Relay, pki: Pki, trust: str
) -> None:
    ca_file = None if trust == "system CAs" else str(pki.other_ca_file)
    _notifications_with(
        stack, smtp_port=submission.port, smtp_security="starttls", smtp_password=PASSWORD, smtp_ca_file=ca_file
    )
    customer = gateway.customer(deposit=1_000)
    attempts = len(submission.logins.attempts)
    logged = len(log_text(stack, "notifications"))
    assert _order_letter(gateway, customer)["delivery"] == "failed"
    assert submission.inbox.to(customer.email) == []
    assert len(submission.logins.attempts) == attempts  # the password never left
    (warning,) = _warnings(stack, logged)
    assert "CERTIFICATE_VERIFY_FAILED" in warning


def test_a_certificate_for_another_host_is_refused(
    stack: Stack, gateway: Gateway, another_host: Relay, pki: Pki
) -> None:
    _notifications_with(
        stack, smtp_port=another_host.port, smtp_security="tls", smtp_password=PASSWORD, smtp_ca_file=str(pki.ca_file)
    )
    customer = gateway.customer(deposit=1_000)
    logged = len(log_text(stack, "notifications"))
    assert _order_letter(gateway, customer)["delivery"] == "failed"
    assert another_host.inbox.to(customer.email) == [] and another_host.logins.attempts == []
    (warning,) = _warnings(stack, logged)
    assert "CERTIFICATE_VERIFY_FAILED" in warning and "127.0.0.1" in warning


def test_a_server_without_starttls_gets_no_letter_and_no_password(stack: Stack, gateway: Gateway, pki: Pki) -> None:
    controller, inbox = start_smtp()
    try:
        _notifications_with(stack, smtp_port=controller.port, smtp_security="starttls", smtp_ca_file=str(pki.ca_file))
        customer = gateway.customer(deposit=1_000)
        logged = len(log_text(stack, "notifications"))
        assert _order_letter(gateway, customer)["delivery"] == "failed"
        assert inbox.messages == []
        (warning,) = _warnings(stack, logged)
        assert "STARTTLS" in warning
    finally:
        controller.stop()


@pytest.mark.parametrize(
    ("smtp", "message"),
    [
        ({"smtp_security": "none"}, "SYNCORDERS_SMTP_USERNAME needs SYNCORDERS_SMTP_SECURITY starttls or tls"),
        ({"smtp_security": "ssl"}, "SYNCORDERS_SMTP_SECURITY must be one of none, starttls, tls"),
        ({"smtp_ca_file": "/nonexistent/ca.pem"}, "SYNCORDERS_SMTP_CA_FILE cannot be read"),
    ],
    ids=["username_without_tls", "unknown_security", "missing_ca_file"],
)
def test_a_setting_that_cannot_work_stops_notifications_at_start_with_one_line(
    stack: Stack, smtp: dict[str, str], message: str
) -> None:
    working = stack.settings
    logged = len(log_text(stack, "notifications"))
    try:
        with pytest.raises(StartFailed):
            _notifications_with(stack, smtp_username=USERNAME, smtp_password=PASSWORD, **smtp)
    finally:
        stack.settings = working
        stack.start_one("notifications")
    said = log_text(stack, "notifications")[logged:].splitlines()
    refusal = [line for line in said if line.startswith("configuration: ")]
    assert len(refusal) == 1 and refusal[0].startswith(f"configuration: {message}"), said
    assert not any("Traceback" in line for line in said)
