"""Web chat visitors without I/O: their frames, chat sessions, resume tokens and limits.

Everything here takes `now` (epoch seconds) and returns decisions; the socket handler
(`adapters.webchat.socket`) and the sender (`adapters.webchat.sender`) do the awaiting.
A visitor's frame is parsed into one of the `*Frame` classes or refused with a
`ChatRefused` carrying a stable code; a refused frame changes nothing.

The resume token is the only secret a visitor holds: it is made with `secrets`, handed
out once, and only its SHA-256 is kept, so a dump of the daemon's memory or logs cannot
be replayed into someone else's chat.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from adapters.messaging.model import InboundMessage

CHANNEL = "chat"
LANGUAGES = ("en", "zh-CN")
# The sender address of a chat visitor on the channel (InboundMessage.sender).
ADDRESS_PREFIX = "visitor:"
MAX_ID_CHARS = 64
MAX_TOKEN_CHARS = 128
MAX_NAME_CHARS = 100
MAX_EMAIL_CHARS = 254
MAX_TOPIC_CHARS = 64
# Visitor typing reaches the agent at most this often (the widget sends more).
TYPING_EVERY_SECONDS = 2.0
# A visitor's duplicate check remembers this many message ids per chat.
SEEN_IDS = 1000
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

By = Literal["visitor", "agent"]


class ChatRefused(Exception):
    """A frame or request refused, with a stable code the widget translates."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref  # the visitor message it is about, when there is one


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """What one visitor (or one client address) may make the daemon do or hold."""

    max_message_chars: int = 4000
    messages_per_minute: int = 20
    # Open chats from one client address (a household or office shares one).
    chats_per_address: int = 3
    sockets_per_address: int = 20
    # Every frame a socket sends, typing and bad ones included.
    frames_per_minute: int = 240
    # A chat with no socket for this long is over (the visitor left); resume fails then.
    resume_seconds: float = 1800.0
    # Agent messages kept for a visitor with no socket open, newest last.
    kept_frames: int = 200
    # Chats held at once by the whole daemon.
    max_chats: int = 10_000

    def __post_init__(self) -> None:
        for name in (
            "max_message_chars",
            "messages_per_minute",
            "chats_per_address",
            "sockets_per_address",
            "frames_per_minute",
            "kept_frames",
            "max_chats",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"chat limit {name} must be at least 1")
        if self.resume_seconds <= 0:
            raise ValueError("chat limit resume_seconds must be positive")

    @property
    def max_frame_bytes(self) -> int:
        """The largest frame read at all: a full-length message in the worst JSON
        (six bytes per character for escaped control characters), plus the envelope."""
        return self.max_message_chars * 6 + 2048


@dataclass(frozen=True, slots=True)
class PreChat:
    """What the pre-chat form gave."""

    name: str
    email: str | None
    topic: str | None
    lang: str


@dataclass(frozen=True, slots=True)
class StartFrame:
    prechat: PreChat


@dataclass(frozen=True, slots=True)
class MessageFrame:
    id: str  # the widget's uuid: the idempotence key of the message
    text: str


@dataclass(frozen=True, slots=True)
class TypingFrame:
    pass


@dataclass(frozen=True, slots=True)
class EndFrame:
    csat: int | None
    transcript: bool


@dataclass(frozen=True, slots=True)
class ResumeFrame:
    token: str


VisitorFrame = StartFrame | MessageFrame | TypingFrame | EndFrame | ResumeFrame


