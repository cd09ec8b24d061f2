"""The pure web chat core: visitor frames, chat sessions, resume tokens and limits."""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import pytest

from adapters.webchat.visitors import (
    ChatLimits,
    ChatRefused,
    EndFrame,
    MessageFrame,
    PreChat,
    ResumeFrame,
    SlidingWindow,
    StartFrame,
    TypingFrame,
    Visitors,
    allowed_origins,
    hash_token,
    history_frames,
    inbound_message,
    normalize_origin,
    parse_frame,
)

LIMITS = ChatLimits(max_message_chars=20, messages_per_minute=3, chats_per_address=2)
TOPICS = {"billing": {"billing": 3}, "support": {"support": 5, "english": 2}}
ANN = PreChat("Ann", "ann@example.com", "billing", "en")


def parse(frame: Any, topics: Any = TOPICS) -> Any:
    return parse_frame(json.dumps(frame), LIMITS, topics)


def refused(frame: Any, topics: Any = TOPICS) -> str:
    with pytest.raises(ChatRefused) as caught:
        parse(frame, topics)
    return caught.value.code


def visitors(limits: ChatLimits = LIMITS) -> Visitors:
    counter = itertools.count(1)
    return Visitors(
        limits,
        new_token=lambda: f"token-{next(counter)}",
        new_chat_id=lambda: f"chat{next(counter)}",
    )


def test_frames_are_parsed_into_their_types() -> None:
    start = parse(
        {"type": "start", "name": " Ann ", "email": "Ann@Example.COM", "topic": "billing"}
    )
    assert start == StartFrame(PreChat("Ann", "ann@example.com", "billing", "en"))
    assert parse({"type": "start", "name": "李雷", "lang": "zh-CN", "topic": "support"}) == (
        StartFrame(PreChat("李雷", None, "support", "zh-CN"))
    )
    assert parse({"type": "message", "id": "a-1", "text": "hi\r\nthere\x07"}) == MessageFrame(
        "a-1", "hi\nthere"
    )
    assert parse({"type": "typing"}) == TypingFrame()
    assert parse({"type": "end"}) == EndFrame(None, False)
    assert parse({"type": "end", "csat": 5, "transcript_email": True}) == EndFrame(5, True)
    assert parse({"type": "resume", "token": "abc"}) == ResumeFrame("abc")


def test_an_unknown_language_is_english() -> None:
    assert parse({"type": "start", "name": "Ann", "topic": "billing", "lang": "fr"}) == (
        StartFrame(PreChat("Ann", None, "billing", "en"))
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ([], "frame.invalid"),
        ({"kind": "message"}, "frame.invalid"),
        ({"type": 3}, "frame.invalid"),
        ({"type": "shout"}, "frame.unknown_type"),
        ({"type": "start"}, "form.invalid"),
        ({"type": "start", "name": "   ", "topic": "billing"}, "form.invalid"),
        ({"type": "start", "name": "x" * 101, "topic": "billing"}, "form.invalid"),
        ({"type": "start", "name": "Ann\nBob", "topic": "billing"}, "form.invalid"),
        ({"type": "start", "name": "Ann", "topic": "billing", "email": "nope"}, "form.invalid"),
        ({"type": "start", "name": "Ann", "topic": "lottery"}, "form.invalid"),
        ({"type": "start", "name": "Ann"}, "form.invalid"),
        ({"type": "start", "name": ["Ann"], "topic": "billing"}, "form.invalid"),
        ({"type": "message", "text": "hi"}, "frame.invalid"),
        ({"type": "message", "id": "has space", "text": "hi"}, "frame.invalid"),
        ({"type": "message", "id": "x" * 65, "text": "hi"}, "frame.invalid"),
        ({"type": "message", "id": "a", "text": 5}, "frame.invalid"),
        ({"type": "message", "id": "a", "text": "x" * 21}, "message.too_long"),
        ({"type": "message", "id": "a", "text": " \n\t "}, "message.empty"),
        ({"type": "end", "csat": 0}, "frame.invalid"),
        ({"type": "end", "csat": 6}, "frame.invalid"),
        ({"type": "end", "csat": 4.5}, "frame.invalid"),
        ({"type": "end", "csat": True}, "frame.invalid"),
        ({"type": "end", "transcript_email": "yes"}, "frame.invalid"),
        ({"type": "resume"}, "frame.invalid"),
        ({"type": "resume", "token": "t" * 129}, "frame.invalid"),
    ],
)
def test_bad_frames_are_refused_with_a_code(frame: Any, code: str) -> None:
    assert refused(frame) == code


def test_a_refused_message_names_its_id() -> None:
    with pytest.raises(ChatRefused) as caught:
        parse({"type": "message", "id": "m-9", "text": "x" * 21})
    assert caught.value.ref == "m-9"


def test_not_json_and_deep_json_are_refused() -> None:
    for data in ("{", "", "[" * 100_000):
        with pytest.raises(ChatRefused) as caught:
            parse_frame(data, LIMITS, TOPICS)
        assert caught.value.code == "frame.invalid"


