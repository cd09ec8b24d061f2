"""Thread tokens (plus-address and subject) and reply subjects."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.email.conversation_threads import (
    MAC_DIGITS,
    find_token,
    plus_address,
    read_token,
    reply_subject,
    strip_reply_prefixes,
    tag_subject,
    thread_token,
)

SECRET = b"fixture-secret-0123456789"
OTHER_SECRET = b"another-secret-0123456789"


def test_token_of_the_fixtures() -> None:
    assert thread_token(4711, SECRET) == "ethcb4g7226"


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_token_round_trip(interaction_id: int) -> None:
    token = thread_token(interaction_id, SECRET)
    assert token == token.lower() and token.isalnum()
    assert len(token) <= MAC_DIGITS + 13
    assert read_token(token, SECRET) == interaction_id
    assert read_token(token.upper(), SECRET) == interaction_id  # MTAs fold case


def test_tokens_are_short() -> None:
    assert len(thread_token(1, SECRET)) == MAC_DIGITS + 1
    assert len(thread_token(999_999, SECRET)) == MAC_DIGITS + 4


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=20))
def test_forged_tokens_are_refused(interaction_id: int, position: int) -> None:
    token = thread_token(interaction_id, SECRET)
    at = position % len(token)
    changed = token[:at] + ("b" if token[at] != "b" else "c") + token[at + 1 :]
    assert read_token(changed, SECRET) is None


def test_token_of_another_secret_is_refused() -> None:
    assert read_token(thread_token(4711, OTHER_SECRET), SECRET) is None


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "short",
        "ethcb4g722",
        "ethcb4g7226x" * 3,
        "ethcb4g72!6",
        "a" + "ethcb4g7226",
        "ÉTHCB4G7226",
    ],
)
def test_malformed_tokens_are_refused(garbage: str) -> None:
    assert read_token(garbage, SECRET) is None


def test_weak_secrets_and_bad_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        thread_token(1, b"short")
    with pytest.raises(ValueError, match="secret"):
        read_token("ethcb4g7226", b"")
    for bad in (0, -5, 32**13):
        with pytest.raises(ValueError, match="out of range"):
            thread_token(bad, SECRET)


def test_plus_address() -> None:
    assert plus_address("support@example.com", "ethcb4g7226") == (
        "support+cethcb4g7226@example.com"
    )
    assert plus_address("support+inbox@example.com", "t0k") == "support+ct0k@example.com"
    with pytest.raises(ValueError):
        plus_address("not-an-address", "x")


def test_find_token_prefers_the_address_then_the_subject() -> None:
    to = ["Other <someone@example.org>", "Support <Support+cETHCB4G7226@Example.com>"]
    assert find_token(to, "Re: x [#etie4av2fgh]") == "ethcb4g7226"
    assert find_token(["support@example.com"], "RE: Your order [#ETie4av2fgh]") == "etie4av2fgh"
    assert find_token([], None) is None
    assert find_token(["support+tag@example.com"], "no token [#x] [#too-short]") is None
    assert find_token([], "[#" + "a" * 40 + "]") is None


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Your order", "Re: Your order"),
        ("Re: Your order", "Re: Your order"),
        ("Re: RE: Fwd: AW: 回复: Your order", "Re: Your order"),
        ("RE[2]: Re(3): SV: VS: WG: TR: RV: ENC: Odp: Your order", "Re: Your order"),
        ("回复\uff1a答复: 转发\uff1a你好", "Re: 你好"),  # full-width colons
        ("Re:Re:Re:", "Re:"),
        ("", "Re:"),
        (None, "Re:"),
        ("Re: Your order [#ethcb4g7226]", "Re: Your order [#ethcb4g7226]"),
        ("[#ethcb4g7226] RE: Your order", "Re: Your order [#ethcb4g7226]"),
        ("Re: a [#ethcb4g7226] b [#ethcb4g7226]", "Re: a b [#ethcb4g7226]"),
        ("Re: line\r\nBcc: evil@example.org", "Re: line Bcc: evil@example.org"),
        ("Regarding your order", "Re: Regarding your order"),
        ("Reply needed", "Re: Reply needed"),
        ("Fwd order status", "Re: Fwd order status"),
    ],
)
def test_reply_subject(subject: str | None, expected: str) -> None:
    assert reply_subject(subject) == expected


def test_reply_subject_with_a_token() -> None:
    assert reply_subject("AW: Rechnung", "ethcb4g7226") == "Re: Rechnung [#ethcb4g7226]"
    # The conversation's own token wins over one the customer's subject carried.
    assert reply_subject("Re: x [#etie4av2fgh]", "ethcb4g7226") == "Re: x [#ethcb4g7226]"
    assert reply_subject("", "ethcb4g7226") == "Re: [#ethcb4g7226]"


@given(st.text(max_size=80))
def test_reply_subject_never_stacks(subject: str) -> None:
    once = reply_subject(subject, "ethcb4g7226")
    assert reply_subject(once, "ethcb4g7226") == once
    assert once.startswith("Re:") and once.count("[#ethcb4g7226]") == 1
    assert "\n" not in once and "\r" not in once


def test_tag_and_strip() -> None:
    assert tag_subject("New question", "ethcb4g7226") == "New question [#ethcb4g7226]"
    assert tag_subject("  spaced\tout  ", None) == "spaced out"
    assert strip_reply_prefixes("Fwd: Re: hello") == "hello"
