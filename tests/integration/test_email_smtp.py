"""SmtpSender against real SMTP servers on 127.0.0.1 (aiosmtpd's Controller): delivery,
4xx and 5xx replies, a relay that is down or mute, AUTH, STARTTLS and implicit TLS with
a self-signed certificate (`openssl req`)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from adapters.email.smtp_sender import SmtpSender
from adapters.messaging.model import PermanentFailure, TemporaryFailure
from contact_center.config import SmtpConfig
from tests.integration.dovecot_server import self_signed_certificate, trusting

pytestmark = pytest.mark.integration

OURS = "support@example.com"
CUSTOMER = "customer@example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Relay:
    """An aiosmtpd handler: keeps what it accepts, or answers what it is told to."""

    def __init__(self, rcpt: str | None = None, data: str | None = None) -> None:
        self.rcpt_reply, self.data_reply = rcpt, data
        self.received: list[Envelope] = []
        self.sessions: list[Session] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        self.received.append(envelope)
        self.sessions.append(session)
        return "250 2.0.0 queued"


@contextlib.contextmanager
def relay(handler: Relay, **options: Any) -> Iterator[int]:
    """Run an SMTP server on 127.0.0.1 (its own thread); its port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def settings(port: int, **changes: Any) -> SmtpConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "from_address": OURS,
    }
    values.update(changes)
    return SmtpConfig(**values)


