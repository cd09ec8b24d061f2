"""Replies and transcripts composed for SMTP: threading headers, subjects, no injection."""

from __future__ import annotations

import re
from dataclasses import replace
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.email.compose import (
    MAX_REFERENCES,
    UnsafeHeader,
    compose_reply,
    compose_transcript,
    new_message_id,
    reference_chain,
)
from adapters.email.conversation_threads import plus_address, read_token, thread_token
from adapters.email.parse import parse_email
from adapters.messaging.model import OutboundMessage

SECRET = b"fixture-secret-0123456789"
TOKEN = thread_token(4711, SECRET)
NOW = 1_796_112_838.0  # Tue, 01 Dec 2026 08:13:58 +0000
CUSTOMER_ID = "AM6PR05MB5618@eurprd05.prod.outlook.com"
OUT = OutboundMessage(
    message_id=17,
    interaction_id=4711,
    channel="email",
    recipient="j.mueller@kunde-gmbh.de",
    body="Guten Tag Herr Müller,\r\n\r\nanbei die Rechnung.\n",
    subject="RE: AW: Rechnung für Bestellung 4471",
    own_provider_id="1796112838.123.456@mail.example.com",
    in_reply_to=CUSTOMER_ID,
    references=("root@kunde-gmbh.de",),
)


def reply(out: OutboundMessage = OUT, overrides: dict[str, str] | None = None) -> EmailMessage:
    options = {
        "from_address": "support@example.com",
        "from_name": "Eva Schmidt",
        "reply_to": plus_address("support@example.com", TOKEN),
        **(overrides or {}),
    }
    return compose_reply(
        out,
        from_address=options["from_address"],
        from_name=options["from_name"],
        reply_to=options["reply_to"],
        domain="mail.example.com",
        now=NOW,
        thread_token=TOKEN,
    )


def wire(message: EmailMessage) -> bytes:
    return message.as_bytes()


