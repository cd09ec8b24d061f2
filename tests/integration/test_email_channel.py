"""Email end to end through the daemon, against a real Dovecot (IMAP) and a real SMTP
server (aiosmtpd) on loopback: a customer's mail becomes a routed contact with the pop,
the agent's reply goes out threaded (Message-ID, In-Reply-To, References, a Reply-To
carrying the contact's token), the customer's answer joins the same contact even from a
client that dropped the headers, auto-replies are not routed, and a restart imports
nothing twice."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from email.message import Message
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from contact_center.keys import DAEMON
from crm_store import customers
from crm_store.models import Interaction
from crm_store.models import Message as StoredMessage
from tests.component.api_fixtures import Api, ClientFactory, ServerFactory, start_api
from tests.component.conftest import FAST_HASHER
from tests.component.test_routing_flow import request, until
from tests.integration.dovecot_server import PASSWORD, USER, DovecotServer
from tests.integration.test_email_smtp import Relay, relay

pytestmark = pytest.mark.integration

SUPPORT = "support@example.com"


@pytest.fixture
def fast_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters for the test users."""
    from crm_store import users

    monkeypatch.setattr(users, "password_hasher", FAST_HASHER)


@pytest.fixture
async def dovecot() -> AsyncIterator[DovecotServer]:
    server = DovecotServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def smtp() -> Any:
    handler = Relay()
    with relay(handler) as port:
        yield handler, port


def channels(dovecot: DovecotServer, smtp_port: int, tmp_path: Path) -> dict[str, Any]:
    return {
        "email": {
            "enabled": True,
            "queue": "email",
            "attachments_dir": str(tmp_path / "attachments"),
            "imap": {
                "host": "127.0.0.1",
                "port": dovecot.port,
                "ssl": False,
                "username": USER,
                "password": PASSWORD,
                "mailbox": "INBOX",
                "poll_seconds": 30,
            },
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "starttls": False,
                "username": "",
                "password": "",
                "from_address": SUPPORT,
            },
        }
    }


def mail(subject: str, body: str, *, sender: str = "ana@example.com", **headers: str) -> bytes:
    lines = [
        f"From: Ana Pérez <{sender}>",
        f"To: {headers.pop('to', SUPPORT)}",
        f"Subject: {subject}",
        f"Message-ID: {headers.pop('message_id', make_msgid(domain='mail.example'))}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


async def wait_for(predicate: Any, within: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


async def count_messages(api: Api) -> int:
    sessionmaker = api.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    async with sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(StoredMessage)) or 0)


async def test_a_mail_conversation_end_to_end(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    fast_hasher: None,
    dovecot: DovecotServer,
    smtp: tuple[Relay, int],
) -> None:
    handler, smtp_port = smtp
    api = await start_api(
        tmp_path, aiohttp_server, aiohttp_client, channels=channels(dovecot, smtp_port, tmp_path)
    )
    daemon = api.app[DAEMON]
    assert daemon.sessionmaker is not None
    async with daemon.sessionmaker.begin() as db:
        ana = await customers.create_customer(
            db, name="Ana Pérez", emails=["ana@example.com"], region="GB"
        )
    supervisor = await api.login("supervisor")

    async def email_up() -> bool:
        body = await (await supervisor.get("/status")).json()
        return bool(body["components"]["channel.email"]["state"] == "up")

    await wait_for(email_up)
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        assert (await request(ws, "set_status", status="ready"))["ok"]
        first_id = "<order-1@mail.example>"
        await dovecot.append(mail("Order 1234 missing", "Where is it?", message_id=first_id))
        # An out-of-office from someone else: recognised, not routed.
        await dovecot.append(
            mail(
                "Out of office",
                "Back Monday",
                sender="bob@example.com",
                Auto_Submitted="auto-replied",
            )
        )
        offer = await until(ws, "offer")
        assert offer["channel"] == "email" and offer["pop"]["customer"]["id"] == ana.id
        interaction_id = offer["interaction_id"]
        assert (await request(ws, "accept_offer", offer_id=offer["offer_id"]))["ok"]
        path = f"/api/v1/interactions/{interaction_id}/messages"
        listed = (await (await agent.get(path)).json())["messages"]
        assert [(m["subject"], m["body"].strip()) for m in listed] == [
            ("Order 1234 missing", "Where is it?")
        ]

        answer = await agent.post(path, {"body": "It ships today.\n\nAlex", "quote": True})
        assert answer.status == 202, await answer.text()
        sent = await until(ws, "message_status", interaction_id=interaction_id)
        assert sent["message"]["status"] == "sent", sent
        [envelope] = handler.received
        reply: Message = email.message_from_bytes(envelope.content)  # type: ignore[arg-type]
        assert envelope.rcpt_tos == ["ana@example.com"]
        assert reply["In-Reply-To"] == first_id and first_id in reply["References"]
        assert reply["Subject"].startswith("Re: Order 1234 missing")
        reply_to = reply["Reply-To"]
        assert reply_to.startswith("support+c") and reply_to.endswith("@example.com")
        assert reply["Message-ID"].strip("<>") == sent["message"]["provider_id"]
        text = reply.get_payload(decode=True).decode().replace("\r\n", "\n")  # type: ignore[union-attr]
        assert text.startswith("It ships today.\n\nAlex\n\nOn ")
        assert "Ana Pérez wrote:\n> Where is it?" in text

        # The customer answers from a client that keeps no threading headers, to the
        # Reply-To address: it joins the same contact, live on the desktop.
        await dovecot.append(mail("thanks", "Got it, thanks!", to=reply_to))
        pushed = await until(ws, "message", interaction_id=interaction_id)
        assert pushed["message"]["body"].strip() == "Got it, thanks!"

        # Our own reply, seen again in the mailbox (a copy, a BCC): never taken in.
        await dovecot.append(envelope.content)  # type: ignore[arg-type]

        async def all_seen() -> bool:
            return len(await dovecot_seen(dovecot)) == 4

        await wait_for(all_seen)
    assert await count_messages(api) == 3  # first, the reply, the customer's answer

    async with daemon.sessionmaker() as db:
        contacts = (
            await db.scalars(select(Interaction).where(Interaction.channel == "email"))
        ).all()
    assert [c.id for c in contacts] == [interaction_id]