def reply(
    subject: str = "Re: your order", message_id: str | None = "<r1@example.com>"
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Support <{OURS}>"
    message["To"] = CUSTOMER
    message["Subject"] = subject
    if message_id is not None:
        message["Message-ID"] = message_id
    message.set_content("It ships tomorrow.\n")
    return message


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (cert, key)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def accept(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> Any:
    """aiosmtpd authenticator: one account."""
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"agent",
        b"relay-secret",
    )
    return AuthResult(success=ok, handled=False)


# --- delivery ------------------------------------------------------------------------


async def test_a_message_is_delivered_and_its_message_id_returned() -> None:
    handler = Relay()
    with relay(handler) as port:
        sent = await SmtpSender(settings(port)).send(reply())
    assert sent == "<r1@example.com>"
    [envelope] = handler.received
    assert envelope.mail_from == OURS
    assert envelope.rcpt_tos == [CUSTOMER]
    content = envelope.content
    assert isinstance(content, bytes)
    assert b"Subject: Re: your order" in content and b"It ships tomorrow." in content
    assert b"Message-ID: <r1@example.com>" in content


async def test_a_message_without_message_id_or_from_gets_them() -> None:
    handler = Relay()
    message = reply(message_id=None)
    del message["From"]
    with relay(handler) as port:
        sent = await SmtpSender(settings(port)).send(message)
    assert sent.startswith("<") and sent.endswith("@example.com>")
    assert message["Message-ID"] == sent and message["From"] == OURS
    content = handler.received[0].content
    assert isinstance(content, bytes)
    assert f"Message-ID: {sent}".encode() in content


# --- failures --------------------------------------------------------------------------


async def test_a_4xx_reply_is_a_temporary_failure() -> None:
    with (
        relay(Relay(data="451 4.3.0 Mail server temporarily rejected message")) as port,
        pytest.raises(TemporaryFailure, match=re.escape("451 4.3.0 Mail server temporarily")),
    ):
        await SmtpSender(settings(port)).send(reply())


async def test_a_deferred_recipient_is_a_temporary_failure() -> None:
    with (
        relay(Relay(rcpt="450 4.2.1 Mailbox busy")) as port,
        pytest.raises(TemporaryFailure, match=re.escape(f"{CUSTOMER}: 450 4.2.1 Mailbox busy")),
    ):
        await SmtpSender(settings(port)).send(reply())


async def test_no_such_user_is_a_permanent_failure_with_the_servers_words() -> None:
    with (
        relay(Relay(rcpt="550 5.1.1 No such user here")) as port,
        pytest.raises(
            PermanentFailure, match=re.escape(f"{CUSTOMER}: 550 5.1.1 No such user here")
        ),
    ):
        await SmtpSender(settings(port)).send(reply())


async def test_a_rejected_message_is_a_permanent_failure() -> None:
    with (
        relay(Relay(data="554 5.7.1 Message rejected as spam")) as port,
        pytest.raises(PermanentFailure, match=re.escape("554 5.7.1 Message rejected as spam")),
    ):
        await SmtpSender(settings(port)).send(reply())


async def test_a_relay_that_is_down_is_a_temporary_failure() -> None:
    with pytest.raises(TemporaryFailure, match="Connect call failed"):
        await SmtpSender(settings(free_port()), timeout=5).send(reply())


@contextlib.asynccontextmanager
async def mute_server() -> AsyncIterator[int]:
    """Accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_relay_that_does_not_answer_times_out_as_a_temporary_failure() -> None:
    async with mute_server() as port:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TemporaryFailure, match=r"[Tt]imed out"):
            await SmtpSender(settings(port), timeout=0.5).send(reply())
        assert loop.time() - started < 3


async def test_a_message_without_recipient_is_a_permanent_failure() -> None:
    message = reply()
    del message["To"]
    with relay(Relay()) as port, pytest.raises(PermanentFailure, match="not sendable"):
        await SmtpSender(settings(port)).send(message)


# --- AUTH and TLS ---------------------------------------------------------------------


async def test_auth_with_the_configured_account() -> None:
    handler = Relay()
    options = {"authenticator": accept, "auth_require_tls": False}
    with relay(handler, **options) as port:
        good = settings(port, username="agent", password=SecretStr("relay-secret"))
        await SmtpSender(good).send(reply())
        assert handler.sessions[0].authenticated is True

        bad = settings(port, username="agent", password=SecretStr("wrong"))
        with pytest.raises(TemporaryFailure, match="refused our login: 535"):
            await SmtpSender(bad).send(reply())
    assert len(handler.received) == 1


async def test_starttls_then_auth(certificate: tuple[Path, Path]) -> None:
    handler = Relay()
    options = {
        "tls_context": server_tls(certificate),
        "require_starttls": True,
        "authenticator": accept,
        "auth_required": True,  # and AUTH only once under TLS (aiosmtpd's default)
    }
    with relay(handler, **options) as port:
        config = settings(port, starttls=True, username="agent", password=SecretStr("relay-secret"))
        await SmtpSender(config, tls_context=trusting(certificate[0])).send(reply())
    [session] = handler.sessions
    assert session.ssl is not None and session.authenticated is True


async def test_starttls_with_an_untrusted_certificate_is_not_sent(
    certificate: tuple[Path, Path],
) -> None:
    handler = Relay()
    # The system's trust store does not know the test's certificate.
    with (
        relay(handler, tls_context=server_tls(certificate), require_starttls=True) as port,
        pytest.raises(TemporaryFailure, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        await SmtpSender(settings(port, starttls=True)).send(reply())
    assert handler.received == []


async def test_starttls_required_but_not_offered_is_not_sent_in_clear() -> None:
    handler = Relay()
    with (
        relay(handler) as port,
        pytest.raises(TemporaryFailure, match="STARTTLS extension not supported"),
    ):
        await SmtpSender(settings(port, starttls=True)).send(reply())
    assert handler.received == []


async def test_implicit_tls(certificate: tuple[Path, Path]) -> None:
    handler = Relay()
    with relay(handler, ssl_context=server_tls(certificate)) as port:
        sender = SmtpSender(settings(port), implicit_tls=True, tls_context=trusting(certificate[0]))
        assert await sender.send(reply()) == "<r1@example.com>"
    assert len(handler.received) == 1


def test_implicit_tls_and_starttls_together_are_refused() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        SmtpSender(settings(465, starttls=True), implicit_tls=True)
