"""Twilio webhook fields as our vocabulary: inbound SMS/MMS and status callbacks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.messaging.model import Attachment
from adapters.sms.inbound import (
    STATUSES,
    StatusUpdate,
    WebhookFormError,
    parse_inbound,
    parse_status,
)
from adapters.sms.opt_out import Keyword

SID = "SM" + "0123456789abcdef" * 2
NOW = 1_764_633_600.5


def fields(**extra: str) -> dict[str, str]:
    return {
        "MessageSid": SID,
        "From": "+447700900123",
        "To": "+441632960001",
        "Body": "Where is my parcel?",
        "NumMedia": "0",
        **extra,
    }


def test_an_sms_becomes_an_inbound_message() -> None:
    sms = parse_inbound(fields(), max_body_chars=1600, now=NOW)
    message = sms.message
    assert (message.channel, message.provider_id) == ("sms", SID)
    assert (message.sender, message.recipient) == ("+447700900123", "+441632960001")
    assert (message.body, message.received_at) == ("Where is my parcel?", NOW)
    assert message.thread_refs == () and message.thread_token is None
    assert message.attachments == () and sms.keyword is None


def test_the_sender_is_the_e164_number_twilio_gave() -> None:
    sms = parse_inbound(fields(From=" +447700900123\n"), max_body_chars=1600, now=NOW)
    assert sms.message.sender == "+447700900123"


def test_control_characters_are_dropped_but_lines_kept() -> None:
    body = "line one\nline\x00 two\u202e\tend"
    sms = parse_inbound(fields(Body=body), max_body_chars=1600, now=NOW)
    assert sms.message.body == "line one\nline two\tend"


def test_a_keyword_message_carries_its_keyword() -> None:
    sms = parse_inbound(fields(Body=" Stop "), max_body_chars=1600, now=NOW)
    assert sms.keyword is not None and sms.keyword.keyword is Keyword.STOP
    assert sms.message.body == " Stop "  # stored as sent


def test_mms_media_become_attachment_references() -> None:
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME" + "a" * 32
    sms = parse_inbound(
        fields(
            Body="",
            NumMedia="3",
            MediaUrl0=url,
            MediaContentType0="image/png",
            MediaUrl1=url + "1",
            MediaContentType1="",
            MediaUrl2=url + "2/",
            MediaContentType2="audio/mpeg",
        ),
        max_body_chars=1600,
        now=NOW,
    )
    stem = "ME" + "a" * 32
    assert sms.message.attachments == (
        Attachment(f"{stem}.png", "image/png", 0, ref=url),
        Attachment(f"{stem}1.bin", "application/octet-stream", 0, ref=url + "1"),
        Attachment(f"{stem}2.mp3", "audio/mpeg", 0, ref=url + "2/"),
    )


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"MessageSid": ""}, "MessageSid: missing"),
        ({"MessageSid": "SM" + "g" * 32}, "MessageSid: not a Twilio id"),
        ({"From": ""}, "From: missing"),
        ({"From": "+44"}, "From: not an E.164"),
        ({"From": "07700900123"}, "From: not an E.164"),
        ({"From": "whatsapp:+447700900123"}, "From: not an E.164"),
        ({"From": "+99912345678"}, "From: "),  # no such country code
        ({"Body": "x" * 1601}, "Body: 1601 characters, over the 1600 allowed"),
        ({"Body": ""}, "Body: empty, and no media"),
        ({"NumMedia": "-1"}, "NumMedia: expected 0..10"),
        ({"NumMedia": "two"}, "NumMedia: expected 0..10"),
        ({"NumMedia": "\u0661"}, "NumMedia: expected 0..10"),  # Arabic-Indic digit one
        ({"NumMedia": "1", "MediaUrl0": "file:///etc/passwd"}, "MediaUrl0: not an http(s) URL"),
        ({"NumMedia": "1", "MediaUrl0": "https://"}, "MediaUrl0: not an http(s) URL"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(extra: dict[str, str], problem: str) -> None:
    with pytest.raises(WebhookFormError) as caught:
        parse_inbound(fields(**extra), max_body_chars=1600, now=NOW)
    assert str(caught.value).startswith(problem)


def test_a_status_callback_becomes_a_status_update() -> None:
    assert parse_status({"MessageSid": SID, "MessageStatus": "delivered"}) == StatusUpdate(
        SID, "delivered"
    )
    failed = {"MessageSid": SID, "MessageStatus": "Undelivered", "ErrorCode": "30003"}
    assert parse_status(failed) == StatusUpdate(SID, "undelivered", "30003")
    # Twilio sends ErrorCode 0 on some successes.
    assert parse_status({**failed, "MessageStatus": "sent", "ErrorCode": "0"}).error is None


def test_every_documented_status_is_known() -> None:
    documented = {"queued", "sending", "sent", "delivered", "undelivered", "failed", "read"}
    assert documented <= STATUSES
    for status in STATUSES:
        assert parse_status({"MessageSid": SID, "MessageStatus": status}).status == status


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"MessageStatus": ""}, "MessageStatus: missing"),
        ({"MessageStatus": "lost-in-space"}, "MessageStatus: unknown status"),
        ({"MessageSid": "nope"}, "MessageSid: not a Twilio id"),
        ({"ErrorCode": "30003; DROP TABLE"}, "ErrorCode: expected digits"),
    ],
)
def test_bad_status_callbacks_are_refused(extra: dict[str, str], problem: str) -> None:
    with pytest.raises(WebhookFormError, match=problem):
        parse_status({"MessageSid": SID, "MessageStatus": "sent", **extra})


_FIELD_NAMES = st.sampled_from(
    [
        "MessageSid",
        "From",
        "To",
        "Body",
        "NumMedia",
        "MediaUrl0",
        "MediaContentType0",
        "OptOutType",
        "MessageStatus",
        "ErrorCode",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    base=st.booleans(),
    changes=st.dictionaries(_FIELD_NAMES, st.text(max_size=80), max_size=6),
)
def test_any_fields_parse_or_are_refused_cleanly(base: bool, changes: dict[str, str]) -> None:
    given_fields = {**(fields() if base else {}), **changes}
    for parser in (
        lambda: parse_inbound(given_fields, max_body_chars=1600, now=NOW),
        lambda: parse_status(given_fields),
    ):
        try:
            parser()
        except WebhookFormError as exc:
            assert str(exc).split(":", 1)[0] in {
                "MessageSid",
                "From",
                "Body",
                "NumMedia",
                "MediaUrl0",
                "MessageStatus",
                "ErrorCode",
            }