async def dovecot_seen(dovecot: DovecotServer) -> list[int]:
    seen = []
    for uid in range(1, 10):
        try:
            if "\\Seen" in await dovecot.flags(uid):
                seen.append(uid)
        except Exception:
            break
    return seen


async def test_a_restart_imports_nothing_twice_and_catches_up(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    fast_hasher: None,
    dovecot: DovecotServer,
    smtp: tuple[Relay, int],
) -> None:
    from contact_center.app import make_app
    from tests.component.api_fixtures import config_for

    _handler, smtp_port = smtp
    settings = channels(dovecot, smtp_port, tmp_path)
    api = await start_api(tmp_path, aiohttp_server, aiohttp_client, channels=settings)
    for n in range(3):
        await dovecot.append(mail(f"Question {n}", f"body {n}", sender=f"c{n}@example.com"))

    async def three() -> bool:
        return await count_messages(api) == 3

    await wait_for(three)
    await api.server.close()  # the daemon stops
    await dovecot.append(mail("While away", "sent during the restart", sender="late@example.com"))

    app = make_app(config_for(tmp_path, channels=settings))
    again = await aiohttp_server(app)
    sessionmaker = app[DAEMON].sessionmaker
    assert sessionmaker is not None

    async def caught_up() -> int:
        async with sessionmaker() as db:
            n = int(await db.scalar(select(func.count()).select_from(StoredMessage)) or 0)
        return n if n >= 4 else 0

    assert await wait_for(caught_up) == 4
    await asyncio.sleep(1.0)  # nothing more comes
    assert await caught_up() == 4
    async with sessionmaker() as db:
        subjects = sorted((await db.scalars(select(StoredMessage.subject))).all())
    assert subjects == ["Question 0", "Question 1", "Question 2", "While away"]
    await again.close()


async def test_attachments_are_kept_and_downloaded_by_those_who_may_read_them(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    fast_hasher: None,
    dovecot: DovecotServer,
    smtp: tuple[Relay, int],
) -> None:
    from email.message import EmailMessage

    _handler, smtp_port = smtp
    api = await start_api(
        tmp_path, aiohttp_server, aiohttp_client, channels=channels(dovecot, smtp_port, tmp_path)
    )
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "ana@example.com", SUPPORT, "Photo"
    message["Message-ID"] = "<photo-1@mail.example>"
    message.set_content("See attached.")
    message.add_attachment(
        b"<script>alert(1)</script>", maintype="text", subtype="html", filename="../../évil.html"
    )
    await dovecot.append(message.as_bytes())

    async def one() -> bool:
        return await count_messages(api) == 1

    await wait_for(one)
    supervisor = await api.login("supervisor")
    [stored] = (await (await supervisor.get("/api/v1/interactions/1/messages")).json())["messages"]
    [item] = stored["attachments"]
    assert item["filename"] == "../../évil.html" and item["size"] == 25 and item["ref"]
    url = f"/api/v1/interactions/1/messages/{stored['id']}/attachments/0"
    response = await supervisor.get(url)
    assert response.status == 200
    assert await response.read() == b"<script>alert(1)</script>"
    # A download, never a page of ours: no inline HTML, no sniffing.
    assert response.content_type == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert (await supervisor.get(url.replace("/0", "/1"))).status == 404
    # An agent who never had the contact may not read it.
    agent = await api.login("agent")
    assert (await agent.get(url)).status == 404