def test_without_topics_the_form_has_none() -> None:
    assert parse({"type": "start", "name": "Ann"}, topics={}) == StartFrame(
        PreChat("Ann", None, None, "en")
    )
    assert refused({"type": "start", "name": "Ann", "topic": "billing"}, topics={}) == (
        "form.invalid"
    )


def test_the_frame_bound_holds_a_full_message_in_the_worst_json() -> None:
    limits = ChatLimits(max_message_chars=100)
    worst = json.dumps({"type": "message", "id": "x" * 64, "text": "\x01" * 100})
    assert len(worst.encode()) <= limits.max_frame_bytes


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="messages_per_minute"):
        ChatLimits(messages_per_minute=0)
    with pytest.raises(ValueError, match="resume_seconds"):
        ChatLimits(resume_seconds=0)


def test_a_chat_keeps_only_the_hash_of_its_token() -> None:
    chats = Visitors(LIMITS)
    session, token = chats.start("10.0.0.1", ANN, 100.0)
    assert len(token) >= 40
    assert session.token_hash == hashlib.sha256(token.encode()).hexdigest() == hash_token(token)
    assert token not in repr(vars(session))
    assert chats.resume(token, 200.0) is session
    assert session.last_seen == 200.0
    with pytest.raises(ChatRefused) as caught:
        chats.resume(token[:-1], 200.0)
    assert caught.value.code == "chat.unknown"
    other, other_token = chats.start("10.0.0.1", ANN, 100.0)
    assert other_token != token and other.chat_id != session.chat_id


def test_open_chats_per_address_are_bounded() -> None:
    chats = visitors()
    first, _ = chats.start("10.0.0.1", ANN, 0.0)
    chats.start("10.0.0.1", ANN, 0.0)
    with pytest.raises(ChatRefused) as caught:
        chats.start("10.0.0.1", ANN, 0.0)
    assert caught.value.code == "chat.too_many"
    chats.start("10.0.0.2", ANN, 0.0)  # another address is another visitor
    assert chats.end(first, "visitor", 1.0)
    assert not chats.end(first, "agent", 2.0)  # ended once
    assert first.ended_by == "visitor"
    chats.start("10.0.0.1", ANN, 3.0)
    # The ended chat nobody had open made way.
    assert chats.get(first.chat_id) is None


def test_the_daemon_holds_at_most_max_chats() -> None:
    chats = visitors(ChatLimits(max_chats=2, chats_per_address=5))
    chats.start("a", ANN, 0.0)
    chats.start("b", ANN, 0.0)
    with pytest.raises(ChatRefused) as caught:
        chats.start("c", ANN, 0.0)
    assert caught.value.code == "chat.busy"


def test_messages_are_taken_once_and_at_a_bounded_rate() -> None:
    chats = visitors()
    session, _ = chats.start("10.0.0.1", ANN, 0.0)
    assert chats.take_message(session, "m1", 0.0)
    assert not chats.take_message(session, "m1", 1.0)  # the same id again
    assert chats.take_message(session, "m2", 1.0)
    assert chats.take_message(session, "m3", 2.0)
    with pytest.raises(ChatRefused) as caught:
        chats.take_message(session, "m4", 59.0)
    assert caught.value.code == "chat.rate_limited"
    assert chats.take_message(session, "m4", 60.0)  # m1 left the window
    chats.forget_message(session, "m4")
    assert "m4" not in session.seen
    chats.end(session, "agent", 61.0)
    with pytest.raises(ChatRefused) as ended:
        chats.take_message(session, "m5", 200.0)
    assert ended.value.code == "chat.ended"


def test_the_sliding_window_counts_only_what_it_allows() -> None:
    window = SlidingWindow(2, seconds=10)
    assert window.allow(0) and window.allow(1)
    assert not window.allow(5)
    assert not window.allow(9.9)
    assert window.allow(10)  # the one at 0 left
    assert not window.allow(10.5)
    assert window.allow(11)


def test_typing_goes_to_the_agent_at_most_every_two_seconds() -> None:
    chats = visitors()
    session, _ = chats.start("10.0.0.1", ANN, 0.0)
    assert chats.typing_due(session, 10.0)
    assert not chats.typing_due(session, 11.0)
    assert chats.typing_due(session, 12.0)
    chats.end(session, "visitor", 13.0)
    assert not chats.typing_due(session, 20.0)


def test_a_chat_is_rated_once_and_a_transcript_needs_an_email() -> None:
    chats = visitors()
    session, _ = chats.start("10.0.0.1", ANN, 0.0)
    assert chats.rate(session, 4, True) == "ann@example.com"
    with pytest.raises(ChatRefused):
        chats.rate(session, 5, False)
    nameless, _ = chats.start("10.0.0.1", PreChat("Bo", None, None, "en"), 0.0)
    with pytest.raises(ChatRefused) as caught:
        chats.rate(nameless, 3, True)
    assert caught.value.code == "form.invalid"
    assert not nameless.rated  # refused: nothing changed
    assert chats.rate(nameless, 3, False) is None