def reread(message: EmailMessage) -> EmailMessage:
    parsed = message_from_bytes(wire(message), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_reply_headers() -> None:
    sent = reread(reply())
    assert sent["From"] == "Eva Schmidt <support@example.com>"
    assert sent["To"] == "j.mueller@kunde-gmbh.de"
    assert sent["Reply-To"] == f"support+c{TOKEN}@example.com"
    assert sent["Subject"] == f"Re: Rechnung für Bestellung 4471 [#{TOKEN}]"
    assert sent["Date"] == "Tue, 01 Dec 2026 08:13:58 +0000"
    assert sent["Message-ID"] == "<1796112838.123.456@mail.example.com>"
    assert sent["In-Reply-To"] == f"<{CUSTOMER_ID}>"
    assert sent["References"] == f"<root@kunde-gmbh.de> <{CUSTOMER_ID}>"
    assert "Auto-Submitted" not in sent  # a person wrote it
    body = sent.get_body(("plain",))
    assert body is not None
    assert (
        body.get_content().replace("\r\n", "\n")
        == "Guten Tag Herr Müller,\n\nanbei die Rechnung.\n"
    )
    assert body.get_content_charset() == "utf-8"


def test_wire_form_is_seven_bit_with_crlf() -> None:
    data = wire(reply())
    assert data.isascii()
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_new_mail_is_not_a_reply() -> None:
    fresh = replace(OUT, subject="Your return label", in_reply_to=None, references=())
    sent = reread(reply(fresh))
    assert sent["Subject"] == f"Your return label [#{TOKEN}]"
    assert "In-Reply-To" not in sent and "References" not in sent


def test_message_id_is_made_when_none_was_stored() -> None:
    sent = reread(reply(replace(OUT, own_provider_id=None)))
    assert re.fullmatch(r"<[0-9.]+@mail\.example\.com>", str(sent["Message-ID"]))


def test_new_message_ids_are_unique_and_bare() -> None:
    ids = {new_message_id("mail.example.com") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(not i.startswith("<") and i.endswith("@mail.example.com") for i in ids)
    for bad in ("", "exa mple.com", "example.com\r\nBcc: x", "-bad-.com", "a" * 300):
        with pytest.raises(UnsafeHeader):
            new_message_id(bad)


def test_reference_chain_is_bounded_keeping_first_and_newest() -> None:
    refs = tuple(f"r{i}@x.example" for i in range(30))
    chain = reference_chain(refs, "parent@x.example")
    assert len(chain) == MAX_REFERENCES
    assert chain[0] == "r0@x.example"
    assert chain[-2:] == ("r29@x.example", "parent@x.example")
    assert chain[1] == "r22@x.example"


def test_reference_chain_skips_what_is_no_message_id() -> None:
    refs = ("sha256:" + "0" * 64, "ok@x.example", "bad id@x", "<x@y>", "ok@x.example")
    assert reference_chain(refs, None) == ("ok@x.example",)
    assert reference_chain((), "sha256:abc") == ()
    assert reference_chain(("a@x", "b@x"), "a@x") == ("b@x", "a@x")


def test_hashed_in_reply_to_is_left_out() -> None:
    sent = reread(reply(replace(OUT, in_reply_to="sha256:" + "0" * 64, references=())))
    assert "In-Reply-To" not in sent and "References" not in sent
    assert str(sent["Subject"]).startswith("Re: ")  # still an answer


def test_transcript_is_auto_generated() -> None:
    chat = replace(OUT, subject=None, in_reply_to=None, references=(), body="10:01 Anna: hi\n")
    sent = reread(
        compose_transcript(
            chat,
            from_address="support@example.com",
            from_name="Example Support",
            reply_to=plus_address("support@example.com", TOKEN),
            domain="mail.example.com",
            now=NOW,
            thread_token=TOKEN,
        )
    )
    assert sent["Auto-Submitted"] == "auto-generated"
    assert sent["X-Auto-Response-Suppress"] == "All"
    assert sent["Subject"] == f"Chat transcript [#{TOKEN}]"


def test_not_an_email_message_is_refused() -> None:
    with pytest.raises(ValueError, match="channel"):
        reply(replace(OUT, channel="sms"))


# --- header injection ------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["from_name", "from_address", "reply_to"],
)
@pytest.mark.parametrize("evil", ["x\r\nBcc: victim@evil.example", "x\nBcc: v@e", "x\rB", "x\0y"])
def test_line_breaks_in_names_and_addresses_are_refused(field: str, evil: str) -> None:
    value = evil if field == "from_name" else "support@example.com" + evil
    with pytest.raises(UnsafeHeader):
        reply(overrides={field: value})


@pytest.mark.parametrize(
    "recipient",
    ["a@b.example\r\nBcc: victim@evil.example", "not an address", "", "@b.example", "ü@b.example"],
)
def test_bad_recipients_are_refused(recipient: str) -> None:
    with pytest.raises(UnsafeHeader):
        reply(replace(OUT, recipient=recipient))


def test_bad_own_message_id_is_refused() -> None:
    with pytest.raises(UnsafeHeader):
        reply(replace(OUT, own_provider_id="x@y>\r\nBcc: victim@evil.example"))


def test_subject_with_line_breaks_stays_one_header() -> None:
    evil = "Hello\r\nBcc: victim@evil.example\r\n\r\nInjected body"
    data = wire(reply(replace(OUT, subject=evil)))
    sent = message_from_bytes(data, policy=policy.default)
    assert "Bcc" not in sent
    assert sent["Subject"] == f"Re: Hello Bcc: victim@evil.example Injected body [#{TOKEN}]"
    assert b"\r\nBcc:" not in data


@given(
    st.text(max_size=60),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40),
)
def test_no_subject_or_name_adds_a_header(subject: str, name: str) -> None:
    try:
        message = reply(replace(OUT, subject=subject), {"from_name": name})
    except UnsafeHeader:
        assert any(ch in name for ch in "\r\n\0")
        return
    sent = message_from_bytes(wire(message), policy=policy.default)
    expected = {"from", "to", "reply-to", "subject", "date", "message-id", "in-reply-to"}
    expected |= {"references", "content-type", "content-transfer-encoding", "mime-version"}
    assert {key.lower() for key in sent} == expected


# --- the round trip: a customer's reply to what we sent joins its conversation ----------


def test_customer_reply_to_our_mail_carries_the_thread() -> None:
    ours = reread(reply())
    answer = (
        f"From: J. Mueller <j.mueller@kunde-gmbh.de>\r\n"
        f"To: {ours['Reply-To']}\r\n"
        f"Subject: AW: {ours['Subject']}\r\n"
        f"Message-ID: <answer@kunde-gmbh.de>\r\n"
        f"In-Reply-To: {ours['Message-ID']}\r\n"
        f"References: {ours['References']} {ours['Message-ID']}\r\n"
        f"\r\nDanke!\r\n"
    ).encode()
    parsed = parse_email(
        answer, max_body_bytes=1000, max_attachment_bytes=0, mailbox_address="support@example.com"
    )
    assert parsed.thread_refs[0] == "1796112838.123.456@mail.example.com"
    assert parsed.thread_token is not None and read_token(parsed.thread_token, SECRET) == 4711
    assert parsed.subject is not None
    assert reply(replace(OUT, subject=parsed.subject))["Subject"] == str(ours["Subject"])
