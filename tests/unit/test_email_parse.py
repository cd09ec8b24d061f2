"""Email parsing against a corpus of real-shaped raw mail (tests/fixtures/email/*.eml)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.email.charsets import codec_name, decode_text, decode_words, repair_surrogates
from adapters.email.conversation_threads import read_token
from adapters.email.html_text import _last_resort, html_to_text
from adapters.email.mime_walk import walk_message
from adapters.email.parse import (
    TRUNCATED_MARKER,
    EmailWithoutSender,
    ParsedEmail,
    base_address,
    message_ids,
    normal_id,
    parse_email,
)
from adapters.messaging.model import Attachment

FIXTURES = Path(__file__).parent.parent / "fixtures" / "email"
SECRET = b"fixture-secret-0123456789"  # the fixtures' tokens were made with it
OUR_ID = "173312.2001.8812734412@mail.example.com"
MAILBOX = "support@example.com"
# Anything a display or a database would choke on.
JUNK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def parse(raw: bytes, max_body: int = 64_000, max_attachment: int = 50_000) -> ParsedEmail:
    return parse_email(
        raw, max_body_bytes=max_body, max_attachment_bytes=max_attachment, mailbox_address=MAILBOX
    )


def fixture(name: str, **limits: int) -> ParsedEmail:
    return parse((FIXTURES / name).read_bytes(), **limits)


def assert_clean(parsed: ParsedEmail) -> None:
    """Nothing a database or a browser would refuse, whatever the input was."""
    for text in (parsed.sender, parsed.sender_name or "", parsed.subject or "", parsed.recipient):
        assert not JUNK.search(text) and "\n" not in text and "\t" not in text
    assert not JUNK.search(parsed.body)
    parsed.body.encode("utf-8")  # no lone surrogates
    assert parsed.provider_id and " " not in parsed.provider_id
    for part in parsed.attachments:
        part.filename.encode("utf-8")
        assert not JUNK.search(part.filename)
        assert (part.content is None) == (part.dropped is not None)


# --- bodies ------------------------------------------------------------------------


def test_outlook_html_only_is_reduced_to_text() -> None:
    parsed = fixture("outlook_html_only.eml")
    assert parsed.body.startswith("Sehr geehrte Damen und Herren,\n\ndie Rechnung zur")
    assert "Rechnungsportal [https://portal.kunde-gmbh.de/rechnungen]" in parsed.body
    assert "Einkauf & Logistik" in parsed.body
    # Labelled iso-8859-1 but written in cp1252: the quotes are real quotes.
    assert "\u201cIhre Rechnung\u201d" in parsed.body
    for gone in ("<", "MsoNormal", "document.location", "shapedefaults", "&nbsp;"):
        assert gone not in parsed.body
    assert parsed.sender == "j.mueller@kunde-gmbh.de"
    assert parsed.sender_name == "Müller, Jürgen"
    assert parsed.subject == "Rechnung für Bestellung 4471"
    assert parsed.provider_id == (
        "AM6PR05MB5618E4F3B2C1A9D8E7F6B5A4C3D2E1F0A@AM6PR05MB5618.eurprd05.prod.outlook.com"
    )
    assert parsed.date == datetime(2026, 12, 1, 8, 13, 58, tzinfo=UTC).timestamp()


def test_gmail_alternative_prefers_the_plain_text() -> None:
    parsed = fixture("gmail_alternative.eml")
    assert parsed.body == (
        "Hi,\n\nmy parcel (order #88213) still hasn't arrived \U0001f61f. Tracking says"
        " \u201cin transit\u201d since Monday.\n\nThanks,\nAnna"
    )
    assert parsed.attachments == ()
    assert parsed.automatic is None


def test_alternative_with_empty_plain_part_takes_the_html() -> None:
    raw = (
        b"From: a@example.org\r\nMessage-ID: <e@x>\r\nContent-Type: multipart/alternative;"
        b' boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n \r\n'
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>Only <b>here</b></p>\r\n--b--\r\n"
    )
    assert parse(raw).body == "Only here"


def test_mixed_body_parts_follow_each_other() -> None:
    raw = (
        b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nfirst half\r\n"
        b"--b\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlh\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>second half</p>\r\n--b--\r\n"
    )
    parsed = parse(raw)
    assert parsed.body == "first half\n\nsecond half"
    assert [(a.filename, a.content) for a in parsed.attachments] == [
        ("attachment-1.gif", b"GIF89a")
    ]


@pytest.mark.parametrize(
    ("name", "sender_name", "subject", "body_part"),
    [
        ("latin1_plain.eml", "Claire Duböis", "Commande non reçue", "pas reçu ma commande passée"),
        # Declared gb2312, holds the GBK-only 镕: read as gb18030, the superset.
        ("gb2312_foxmail.eml", "朱镕基", "关于订单 #88231 的发票", "联系人\uff1a朱镕基"),
        # The subject was sent as raw GBK bytes, not encoded: the body's charset reads it.
        ("gbk_8bit.eml", "王小明", "退款申请", "订单号 99120"),
        ("big5_outlook.eml", "陳大文", "請問退貨流程", "請問退貨流程是怎樣的\uff1f"),
        ("missing_content_type.eml", None, "no MIME headers at all", "word: Straße."),
        ("bad_charset_name.eml", "Legacy", "charset nobody knows", "Café crème, s'il vous"),
        ("undecodable_body.eml", "Bad Bytes", "bytes that are not UTF-8", "naïve text"),
    ],
)
def test_any_charset_is_read(
    name: str, sender_name: str | None, subject: str, body_part: str
) -> None:
    parsed = fixture(name)
    assert parsed.sender_name == sender_name
    assert parsed.subject == subject
    assert body_part in parsed.body
    assert_clean(parsed)


def test_undecodable_bytes_become_replacement_characters() -> None:
    assert (
        fixture("undecodable_body.eml").body
        == "naïve text, then junk: \ufffd\ufffd\ufffd and the end."
    )


def test_broken_header_block_is_tolerated() -> None:
    parsed = fixture("broken_headers.eml")
    assert parsed.provider_id == "broken.1@example.org"
    assert parsed.sender == "broken@example.org"
    # Adjacent encoded words join without their blank (RFC 2047 6.2); an unknown charset
    # is read as Latin-1; the raw UTF-8 bytes are read as UTF-8.
    assert parsed.subject == "Hello worldcafé raw-é"
    assert parsed.date is None  # "not a date at all"
    # A line without a colon ends the header block: what follows is body, as in any MUA.
    assert "X-After: lost in the body" in parsed.body
    assert "Body text after a broken header block." in parsed.body
    assert_clean(parsed)


def test_body_is_truncated_within_the_limit_with_a_marker() -> None:
    text = "汉字" * 5000  # 3 bytes each in UTF-8: a cut must land between characters
    raw = b"From: a@example.org\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text.encode()
    parsed = parse(raw, max_body=1000)
    assert parsed.body_truncated
    assert parsed.body.endswith(TRUNCATED_MARKER)
    assert len(parsed.body.encode()) <= 1000
    assert parsed.body.removesuffix(TRUNCATED_MARKER).strip("汉字") == ""
    small = parse(raw, max_body=len(text.encode()))
    assert not small.body_truncated and small.body == text


def test_limits_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError):
        parse(b"", max_body=5)
    with pytest.raises(ValueError):
        parse_email(b"", max_body_bytes=100, max_attachment_bytes=1, mailbox_address="nobody")


# --- ids, addresses, threading -------------------------------------------------------


def test_message_without_id_gets_a_stable_hash_id() -> None:
    raw = (FIXTURES / "no_message_id.eml").read_bytes()
    first, again = parse(raw), parse(raw)
    assert first.provider_id == again.provider_id
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", first.provider_id)
    assert parse(raw + b"x").provider_id != first.provider_id


def test_reply_with_headers_carries_its_thread() -> None:
    parsed = fixture("reply_with_headers.eml")
    outlook_first = (
        "AM6PR05MB5618E4F3B2C1A9D8E7F6B5A4C3D2E1F0A@AM6PR05MB5618.eurprd05.prod.outlook.com"
    )
    assert parsed.in_reply_to == (OUR_ID,)
    assert parsed.references == (outlook_first, OUR_ID)
    assert parsed.thread_refs == (OUR_ID, outlook_first)
    assert parsed.thread_token is not None
    assert read_token(parsed.thread_token, SECRET) == 4711
    assert parsed.recipient == MAILBOX  # the +tag is not part of our mailbox's address


@pytest.mark.parametrize("name", ["reply_token_only.eml", "reply_token_in_subject.eml"])
def test_reply_that_dropped_its_headers_keeps_the_token(name: str) -> None:
    parsed = fixture(name)
    assert parsed.in_reply_to == () and parsed.references == ()
    assert parsed.thread_token is not None
    assert read_token(parsed.thread_token, SECRET) == 4711


def test_forged_token_is_found_but_refused() -> None:
    parsed = fixture("forged_token.eml")
    assert parsed.thread_token == "ethcb4g7227"
    assert read_token(parsed.thread_token, SECRET) is None


def test_tokens_only_count_in_our_own_mailbox() -> None:
    raw = b"From: a@example.org\r\nTo: other+cethcb4g7226@elsewhere.example\r\n\r\nhi\r\n"
    assert parse(raw).thread_token is None


def test_message_ids_are_normalised() -> None:
    assert message_ids(" <a@b>\r\n\t<c@d> (comment) <a@b>") == ("a@b", "c@d")
    assert message_ids("bare-id@host") == ("bare-id@host",)
    assert message_ids("two words") == ()
    assert message_ids(None) == ()
    long_id = "x" * 300 + "@host"
    assert normal_id(long_id).startswith("sha256:")
    assert normal_id(long_id) == normal_id(f"<{long_id}>")  # a reply's reference matches


def test_base_address_drops_the_tag_and_case() -> None:
    assert base_address(" Support+cABC@Example.COM ") == "support@example.com"
    assert base_address("MAILER-DAEMON") == "mailer-daemon"


def test_empty_subject_is_no_subject() -> None:
    assert parse(b"From: a@example.org\r\nSubject:   \r\n\r\nbody\r\n").subject is None


def test_sender_falls_back_to_sender_header() -> None:
    raw = b"Sender: Relay Bot <Bot@Relay.example>\r\nSubject: x\r\n\r\nbody\r\n"
    parsed = parse(raw)
    assert (parsed.sender, parsed.sender_name) == ("bot@relay.example", "Relay Bot")


def test_mail_from_our_own_mailbox_is_not_routed() -> None:
    raw = b"From: Example Support <support@example.com>\r\nSubject: x\r\n\r\nloop\r\n"
    assert parse(raw).automatic == "loop (sent from our own mailbox)"


# --- to_inbound ------------------------------------------------------------------------


def test_to_inbound_has_the_model_fields() -> None:
    parsed = fixture("reply_with_headers.eml")
    inbound = parsed.to_inbound(1_700_000_000.0)
    assert inbound.channel == "email"
    assert inbound.provider_id == parsed.provider_id
    assert inbound.sender == "j.mueller@kunde-gmbh.de"
    assert inbound.sender_name == "Müller, Jürgen"
    assert inbound.subject == parsed.subject
    assert inbound.thread_refs == parsed.thread_refs
    assert inbound.thread_token == parsed.thread_token
    assert inbound.received_at == 1_700_000_000.0
    assert inbound.recipient == MAILBOX


def test_to_inbound_takes_the_kept_attachments() -> None:
    parsed = fixture("attachments.eml")
    listed = parsed.to_inbound(0.0).attachments
    assert all(item.ref is None for item in listed)
    assert [item.filename for item in listed] == [part.filename for part in parsed.attachments]
    kept = (Attachment("a.pdf", "application/pdf", 3, ref="x/1-a.pdf"),)
    assert parsed.to_inbound(0.0, attachments=kept).attachments == kept


def test_to_inbound_refuses_a_mail_without_sender() -> None:
    parsed = parse(b"Subject: from nobody\r\n\r\nbody\r\n")
    assert parsed.sender == ""
    with pytest.raises(EmailWithoutSender):
        parsed.to_inbound(0.0)


# --- charsets --------------------------------------------------------------------------


def test_charset_fallbacks() -> None:
    assert codec_name("GB2312") == "gb2312"
    assert codec_name(' "UTF8" ') == "utf-8"
    assert codec_name("x-unknown") is None
    assert codec_name("zlib") is None  # a bytes codec is no charset
    assert codec_name("a" * 100) is None
    assert decode_text("镕".encode("gbk"), "gb2312") == "镕"
    assert decode_text("€".encode("cp950"), "big5") == "€"
    assert decode_text(b"\x93q\x94", "iso-8859-1") == "\u201cq\u201d"
    assert decode_text("ü".encode(), "us-ascii") == "ü"
    assert decode_text(b"caf\xe9", "unknown-8bit") == "café"
    mostly_utf8 = ("汉字" * 10).encode() + b"\xff"
    assert decode_text(mostly_utf8, None) == "汉字" * 10 + "\ufffd"
    assert decode_text(b"\xff\xfe", "utf-8") == "\ufffd\ufffd"


def test_header_words_and_raw_bytes() -> None:
    assert decode_words("=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Wien", None) == "Grüße aus Wien"
    broken = "Broken =?utf-8?B?!!!notbase64?="  # base64 that cannot be decoded: kept as sent
    assert decode_words(broken, None) == broken
    assert decode_words("line\r\n break\x00here", None) == "line break here"
    raw_utf8 = "Grüße".encode().decode("ascii", "surrogateescape")
    assert repair_surrogates(raw_utf8, None) == "Grüße"
    assert repair_surrogates("odd \ud800 one", None) == "odd ? one"


# --- never crash -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.eml")))
def test_every_fixture_parses_clean(name: str) -> None:
    assert_clean(fixture(name))


def test_hostile_structures_are_bounded() -> None:
    deep = b"From: a@example.org\r\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(2000)
    )
    assert_clean(parse(deep))
    many = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + (
        b"--b\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n" * 3000
    )
    parsed = parse(many)
    assert parsed.body_truncated and len(parsed.attachments) < 600
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(20_000))
    assert_clean(parse(b"From: a@example.org\r\n" + headers + b"\r\nbody"))


_MAIL_PIECES = st.sampled_from(
    [
        b"From: ",
        b"To: ",
        b"Subject: ",
        b"Message-ID: <",
        b"Content-Type: multipart/mixed; boundary=b",
        b"Content-Type: text/html; charset=gb2312",
        b"Content-Transfer-Encoding: base64",
        b"Content-Disposition: attachment; filename*=utf-8''%E6%8A",
        b"=?utf-8?B?",
        b"=?gb2312?Q?=D6=EC?=",
        b"?=",
        b"<a@b>",
        b"\r\n",
        b"\r\n\r\n",
        b"--b\r\n",
        b"--b--",
        b"<p>",
        b"<script>",
        b"\xff\xfe\x00",
        b"\xd6\xec",
        b" ",
        b":",
        b";",
        b'"',
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash(raw: bytes) -> None:
    assert_clean(parse(raw, max_body=200, max_attachment=100))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_MAIL_PIECES | st.binary(max_size=8), max_size=80))
def test_mail_shaped_garbage_never_crashes(pieces: list[bytes]) -> None:
    assert_clean(parse(b"".join(pieces), max_body=200, max_attachment=100))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(FIXTURES.glob("*.eml"))),
    st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=4)), max_size=6),
)
def test_mutated_fixtures_never_crash(path: Path, edits: list[tuple[int, bytes]]) -> None:
    raw = bytearray(path.read_bytes())
    for position, data in edits:
        at = position % (len(raw) + 1)
        raw[at : at + len(data)] = data[::-1] if position % 2 else data
    assert_clean(parse(bytes(raw), max_body=500, max_attachment=1000))


# --- HTML to text ----------------------------------------------------------------------


def test_html_blocks_links_and_entities() -> None:
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<!--[if mso]>conditional<![endif]--><div style='display: none'>preheader</div>"
        "<h1>Order&nbsp;4471</h1><p>See <a href='https://x.example/a'>our portal</a>,"
        " <a href='https://y.example'>https://y.example</a>,"
        " <a href='mailto:help@x.example'>help@x.example</a> and"
        " <a href='javascript:steal()'>this</a>.</p>"
        "<ul><li>one</li><li>two</li></ul><table><tr><td>a</td><td>b</td></tr></table>"
        "<img src='cid:logo' alt='Logo'><script>alert(1)</script>&lt;tag&gt; &amp; done<br>end"
        "<p hidden>secret</p>\u200b\ufeff</body></html>"
    )
    assert html_to_text(html) == (
        "Order 4471\n\nSee our portal [https://x.example/a], https://y.example,"
        " help@x.example and this.\n\n- one\n- two\n\na b\n[Logo]<tag> & done\nend"
    )


def test_html_keeps_preformatted_text_and_survives_deep_nesting() -> None:
    assert html_to_text("<pre>a  b\n  c</pre>") == "a  b\n  c"
    deep = "<div>" * 20_000 + "deep" + "</div>" * 20_000
    assert html_to_text(deep) == "deep"
    assert html_to_text("https://example.com/just-a-link") == "https://example.com/just-a-link"
    assert html_to_text("") == ""


def test_html_last_resort_strips_tags_and_scripts() -> None:
    # Only used when html.parser itself gives up; it must still show no markup.
    assert _last_resort("<p>a &amp; b<script>x()</script></p><style>p{}</style>c") == "a & b c"


def test_html_budget_is_shared_by_all_parts() -> None:
    part = b"--b\r\nContent-Type: text/html\r\n\r\n" + b"<p>word</p>" * 10_000 + b"\r\n"
    raw = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    message = BytesParser(policy=policy.default).parsebytes(raw + part * 50 + b"--b--\r\n")
    walked = walk_message(message, max_attachment_bytes=0, max_body_bytes=1000)
    assert walked.truncated
    # 64 kB of HTML read in all (the budget's floor), not 50 parts of 110 kB each.
    assert 5_900 < walked.body.count("word") < 6_000  # 65 536 / len("<p>word</p>")
