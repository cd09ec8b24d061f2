"""The daemon as a user runs it: a real process, real HTTP, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "contact_center.cli", *args]


def wait_for_banner(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "Contact center is up" in line:
            return line
        if not line and proc.poll() is not None:
            break
    proc.kill()
    _out, err = proc.communicate(timeout=5)
    raise AssertionError(f"daemon did not start:\n{err}")


@pytest.fixture
def daemon_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], int]]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        CC_WEB_PORT=str(port),
        CC_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/daemon.db",
        CC_PBX="simulated",
        PYTHONUNBUFFERED="1",
    )
    yield env, port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_then_stops_cleanly_on_signal(
    daemon_env: tuple[dict[str, str], int], sig: signal.Signals
) -> None:
    env, port = daemon_env
    proc = subprocess.Popen(
        cli("run", "-c", str(REPO / "config.yaml")),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = wait_for_banner(proc)
        assert f"http://127.0.0.1:{port}" in banner
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert json.load(resp) == {"status": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as resp:
            status = json.load(resp)
        assert status["components"]["database"]["state"] == "up"
        assert "daemon.db" in status["components"]["database"]["detail"]
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in err


def test_run_with_invalid_config_exits_1_and_explains(
    daemon_env: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, _port = daemon_env
    bad = tmp_path / "bad.yaml"
    bad.write_text("queues:\n  - name: q\n    channels: [voice]\n    sla_seconds: abc\n")
    result = subprocess.run(
        cli("run", "-c", str(bad)), cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert 'queues[0].sla_seconds: expected a positive integer, got "abc"' in result.stderr


def test_run_names_the_fastagi_port_when_it_is_in_use(
    daemon_env: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, _port = daemon_env
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        agi_port = blocker.getsockname()[1]
        config = tmp_path / "asterisk.yaml"
        config.write_text(
            (REPO / "config.yaml").read_text().replace("port: 4573", f"port: {agi_port}")
        )
        result = subprocess.run(
            cli("run", "-c", str(config)),
            cwd=REPO,
            env={**env, "CC_PBX": "asterisk"},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"FastAGI cannot listen on 127.0.0.1:{agi_port} (pbx.agi)" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_reports_port_in_use(daemon_env: tuple[dict[str, str], int]) -> None:
    env, port = daemon_env
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = subprocess.run(
            cli("run", "-c", str(REPO / "config.yaml")),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
