"""Delivery over SMTP, when a server is configured.

``SYNCORDERS_SMTP_SECURITY`` says how the connection is protected: ``none`` (plain SMTP,
a relay on the same host or network), ``starttls`` (plain, then upgraded before anything
else is said: a submission port such as 587) or ``tls`` (TLS from the first byte: 465).
Certificates and host names are verified, against the system's CAs or the one in
``SYNCORDERS_SMTP_CA_FILE``. Credentials are only ever sent over TLS: a username with
``none`` stops the service at start.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from services.common.config import Settings

log = logging.getLogger(__name__)

NONE, STARTTLS, TLS = "none", "starttls", "tls"
SECURITY = (NONE, STARTTLS, TLS)


class Mailer(Protocol):
    def send(self, recipient: str, subject: str, body: str) -> bool: ...


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        timeout: float,
        security: str = NONE,
        credentials: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if security not in SECURITY:
            raise ValueError(f"unknown SMTP security {security!r}")
        if credentials is not None and security == NONE:
            raise ValueError("SMTP credentials need TLS")
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout
        self.security = security
        self.credentials = credentials
        self.tls = tls if tls is not None or security == NONE else ssl.create_default_context()

    def send(self, recipient: str, subject: str, body: str) -> bool:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(body)
        try:
            with self._connect() as smtp:
                if self.security == STARTTLS:
                    # Refused (SMTPNotSupportedError) when the server does not offer it:
                    # never carried on in plaintext.
                    smtp.starttls(context=self.tls)
                if self.credentials is not None:
                    smtp.login(*self.credentials)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("delivery to %s failed: %s", recipient, exc)
            return False
        return True

    def _connect(self) -> smtplib.SMTP:
        if self.security == TLS:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.tls)
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)


def mailer_from(settings: Settings) -> SmtpMailer | None:
    """The configured mailer, or None when no SMTP server is set; a setting that cannot
    work stops the service here, at start."""
    if not settings.smtp_host:
        return None
    security = settings.smtp_security
    if security not in SECURITY:
        raise SystemExit(f"configuration: SYNCORDERS_SMTP_SECURITY must be one of {', '.join(SECURITY)}")
    if bool(settings.smtp_username) != bool(settings.smtp_password):
        raise SystemExit("configuration: SYNCORDERS_SMTP_USERNAME and SYNCORDERS_SMTP_PASSWORD go together")
    if settings.smtp_username and security == NONE:
        raise SystemExit(
            "configuration: SYNCORDERS_SMTP_USERNAME needs SYNCORDERS_SMTP_SECURITY starttls or tls:"
            " the password is never sent in plaintext"
        )
    if settings.smtp_ca_file and security == NONE:
        raise SystemExit("configuration: SYNCORDERS_SMTP_CA_FILE needs SYNCORDERS_SMTP_SECURITY starttls or tls")
    tls = None
    if security != NONE:
        try:
            tls = ssl.create_default_context(cafile=settings.smtp_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(f"configuration: SYNCORDERS_SMTP_CA_FILE cannot be read: {exc}") from exc
    credentials = None
    if settings.smtp_username and settings.smtp_password:
        credentials = (settings.smtp_username, settings.smtp_password)
    return SmtpMailer(
        settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.smtp_timeout, security, credentials, tls
    )
