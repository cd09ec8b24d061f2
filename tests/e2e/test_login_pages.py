"""The login page and the two main pages in a real headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningDaemon, login, screenshot

pytestmark = pytest.mark.e2e


def test_a_page_needs_a_login_and_a_wrong_password_says_so(
    browser: Any, daemon: RunningDaemon
) -> None:
    page = browser.new_page()
    page.goto(daemon.url + "/desktop")
    page.wait_for_url("**/login?next=/desktop")
    page.fill("#username", "agent")
    page.fill("#password", "not-the-password")
    page.click("#login-button")
    page.wait_for_selector("#login-error:has-text('wrong username or password')")
    page.fill("#password", "agent-demo-pass")
    page.click("#login-button")
    page.wait_for_url("**/desktop")
    page.close()


def test_agent_desktop_connects_and_shows_the_agent(browser: Any, daemon: RunningDaemon) -> None:
    page = login(browser, daemon, "agent")
    page.wait_for_selector("#connection.up")
    assert page.inner_text("#agent-name") == "Alex Agent"
    options = page.eval_on_selector_all("#status-select option", "os => os.map(o => o.value)")
    assert "ready" in options
    assert "not_ready:lunch" in options
    page.fill("#search-q", "a")
    page.click("#search-form button")
    page.wait_for_selector("#search-results tr")
    screenshot(page, "desktop-idle")
    page.context.close()


def test_supervisor_gets_the_wallboard_and_an_agent_does_not(
    browser: Any, daemon: RunningDaemon
) -> None:
    page = login(browser, daemon, "supervisor")
    page.wait_for_selector("#connection.up")
    screenshot(page, "wallboard-idle")
    page.context.close()
    agent = login(browser, daemon, "agent")
    response = agent.goto(daemon.url + "/wallboard")
    assert response is not None
    assert response.status == 403
    agent.context.close()
