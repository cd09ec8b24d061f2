"""A visitor chats through the widget on the demo page and an agent answers in the
desktop, both in headless Chromium, against the real daemon on its shipped config."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningDaemon, login, screenshot

pytestmark = pytest.mark.e2e


def test_a_visitor_chats_with_an_agent(browser: Any, daemon: RunningDaemon) -> None:
    from playwright.sync_api import expect

    desk = login(browser, daemon, "agent")
    desk.wait_for_selector("#connection.up")
    desk.select_option("#status-select", "ready")
    desk.wait_for_selector("#activity[data-activity='idle']")

    site = browser.new_context(viewport={"width": 1000, "height": 800}).new_page()
    site.goto(daemon.url + "/chat/demo")
    site.get_by_role("button", name="Chat with us").click()
    site.get_by_label("Your name").fill("Ann Visitor")
    site.get_by_label("Email (optional)").fill("ann.visitor@example.com")
    site.get_by_label("Topic").select_option("support")
    site.get_by_role("button", name="Start chat").click()
    site.get_by_label("Your message").fill("Hello <script>alert(1)</script>, my router blinks")
    site.get_by_role("button", name="Send").click()

    # The offer, with who is writing, reaches the desktop; accept it.
    desk.wait_for_selector(".offer:has-text('chat')")
    assert "Ann Visitor" in desk.inner_text(".offer .offer-from")
    desk.click(".offer .accept")
    desk.wait_for_selector("#contact-state[data-state='talking']")
    expect(site.get_by_text("joined the chat")).to_be_visible()

    # The visitor's message is on the desktop as text, never as markup.
    desk.wait_for_selector("#messages li.message.in:has-text('my router blinks')")
    assert "<script>alert(1)</script>" in desk.inner_text("#messages li.message.in .body")
    assert desk.locator("#messages script").count() == 0

    # A canned reply goes into the composer, to be edited.
    desk.select_option("#canned-replies", label="Greeting")
    assert "thank you for contacting us" in desk.input_value("#reply-body")
    desk.fill("#reply-body", "Please unplug it for ten seconds.")
    desk.click("#send-reply")
    desk.wait_for_selector(
        "#messages li.message.out [data-status='delivered'], "
        "#messages li.message.out [data-status='sent']"
    )
    expect(site.locator(".cc-from-agent .cc-msg-text")).to_have_text(
        "Please unplug it for ten seconds."
    )
    # The visitor writes again: it appears on the desktop without a reload.
    site.get_by_label("Your message").fill("It works now, thanks!")
    site.get_by_role("button", name="Send").click()
    desk.wait_for_selector("#messages li.message.in:has-text('It works now')")
    screenshot(desk, "desktop-chat-conversation")
    screenshot(site, "webchat-with-agent")

    # The visitor ends with five stars: the agent's contact goes to wrap-up.
    site.get_by_role("button", name="End chat").click()
    site.locator("label[for=cc-star-5]").click()
    site.get_by_role("button", name="End chat").click()
    expect(site.get_by_text("Thank you! The chat has ended.")).to_be_visible()
    desk.wait_for_selector("#wrap-up-card:not(.hidden)")
    desk.select_option("#disposition", "resolved")
    desk.fill("#wrap-up-notes", "Router restarted.")
    desk.click("#save-wrap-up")
    desk.wait_for_selector("#wrap-up-card.hidden", state="attached")
    desk.context.close()
    site.context.close()