def parse_frame(data: str, limits: ChatLimits, topics: Iterable[str]) -> VisitorFrame:
    """One visitor frame (JSON text) as a typed frame; ChatRefused when it is not one."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise ChatRefused("frame.invalid", "a frame is a JSON object") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ChatRefused("frame.invalid", 'a frame is a JSON object with a "type"')
    kind = raw["type"]
    if kind == "start":
        return StartFrame(_prechat(raw, set(topics)))
    if kind == "message":
        message_id = _message_id(raw.get("id"))
        try:
            return MessageFrame(message_id, _text(raw.get("text"), limits))
        except ChatRefused as refused:
            raise ChatRefused(refused.code, refused.message, message_id) from None
    if kind == "typing":
        return TypingFrame()
    if kind == "end":
        return EndFrame(
            _csat(raw.get("csat")), _flag(raw.get("transcript_email"), "transcript_email")
        )
    if kind == "resume":
        token = raw.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise ChatRefused("frame.invalid", "token: the text `started` gave")
        return ResumeFrame(token)
    raise ChatRefused("frame.unknown_type", f"unknown frame type {kind[:MAX_ID_CHARS]!r}")


def _prechat(raw: Mapping[str, Any], topics: set[str]) -> PreChat:
    name = _line(raw.get("name"), "name", MAX_NAME_CHARS)
    if not name:
        raise ChatRefused("form.invalid", "name: required")
    email = _line(raw.get("email"), "email", MAX_EMAIL_CHARS).lower() or None
    if email is not None and not _EMAIL.fullmatch(email):
        raise ChatRefused("form.invalid", "email: not an email address")
    topic = _line(raw.get("topic"), "topic", MAX_TOPIC_CHARS) or None
    if topics and topic not in topics:
        raise ChatRefused("form.invalid", f"topic: one of {', '.join(sorted(topics))}")
    if not topics and topic is not None:
        raise ChatRefused("form.invalid", "topic: this chat has no topics")
    lang = raw.get("lang")
    return PreChat(name, email, topic, lang if lang in LANGUAGES else LANGUAGES[0])


def _line(value: Any, what: str, limit: int) -> str:
    """A one-line text field: stripped, control characters refused."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise ChatRefused("form.invalid", f"{what}: a text of at most {limit} characters")
    if _CONTROL.search(value) or "\n" in value or "\t" in value:
        raise ChatRefused("form.invalid", f"{what}: one line of text")
    return value.strip()


def _message_id(value: Any) -> str:
    if not isinstance(value, str) or not _MESSAGE_ID.fullmatch(value):
        raise ChatRefused("frame.invalid", "id: 1-64 letters, digits, '-' or '_' (a uuid)")
    return value


def _text(value: Any, limits: ChatLimits) -> str:
    if not isinstance(value, str):
        raise ChatRefused("frame.invalid", "text: a text")
    # Plain text as shown: line breaks and tabs stay, other control characters go.
    text = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) > limits.max_message_chars:
        raise ChatRefused(
            "message.too_long", f"a message has at most {limits.max_message_chars} characters"
        )
    if not text.strip():
        raise ChatRefused("message.empty", "the message is empty")
    return text


