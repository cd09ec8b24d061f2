"""A slice of a shift in headless Chromium: a call from the simulated PBX reaches the
agent with the right screen pop before answer; the agent answers, wraps up with notes,
the timeline shows it; the supervisor watches it live and sets the agent not ready; an
unknown caller is created from the pop."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningDaemon, login, screenshot

pytestmark = pytest.mark.e2e


def place_call(board: Any, caller: str, queue: str, inputs: str = "") -> None:
    board.fill("#sim-caller", caller)
    board.select_option("#sim-queue", queue)
    board.fill("#sim-inputs", inputs)
    board.click("#sim-call")


def test_a_call_from_ring_to_wrap_up(browser: Any, daemon: RunningDaemon) -> None:
    desk = login(browser, daemon, "agent")
    desk.wait_for_selector("#connection.up")
    desk.select_option("#status-select", "ready")
    desk.wait_for_selector("#activity[data-activity='idle']")
    board = login(browser, daemon, "supervisor")
    board.wait_for_selector("#connection.up")
    board.wait_for_selector("#simulator:not(.hidden)")
    board.wait_for_selector("tr[data-agent='agent'] td[data-field='status']:has-text('ready')")

    place_call(board, "020 7946 0018", "billing", "account=12345")

    # The pop is on screen while the phone rings, before anyone answers.
    desk.wait_for_selector(".offer")
    desk.wait_for_selector("#pop-name:has-text('Zoë Martin')")
    assert desk.inner_text("#pop-tier") == "gold"
    desk.wait_for_selector("#pop-timeline:has-text('Disputes a late fee')")
    assert "Late fee dispute" in desk.inner_text("#pop-requests")
    assert "account=12345" in desk.inner_text("#pop-ivr")
    assert "billing" in desk.inner_text("#pop-why")
    assert "null" not in desk.inner_text("#pop")
    board.wait_for_selector("tr[data-agent='agent'] td[data-field='activity']:has-text('offered')")
    screenshot(desk, "desktop-offer-with-screen-pop")

    desk.click(".offer .accept")
    desk.wait_for_selector("#contact-state[data-state='talking']")
    board.wait_for_selector(
        "tr[data-agent='agent'] td[data-field='activity']:has-text('on_contact')"
    )
    desk.click("#hold")
    desk.wait_for_selector("#contact-state[data-state='held']")
    desk.click("#unhold")
    desk.wait_for_selector("#contact-state[data-state='talking']")
    desk.click("#hangup")

    desk.wait_for_selector("#wrap-up-card:not(.hidden)")
    desk.select_option("#disposition", "resolved")
    desk.fill("#wrap-up-notes", "Waived the late fee as a goodwill gesture.")
    desk.click("#save-wrap-up")
    desk.wait_for_selector("#wrap-up-card.hidden", state="attached")
    desk.wait_for_selector("#pop-timeline tr:first-child:has-text('Waived the late fee')")
    board.wait_for_selector(
        "div.tile[data-queue='billing'] [data-field='service_level']:has-text('100%')"
    )
    screenshot(board, "wallboard-after-call")
    assert ":" in board.inner_text("tr[data-agent='agent'] td:nth-child(4)")
    assert int(board.inner_text("tr[data-agent='supervisor'] td:nth-child(4)").split(":")[0]) < 60

    # The supervisor takes the agent off the floor; the desktop follows.
    board.click("tr[data-agent='agent'] button.set-not-ready")
    board.wait_for_selector("tr[data-agent='agent'] td[data-field='status']:has-text('not_ready')")
    desk.wait_for_function(
        "document.querySelector('#status-select').value === 'not_ready:supervisor'"
    )
    screenshot(desk, "desktop-set-not-ready-by-supervisor")
    desk.context.close()
    board.context.close()


def test_unknown_caller_is_created_from_the_pop(browser: Any, daemon: RunningDaemon) -> None:
    desk = login(browser, daemon, "agent")
    desk.wait_for_selector("#connection.up")
    desk.select_option("#status-select", "ready")
    board = login(browser, daemon, "supervisor")
    board.wait_for_selector("#simulator:not(.hidden)")
    place_call(board, "+44 7700 900999", "support")
    desk.wait_for_selector("#pop-unknown")
    assert "+44 7700 900999" in desk.input_value("#new-customer-contact")
    desk.fill("#new-customer-name", "Nina New")
    desk.click("#create-customer button[type=submit]")
    desk.wait_for_selector("#pop-name:has-text('Nina New')")
    assert "+447700900999" in desk.inner_text("#pop-contacts")
    screenshot(desk, "desktop-unknown-caller-created")
    desk.context.close()

    # Through the IVR from the same card: the row says how the call left it (queued in
    # opening hours, voicemail outside them: the bundled flow keeps London's hours).
    board.select_option("#sim-queue", "")
    board.fill("#sim-caller", "+44 7700 900998")
    board.fill("#sim-inputs", "2")
    board.click("#sim-call")
    board.wait_for_selector("#sim-calls tr:has-text('IVR: ')")
    outcome = board.inner_text("#sim-calls tr:last-child td:nth-child(3)")
    assert outcome in ("IVR: queued", "IVR: voicemail"), outcome
    board.context.close()
