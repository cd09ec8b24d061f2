"""Shared test set-up: integration servers, and CC_REQUIRE_INTEGRATION.

A test that needs a real server which is absent calls `require_server(reason)`:
it is skipped with that reason, unless CC_REQUIRE_INTEGRATION=1 (set by .ci/run),
where the absence is a failure.
"""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get(
    "CC_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def integration_required() -> bool:
    """True when missing integration servers must fail the run instead of skipping."""
    return os.environ.get("CC_REQUIRE_INTEGRATION") == "1"


def require_server(reason: str) -> None:
    """Skip (or fail under CC_REQUIRE_INTEGRATION=1) because a server is missing."""
    if integration_required():
        pytest.fail(f"integration server required but unavailable: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def postgres_available() -> bool:
    """True when the test PostgreSQL answers on its port."""
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL)
    return port_open(url.host or "127.0.0.1", url.port or 5432)