def test_bound_chats_are_found_by_interaction_and_recipient() -> None:
    chats = visitors()
    session, _ = chats.start("10.0.0.1", ANN, 0.0)
    assert chats.for_interaction(7) is None
    chats.bind(session, 7)
    assert chats.for_interaction(7) is session
    assert chats.for_recipient(f"visitor:{session.chat_id}") is session
    assert chats.for_recipient(session.chat_id) is None
    assert chats.for_recipient("visitor:nope") is None
    chats.bind(session, 8)  # the store filed it elsewhere: it moves
    assert chats.for_interaction(7) is None and chats.for_interaction(8) is session


def test_chats_with_no_tab_expire_after_the_resume_window() -> None:
    chats = visitors(ChatLimits(resume_seconds=60))
    session, token = chats.start("10.0.0.1", ANN, 0.0)
    chats.bind(session, 5)
    chats.attach(session, 0.0)
    assert chats.expire(1000.0) == []  # a tab is open
    chats.detach(session, 1000.0)
    assert chats.expire(1059.0) == []
    assert chats.expire(1060.0) == [session]
    assert chats.for_interaction(5) is None and len(chats) == 0
    with pytest.raises(ChatRefused):
        chats.resume(token, 1061.0)


def test_frames_kept_for_a_closed_tab_are_bounded_and_given_once() -> None:
    chats = visitors(ChatLimits(kept_frames=3))
    session, _ = chats.start("10.0.0.1", ANN, 0.0)
    for i in range(5):
        chats.keep(session, {"type": "message", "id": str(i)})
    assert chats.take_pending(session, shown=["3"]) == [
        {"type": "message", "id": "2"},
        {"type": "message", "id": "4"},
    ]
    assert chats.take_pending(session, shown=[]) == []


def test_a_visitor_message_becomes_an_inbound_chat_message() -> None:
    chats = visitors()
    session, _ = chats.start("10.0.0.1", PreChat("Ann", None, "support", "en"), 0.0)
    message = inbound_message(session, MessageFrame("m1", "hello"), 12.5, TOPICS, "chat")
    assert message.channel == "chat"
    assert message.provider_id == f"{session.chat_id}:m1"
    assert message.sender == f"visitor:{session.chat_id}"
    assert message.sender_name == "Ann"
    assert message.thread_refs == (session.chat_id,)
    assert message.skills == {"support": 5, "english": 2}
    assert message.queue == "chat" and message.recipient is None
    assert message.received_at == 12.5 and message.body == "hello"
    no_topic, _ = chats.start("10.0.0.2", PreChat("Bo", None, None, "en"), 0.0)
    assert inbound_message(no_topic, MessageFrame("m2", "hi"), 0.0, TOPICS, None).skills == {}


def test_history_rows_become_message_frames_and_junk_is_left_out() -> None:
    rows: list[dict[str, Any]] = [
        {"id": "chat9:v1", "from": "visitor", "text": "hi", "at": 1},
        {"id": 7, "from": "agent", "text": "hello", "at": 2.5, "agent_name": "Bob", "x": 1},
        {"id": "s", "from": "system", "text": "Bob joined", "at": 3, "agent_name": "Bob"},
        {"id": "bad", "from": "robot", "text": "?", "at": 4},
        {"id": "bad", "from": "agent", "text": None, "at": 4},
        {"id": "bad", "from": "agent", "text": "x", "at": True},
        {"id": None, "from": "agent", "text": "x", "at": 4},
    ]
    assert history_frames(rows, "chat9") == [
        {"type": "message", "id": "v1", "from": "visitor", "text": "hi", "at": 1.0},
        {
            "type": "message",
            "id": "7",
            "from": "agent",
            "text": "hello",
            "at": 2.5,
            "agent_name": "Bob",
        },
        {"type": "message", "id": "s", "from": "system", "text": "Bob joined", "at": 3.0},
    ]


@pytest.mark.parametrize(
    ("origin", "normalized"),
    [
        ("https://Shop.Example.com", "https://shop.example.com"),
        ("https://shop.example.com:443", "https://shop.example.com"),
        ("http://shop.example.com:80/", "http://shop.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("null", None),
        ("file://", None),
        ("ftp://shop.example.com", None),
        ("https://shop.example.com/page", None),
        ("https://user@shop.example.com", None),
        ("https://shop.example.com:99999", None),
    ],
)
def test_origins_are_normalized(origin: str, normalized: str | None) -> None:
    assert normalize_origin(origin) == normalized


def test_a_configured_origin_that_is_no_origin_is_an_error() -> None:
    assert allowed_origins(["https://a.example", "https://A.example:443"]) == {"https://a.example"}
    with pytest.raises(ValueError, match="not an origin"):
        allowed_origins(["a.example"])
