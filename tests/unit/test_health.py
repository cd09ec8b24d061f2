"""Component health: state changes are logged once, the last error is kept."""

from __future__ import annotations

import logging

import pytest

from contact_center.health import HealthRegistry


def test_loss_and_recovery_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    health = HealthRegistry()
    health.set("ami", "up")
    with caplog.at_level(logging.INFO, logger="contact_center.health"):
        for _ in range(3):
            health.set("ami", "down", error="connection refused")
        for _ in range(3):
            health.set("ami", "up")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["ami is down: connection refused", "ami recovered"]
    status = health.get("ami")
    assert status is not None and status.last_error == "connection refused"


def test_healthy_ignores_disabled() -> None:
    health = HealthRegistry()
    health.set("email", "disabled")
    health.set("database", "up")
    assert health.healthy()
    health.set("database", "down", error="gone")
    assert not health.healthy()
