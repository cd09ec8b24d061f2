"""Auto-replies, bounces and list mail recognised by their headers (RFC 3834, 3464)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.email.auto_reply import automatic_reason
from adapters.email.parse import parse_email

FIXTURES = Path(__file__).parent.parent / "fixtures" / "email"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("vacation_auto_submitted.eml", "auto-reply (Auto-Submitted: auto-replied)"),
        ("vacation_x_autoreply.eml", "auto-reply (X-Autoreply: yes)"),
        ("autoresponder_precedence.eml", "auto-reply (Precedence: auto_reply)"),
        ("newsletter_list.eml", "mailing list (List-Id: Shop newsletter <news.shop.example>)"),
        ("bounce_dsn.eml", "bounce (delivery-status report)"),
        ("bounce_mailer_daemon.eml", "bounce (From: MAILER-DAEMON)"),
        ("bounce_postmaster.eml", "bounce (From: postmaster)"),
        ("gmail_alternative.eml", None),
        ("outlook_html_only.eml", None),
        ("reply_with_headers.eml", None),
        ("reply_token_only.eml", None),
    ],
)
def test_fixtures(name: str, reason: str | None) -> None:
    parsed = parse_email(
        (FIXTURES / name).read_bytes(),
        max_body_bytes=10_000,
        max_attachment_bytes=10_000,
        mailbox_address="support@example.com",
    )
    assert parsed.automatic == reason


def test_bounce_body_is_the_notice_not_the_quoted_original() -> None:
    parsed = parse_email(
        (FIXTURES / "bounce_dsn.eml").read_bytes(),
        max_body_bytes=10_000,
        max_attachment_bytes=10_000,
        mailbox_address="support@example.com",
    )
    assert "could not\nbe delivered" in parsed.body
    assert "We have shipped your order." not in parsed.body
    assert [part.content_type for part in parsed.attachments] == [
        "message/delivery-status",
        "message/rfc822",
    ]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"auto-submitted": "auto-generated"}, "auto-reply (Auto-Submitted: auto-generated)"),
        (
            {"auto-submitted": "Auto-Replied; owner-email=x@y"},
            "auto-reply (Auto-Submitted: Auto-Replied; owner-email=x@y)",
        ),
        ({"auto-submitted": "no"}, None),
        ({"auto-submitted": " No "}, None),
        ({"x-autorespond": "Vacation"}, "auto-reply (X-Autorespond: Vacation)"),
        ({"x-autoreply": "no"}, None),
        ({"precedence": "bulk"}, "bulk mail (Precedence: bulk)"),
        ({"precedence": "JUNK"}, "bulk mail (Precedence: JUNK)"),
        ({"precedence": "list"}, "bulk mail (Precedence: list)"),
        ({"precedence": "first-class"}, None),
        ({"x-auto-response-suppress": "All"}, None),  # Outlook puts it on ordinary mail
        ({"x-auto-response-suppress": "DR, RN, NRN, OOF, AutoReply"}, None),
        (
            {"content-type": 'multipart/report; report-type="delivery-status"; boundary=x'},
            "bounce (delivery-status report)",
        ),
        (
            {"content-type": "Multipart/Report; report-type=disposition-notification"},
            "read receipt (disposition-notification report)",
        ),
        ({"content-type": "multipart/report; boundary=x"}, "report (multipart/report)"),
        ({"content-type": "multipart/mixed; report-type=delivery-status"}, None),
        (
            {"from": "Mail Delivery Subsystem <MAILER-DAEMON@mx.example>"},
            "bounce (From: MAILER-DAEMON)",
        ),
        ({"from": "mailer-daemon-fan@example.org"}, None),
        ({"x-failed-recipients": "gone@example.org"}, "bounce (X-Failed-Recipients)"),
        ({"return-path": "<>"}, "automatic (Return-Path: <>)"),
        ({"return-path": "<anna@example.org>"}, None),
        ({"from": "postmaster@corp.example", "subject": "Question about your invoice"}, None),
        (
            {
                "from": "postmaster@corp.example",
                "subject": "Delivery Status Notification (Failure)",
            },
            "bounce (From: postmaster)",
        ),
        ({"from": "postmaster@corp.example", "subject": "系统退信"}, "bounce (From: postmaster)"),
        (
            {"list-unsubscribe": "<mailto:u@list.example>"},
            "mailing list (List-Unsubscribe: <mailto:u@list.example>)",
        ),
        ({}, None),
    ],
)
def test_headers(headers: dict[str, str], reason: str | None) -> None:
    assert automatic_reason(headers) == reason


def test_strongest_signal_wins_and_long_values_are_cut() -> None:
    headers = {"list-id": "<l.example>", "precedence": "bulk", "auto-submitted": "auto-replied"}
    assert automatic_reason(headers) == "auto-reply (Auto-Submitted: auto-replied)"
    reason = automatic_reason({"auto-submitted": "auto-generated " + "x" * 500})
    assert reason is not None and len(reason) < 100 and reason.endswith("…)")


def test_only_the_null_return_path_counts() -> None:
    assert automatic_reason({"return-path": " < > "}) == "automatic (Return-Path: <>)"
    assert automatic_reason({"return-path": ""}) is None  # malformed, but no bounce sign
