"""Customer email out: hand one composed message to the SMTP relay (aiosmtplib).

One connection per message (replies are few and far between; a relay that dropped an
idle connection costs nothing that way). TLS as configured: STARTTLS (required, never
silently skipped), implicit TLS (port 465), or plain (a relay on the same host);
AUTH when a username is set. How a send failed is the outbox's business, so the
failure is classified here, with the server's own words:

- the relay cannot be reached, times out, drops the line, or answers 4xx:
  `TemporaryFailure` (tried again later);
- the relay answers 5xx to the sender, a recipient or the data (550 no such user,
  554 rejected), or the message itself cannot be sent: `PermanentFailure`;
- the relay refuses our login, turns the connection down (greeting, EHLO), or lacks
  what the configuration asks for (STARTTLS, AUTH): `TemporaryFailure` even for 5xx,
  because the fault is the configuration's or the relay's, not the message's: once it
  is fixed the message goes.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
from pydantic import SecretStr

from adapters.messaging.model import PermanentFailure, TemporaryFailure

log = logging.getLogger(__name__)


class SmtpSettings(Protocol):
    """What the sender needs of `channels.email.smtp` (contact_center.config.SmtpConfig)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def starttls(self) -> bool: ...
    @property
    def username(self) -> str: ...
    @property
    def password(self) -> SecretStr: ...
    @property
    def from_address(self) -> str: ...


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}".strip()


class SmtpSender:
    """Sends composed messages through one SMTP relay."""

    def __init__(
        self,
        config: SmtpSettings,
        *,
        implicit_tls: bool = False,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
    ) -> None:
        if implicit_tls and config.starttls:
            raise ValueError("implicit TLS and STARTTLS exclude each other")
        self.config = config
        self.implicit_tls = implicit_tls
        self.tls_context = tls_context
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> str:
        """Send `message`; the Message-ID it went out with. A message without Message-ID
        or From gets one here (on the message itself, so the caller keeps what went)."""
        if message["Message-ID"] is None:
            domain = self.config.from_address.rpartition("@")[2] or None
            message["Message-ID"] = email.utils.make_msgid(domain=domain)
        if message["From"] is None:
            message["From"] = self.config.from_address
        message_id = str(message["Message-ID"])
        where = f"{self.config.host}:{self.config.port}"
        try:
            refused, reply = await aiosmtplib.send(
                message,
                # Bounces come back to our own mailbox, whatever the From says.
                sender=self.config.from_address,
                hostname=self.config.host,
                port=self.config.port,
                username=self.config.username or None,
                password=self.config.password.get_secret_value() or None,
                use_tls=self.implicit_tls,
                start_tls=self.config.starttls,
                tls_context=self.tls_context,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            replies = "; ".join(f"{r.recipient}: {_reply(r)}" for r in exc.recipients)
            if all(400 <= r.code < 500 for r in exc.recipients):
                raise TemporaryFailure(f"SMTP {where} deferred every recipient: {replies}") from exc
            raise PermanentFailure(f"SMTP {where} refused every recipient: {replies}") from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise TemporaryFailure(f"SMTP {where} refused our login: {_reply(exc)}") from exc
        except (aiosmtplib.SMTPConnectResponseError, aiosmtplib.SMTPHeloError) as exc:
            # The relay turned the connection down, not the message.
            raise TemporaryFailure(f"SMTP {where} turned us away: {_reply(exc)}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            # Sender refused, data refused, a greeting or HELO turned down.
            if 500 <= exc.code < 600:
                raise PermanentFailure(f"SMTP {where} refused the message: {_reply(exc)}") from exc
            raise TemporaryFailure(f"SMTP {where} deferred the message: {_reply(exc)}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Refused connection, timeout, dropped line, TLS handshake failure, STARTTLS
            # or AUTH not offered.
            text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise TemporaryFailure(f"SMTP {where} failed: {text}") from exc
        except ValueError as exc:
            # aiosmtplib's word for a message it cannot send (no recipient, bad address).
            raise PermanentFailure(f"message not sendable: {exc}") from exc
        if refused:
            # Some recipients took it: sent. Those refused are told in the log.
            log.warning("SMTP %s refused some recipients of %s: %s", where, message_id, refused)
        log.debug("SMTP %s accepted %s: %s", where, message_id, reply)
        return message_id