def _csat(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ChatRefused("frame.invalid", "csat: a whole number from 1 to 5")
    return value


def _flag(value: Any, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ChatRefused("frame.invalid", f"{what}: true or false")
    return value


def normalize_origin(origin: str) -> str | None:
    """`scheme://host[:port]` lower-cased, the default port left out; None for anything
    that is not an http(s) origin (a path, "null" from a sandboxed frame or a file)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def allowed_origins(origins: Iterable[str]) -> frozenset[str]:
    """The configured allow-list, normalized; ValueError naming an entry that is no origin."""
    allowed = set()
    for origin in origins:
        normalized = normalize_origin(origin)
        if normalized is None:
            raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        allowed.add(normalized)
    return frozenset(allowed)


def hash_token(token: str) -> str:
    """What the daemon keeps of a resume token."""
    return hashlib.sha256(token.encode()).hexdigest()


class SlidingWindow:
    """At most `limit` events in any `seconds`-long window."""

    def __init__(self, limit: int, seconds: float = 60.0) -> None:
        self.limit = limit
        self.seconds = seconds
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Count an event at `now` if the window has room; False (not counted) if not."""
        while self._times and self._times[0] <= now - self.seconds:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


@dataclass(eq=False)
class ChatSession:
    """One visitor's chat, from the pre-chat form until it is forgotten."""

    chat_id: str
    token_hash: str
    address: str
    prechat: PreChat
    started_at: float
    last_seen: float
    messages: SlidingWindow
    interaction_id: int | None = None
    agent_name: str | None = None
    ended_by: By | None = None
    rated: bool = False
    sockets: int = 0
    last_typing: float = float("-inf")
    # Visitor message ids already taken, oldest first (the duplicate check).
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # Frames for the visitor that no socket took: delivered on resume.
    pending: deque[dict[str, Any]] = field(default_factory=deque)

    @property
    def address_on_channel(self) -> str:
        """The visitor's address on the chat channel (InboundMessage.sender)."""
        return ADDRESS_PREFIX + self.chat_id

    @property
    def is_open(self) -> bool:
        """Not ended by either side."""
        return self.ended_by is None


class Visitors:
    """Every chat the daemon holds, by chat id, token hash and interaction."""

    def __init__(
        self,
        limits: ChatLimits,
        *,
        new_token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        new_chat_id: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.limits = limits
        self._new_token = new_token
        self._new_chat_id = new_chat_id
        self._chats: dict[str, ChatSession] = {}
        self._by_token: dict[str, ChatSession] = {}
        self._by_interaction: dict[int, ChatSession] = {}

    def __len__(self) -> int:
        return len(self._chats)

    def start(self, address: str, prechat: PreChat, now: float) -> tuple[ChatSession, str]:
        """A new chat and its resume token (given out once, kept as a hash)."""
        # Ended chats nobody looks at any more make room for the new one.
        for old in [s for s in self._chats.values() if s.address == address]:
            if not old.is_open and old.sockets == 0:
                self.forget(old)
        if self.open_chats(address) >= self.limits.chats_per_address:
            raise ChatRefused(
                "chat.too_many",
                f"at most {self.limits.chats_per_address} open chats from one address",
            )
        if len(self._chats) >= self.limits.max_chats:
            raise ChatRefused("chat.busy", "too many chats at once; try again later")
        token = self._new_token()
        chat_id = self._new_chat_id()
        if chat_id in self._chats or hash_token(token) in self._by_token:
            raise RuntimeError("chat id or token generator repeated itself")
        session = ChatSession(
            chat_id,
            hash_token(token),
            address,
            prechat,
            started_at=now,
            last_seen=now,
            messages=SlidingWindow(self.limits.messages_per_minute),
        )
        self._chats[chat_id] = session
        self._by_token[session.token_hash] = session
        return session, token

    def open_chats(self, address: str) -> int:
        """Chats from `address` that neither side has ended."""
        return sum(1 for s in self._chats.values() if s.address == address and s.is_open)

    def resume(self, token: str, now: float) -> ChatSession:
        """The chat a token opens; ChatRefused("chat.unknown") for none (or a forgotten one)."""
        session = self._by_token.get(hash_token(token))
        if session is None:
            raise ChatRefused("chat.unknown", "no such chat: it ended or expired")
        session.last_seen = now
        return session

    def get(self, chat_id: str) -> ChatSession | None:
        """The chat with this id, if held."""
        return self._chats.get(chat_id)

    def for_recipient(self, recipient: str) -> ChatSession | None:
        """The chat an outbound message's recipient (`visitor:<chat id>`) names."""
        if not recipient.startswith(ADDRESS_PREFIX):
            return None
        return self._chats.get(recipient[len(ADDRESS_PREFIX) :])

    def for_interaction(self, interaction_id: int) -> ChatSession | None:
        """The chat stored as `interaction_id`, if held."""
        return self._by_interaction.get(interaction_id)

    def bind(self, session: ChatSession, interaction_id: int) -> None:
        """The store holds this chat as `interaction_id` (the store knows best: a chat it
        filed under another interaction moves there)."""
        if session.interaction_id is not None:
            self._by_interaction.pop(session.interaction_id, None)
        session.interaction_id = interaction_id
        self._by_interaction[interaction_id] = session

    def attach(self, session: ChatSession, now: float) -> None:
        """A socket joined the chat."""
        session.sockets += 1
        session.last_seen = now

    def detach(self, session: ChatSession, now: float) -> None:
        """A socket left the chat; the resume window starts from now."""
        session.sockets = max(0, session.sockets - 1)
        session.last_seen = now

    def take_message(self, session: ChatSession, message_id: str, now: float) -> bool:
        """Whether a visitor message is new (True) or one already taken (False).

        ChatRefused when the chat has ended or the visitor writes too fast; then nothing
        is counted or remembered.
        """
        if not session.is_open:
            raise ChatRefused("chat.ended", "this chat has ended")
        if message_id in session.seen:
            return False
        if not session.messages.allow(now):
            raise ChatRefused(
                "chat.rate_limited",
                f"at most {self.limits.messages_per_minute} messages a minute; wait a moment",
            )
        session.seen[message_id] = None
        if len(session.seen) > SEEN_IDS:
            session.seen.popitem(last=False)
        session.last_seen = now
        return True

    def forget_message(self, session: ChatSession, message_id: str) -> None:
        """A taken message the store refused: the visitor may send it again."""
        session.seen.pop(message_id, None)

    def typing_due(self, session: ChatSession, now: float) -> bool:
        """Whether a visitor's typing goes on to the agent now (at most every 2 s)."""
        if not session.is_open or now - session.last_typing < TYPING_EVERY_SECONDS:
            return False
        session.last_typing = now
        return True

    def end(self, session: ChatSession, by: By, now: float) -> bool:
        """End the chat; False when it had already ended (nothing changes then)."""
        session.last_seen = now
        if not session.is_open:
            return False
        session.ended_by = by
        return True

    def rate(self, session: ChatSession, csat: int | None, transcript: bool) -> str | None:
        """The visitor's last word (stars, transcript); where the transcript goes.

        Once per chat: ChatRefused after that, or for a transcript without an email.
        """
        if session.rated:
            raise ChatRefused("chat.ended", "this chat has ended")
        if transcript and session.prechat.email is None:
            raise ChatRefused("form.invalid", "transcript_email: no email was given")
        session.rated = True
        return session.prechat.email if transcript else None

    def keep(self, session: ChatSession, frame: dict[str, Any]) -> None:
        """Hold a frame for the visitor's next socket (the oldest go past the limit)."""
        session.pending.append(frame)
        while len(session.pending) > self.limits.kept_frames:
            session.pending.popleft()

    def take_pending(self, session: ChatSession, shown: Iterable[str]) -> list[dict[str, Any]]:
        """The held frames not among the `shown` message ids; none are held after."""
        seen = set(shown)
        frames = [f for f in session.pending if f.get("id") not in seen]
        session.pending.clear()
        return frames

    def expire(self, now: float) -> list[ChatSession]:
        """Forget the chats with no socket for `resume_seconds`; the ones forgotten."""
        cutoff = now - self.limits.resume_seconds
        gone = [s for s in self._chats.values() if s.sockets == 0 and s.last_seen <= cutoff]
        for session in gone:
            self.forget(session)
        return gone

    def forget(self, session: ChatSession) -> None:
        """Drop a chat and its token (idempotent)."""
        self._chats.pop(session.chat_id, None)
        self._by_token.pop(session.token_hash, None)
        if session.interaction_id is not None:
            self._by_interaction.pop(session.interaction_id, None)

    def sessions(self) -> list[ChatSession]:
        """Every chat held."""
        return list(self._chats.values())


def provider_id(chat_id: str, message_id: str) -> str:
    """The stored id of a visitor's message: the widget's id within its chat.

    Storing is idempotent on the provider id across all chats: a bare widget id would let
    one visitor name another's message (and be told its interaction); within the chat's
    own name it can only repeat the visitor's own."""
    return f"{chat_id}:{message_id}"


def inbound_message(
    session: ChatSession,
    frame: MessageFrame,
    now: float,
    topics: Mapping[str, Mapping[str, int]],
    queue: str | None,
) -> InboundMessage:
    """A visitor's message as the message intake takes it."""
    topic = session.prechat.topic
    return InboundMessage(
        channel=CHANNEL,
        provider_id=provider_id(session.chat_id, frame.id),
        sender=session.address_on_channel,
        body=frame.text,
        received_at=now,
        sender_name=session.prechat.name,
        sender_email=session.prechat.email,
        thread_refs=(session.chat_id,),
        queue=queue,
        skills=dict(topics.get(topic, {})) if topic is not None else {},
    )


def message_frame(
    message_id: str,
    sender: Literal["agent", "visitor", "system"],
    text: str,
    at: float,
    agent_name: str | None = None,
) -> dict[str, Any]:
    """A `message` frame for the widget."""
    frame: dict[str, Any] = {
        "type": "message",
        "id": message_id,
        "from": sender,
        "text": text,
        "at": at,
    }
    if agent_name is not None:
        frame["agent_name"] = agent_name
    return frame


def history_frames(rows: Iterable[Mapping[str, Any]], chat_id: str) -> list[dict[str, Any]]:
    """`message` frames from what ChatHistory gave (visitor messages under the widget's own
    ids again); rows that are not messages are left out."""
    own = provider_id(chat_id, "")
    frames = []
    for row in rows:
        sender = row.get("from")
        text = row.get("text")
        at = row.get("at")
        message_id = row.get("id")
        agent_name = row.get("agent_name")
        if (
            sender not in ("agent", "visitor", "system")
            or not isinstance(text, str)
            or isinstance(at, bool)
            or not isinstance(at, int | float)
            or not isinstance(message_id, str | int)
        ):
            continue
        shown_id = str(message_id)
        if sender == "visitor" and shown_id.startswith(own):
            shown_id = shown_id[len(own) :]
        frames.append(
            message_frame(
                shown_id,
                sender,
                text,
                float(at),
                agent_name if isinstance(agent_name, str) and sender == "agent" else None,
            )
        )
    return frames
