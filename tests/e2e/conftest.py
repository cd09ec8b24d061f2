"""End-to-end fixtures: the real daemon process, and headless Chromium driven by Playwright.

Chromium is Debian's (`/usr/bin/chromium`, or `$CC_CHROMIUM`); without it the tests are
skipped, or fail under CC_REQUIRE_INTEGRATION=1. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_server

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
DEMO_PASSWORDS = {
    "admin": "admin-demo-pass",
    "supervisor": "supervisor-demo-pass",
    "agent": "agent-demo-pass",
}


def chromium_path() -> str | None:
    """The Chromium binary to drive, if any."""
    return os.environ.get("CC_CHROMIUM") or shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningDaemon:
    """A daemon process on loopback."""

    url: str
    log: Path
    env: dict[str, str]

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a CLI command against the same database."""
        return subprocess.run(
            [sys.executable, "-m", "contact_center.cli", *args],
            cwd=REPO,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    """`contact-center run` on a fresh SQLite store seeded with the demo data."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        CC_WEB_PORT=str(port),
        CC_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/e2e.db",
        CC_PBX="simulated",
        PYTHONUNBUFFERED="1",
    )
    running = RunningDaemon(f"http://127.0.0.1:{port}", tmp_path / "daemon.log", env)
    seeded = running.cli("db", "seed-demo", "-c", str(REPO / "config.yaml"))
    assert seeded.returncode == 0, seeded.stderr
    with running.log.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "contact_center.cli", "run", "-c", str(REPO / "config.yaml")],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(running.url + "/healthz", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(running.log.read_text()) from None
                time.sleep(0.1)
        else:
            raise AssertionError("daemon did not start:\n" + running.log.read_text())
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium for one test.

    Per test, not per session: Playwright's sync API runs its own event loop, which must
    be gone before the next asyncio test starts its loop in this thread.
    """
    executable = chromium_path()
    if executable is None:
        require_server("Chromium not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_server("playwright not installed (pip install playwright)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield instance
        finally:
            instance.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(browser: Any, daemon: RunningDaemon, username: str) -> Any:
    """A new browser context logged in through the login page; its page."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(daemon.url + "/login")
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORDS.get(username, "agent-demo-pass"))
    page.click("#login-button")
    page.wait_for_url("**/desktop" if username == "agent" else "**/wallboard")
    return page
