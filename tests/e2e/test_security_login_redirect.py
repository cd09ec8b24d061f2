"""The login page never sends the browser to another site, whatever `?next=` says."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.conftest import DEMO_PASSWORDS, RunningDaemon

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("asked", "lands_on"),
    [
        ("/\\evil.example/", "/desktop"),
        ("/\t/evil.example/", "/desktop"),
        ("//evil.example/", "/desktop"),
        ("/desktop?from=login", "/desktop?from=login"),
    ],
)
def test_login_goes_to_a_page_of_this_site_only(
    browser: Any, daemon: RunningDaemon, asked: str, lands_on: str
) -> None:
    page = browser.new_page()
    page.goto(f"{daemon.url}/login?next={quote(asked, safe='')}")
    page.fill("#username", "agent")
    page.fill("#password", DEMO_PASSWORDS["agent"])
    page.click("#login-button")
    page.wait_for_url(lambda url: not url.endswith(quote(asked, safe="")), timeout=10_000)
    page.wait_for_load_state()
    assert page.url == daemon.url + lands_on
    page.close()
