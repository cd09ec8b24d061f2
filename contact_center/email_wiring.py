"""Email in the daemon: the support mailbox read over IMAP into routed contacts, replies
and chat transcripts out over SMTP, the mailbox's cursor and the thread-token secret
kept in the store (shared by every daemon on it)."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.email.channel import EmailChannel, EmailSettings
from adapters.messaging.intake import MessageIntake
from contact_center.channel_runtime import RunningChannel
from contact_center.health import State
from crm_store import interactions
from crm_store.channel_cursors import load_cursor, save_cursor

if TYPE_CHECKING:
    from contact_center.app import Daemon

_SECRET = "email.thread_secret"


class StoreCursors:
    """Each mailbox's (UIDVALIDITY, last UID) in the store's channel cursors."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], account: str) -> None:
        self.sessionmaker = sessionmaker
        self.account = account

    def _name(self, mailbox: str) -> str:
        return f"imap:{self.account}:{mailbox}"[:200]

    async def load(self, mailbox: str) -> tuple[int, int] | None:
        async with self.sessionmaker() as session:
            value = await load_cursor(session, self._name(mailbox))
        if value is None:
            return None
        return int(value["uidvalidity"]), int(value["last_uid"])

    async def save(self, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        async with self.sessionmaker.begin() as session:
            await save_cursor(
                session, self._name(mailbox), {"uidvalidity": uidvalidity, "last_uid": last_uid}
            )


async def thread_secret(sessionmaker: async_sessionmaker[AsyncSession]) -> bytes:
    """The key reply tokens are signed with: made once, kept in the store, so every daemon
    (and every restart) reads the tokens the others wrote."""
    async with sessionmaker() as session:
        found = await load_cursor(session, _SECRET)
    if found is None:
        try:
            async with sessionmaker.begin() as session:
                await save_cursor(session, _SECRET, {"hex": secrets.token_hex(32)})
        except Exception:
            pass  # another daemon made it at the same moment: read theirs below
        async with sessionmaker() as session:
            found = await load_cursor(session, _SECRET)
    assert found is not None
    return bytes.fromhex(str(found["hex"]))


def transcript_text(rows: list[tuple[str, datetime, str]]) -> str:
    """A chat as plain text, one line per message: `[12:01] Ann: hello`."""
    lines = [f"[{at:%Y-%m-%d %H:%M} UTC] {who}: {text}" for who, at, text in rows]
    return "Your chat with us:\n\n" + "\n".join(lines) + "\n"


async def start_email(daemon: Daemon, intake: MessageIntake) -> RunningChannel:
    """The support mailbox: IMAP in (IDLE or polling, reconnecting), SMTP out."""
    assert daemon.sessionmaker is not None
    sessionmaker = daemon.sessionmaker
    config = daemon.config.channels.email
    imap = config.imap
    states: dict[str, State] = {"connecting": "starting", "up": "up", "down": "down"}
    detail = f"IMAP {imap.username}@{imap.host}:{imap.port}/{imap.mailbox}"

    def report(state: str, error: str | None) -> None:
        daemon.health.set("channel.email", states.get(state, "down"), detail, error=error)

    channel = EmailChannel(
        EmailSettings(
            imap=imap,
            smtp=config.smtp,
            max_body_bytes=config.max_body_bytes,
            max_attachment_bytes=config.max_attachment_bytes,
            attachments_dir=Path(config.attachments_dir),
            from_name=config.from_name,
            smtp_implicit_tls=config.smtp.ssl,
        ),
        intake,
        StoreCursors(sessionmaker, f"{imap.username}@{imap.host}"),
        await thread_secret(sessionmaker),
        on_state=report,
    )
    # Replies whose client dropped the threading headers still name their contact.
    intake.read_token = channel.read_token

    async def mail_transcript(interaction_id: int, to: str) -> None:
        async with sessionmaker() as session:
            rows = await interactions.list_messages(session, interaction_id)
        text = transcript_text(
            [("You" if r.direction == "inbound" else "Agent", r.created_at, r.body) for r in rows]
        )
        await channel.send_transcript(interaction_id, to, text)

    daemon.transcripts = mail_transcript
    report("connecting", None)
    channel.start()
    return RunningChannel(channel, channel.stop)
