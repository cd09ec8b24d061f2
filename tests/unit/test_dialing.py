"""What an agent may dial, transfer to, or use as a device (routing/dialing.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.dialing import MAX_DIAL_LENGTH, device_name, dial_string, transfer_target
from routing.router import RoutingError


@pytest.mark.parametrize(
    ("typed", "dialled"),
    [
        ("3000", "3000"),
        (" +44 20 7946 0018 ", "+442079460018"),
        ("(555) 010-0000", "5550100000"),
        ("*72#", "*72#"),
        ("555.0100", "5550100"),
    ],
)
def test_phone_keys_with_separators_become_a_clean_dial_string(typed: str, dialled: str) -> None:
    assert dial_string(typed) == dialled


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "++1",
        "1+2",
        "100&PJSIP/x",
        "100,tT",
        "${EXTEN}",
        "abc",
        "1\r\n2",
        "1\x002",
        "\uff11\uff12\uff13",
        "1" * (MAX_DIAL_LENGTH + 1),
    ],
)
def test_anything_else_is_refused_with_a_stable_id(typed: str) -> None:
    with pytest.raises(RoutingError) as caught:
        dial_string(typed)
    assert caught.value.error_id == "routing.bad_dial_string"


@given(st.text(max_size=60))
def test_a_dial_string_never_holds_more_than_phone_keys(text: str) -> None:
    try:
        cleaned = dial_string(text)
    except RoutingError:
        return
    assert set(cleaned) <= set("+0123456789*#") and 0 < len(cleaned) <= MAX_DIAL_LENGTH
    assert "+" not in cleaned[1:]


def test_a_configured_queue_is_a_target_by_name_only() -> None:
    assert transfer_target("billing", {"billing": object()}) == ("billing", True)
    assert transfer_target("3000", {"billing": object()}) == ("3000", False)
    with pytest.raises(RoutingError):
        transfer_target("billing\r\nAction: Hangup", {"billing": object()})


@pytest.mark.parametrize(
    "device", ["PJSIP/1001", "Local/100@cc-phones/n", "SIP/trunk-1", "IAX2/x:1"]
)
def test_ordinary_devices_pass(device: str) -> None:
    assert device_name(device) == device


@pytest.mark.parametrize(
    "device", ["PJSIP/1001,B", "PJSIP/1&PJSIP/2", "PJSIP/${X}", "PJSIP/1 2", "1001", "PJSIP/1\r\n"]
)
def test_devices_that_would_change_a_dial_or_chanspy_are_refused(device: str) -> None:
    with pytest.raises(RoutingError) as caught:
        device_name(device)
    assert caught.value.error_id == "routing.bad_device"
