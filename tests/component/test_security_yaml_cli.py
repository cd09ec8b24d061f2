"""`contact-center check-config` on hostile YAML (issue 13, item 11): one line, exit 1, fast.

Real subprocesses, as in test_cli.py (whose runner also asserts that no traceback leaked).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr_flows import safe_yaml
from tests.component.test_cli import Cli, parallel
from tests.unit.test_security_yaml import RECURSIVE, billion_laughs

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config.yaml"
OVERSIZED = "# padding\n" * (safe_yaml.MAX_BYTES // 10 + 1)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp("yaml-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    env.update(CC_DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/crm.db")
    yield Cli(env, tmp)


def config_with_flow(tmp: Path, name: str, flow: str) -> Path:
    """The shipped config reading its flows from a folder holding `flow` as main.yaml."""
    flows = tmp / f"flows-{name}"
    flows.mkdir()
    (flows / "main.yaml").write_text(flow, encoding="utf-8")
    config = tmp / f"{name}.yaml"
    config.write_text(
        CONFIG.read_text(encoding="utf-8").replace("flows_dir: ivr_flows", f"flows_dir: {flows}"),
        encoding="utf-8",
    )
    return config


def test_check_config_refuses_hostile_config_files(cli: Cli) -> None:
    files = {"recursive": RECURSIVE, "bomb": billion_laughs(), "oversized": OVERSIZED}
    for name, text in files.items():
        (cli.tmp / f"{name}.yaml").write_text(text, encoding="utf-8")
    started = time.perf_counter()
    recursive, bomb, oversized = parallel(
        *(lambda n=n: cli("check-config", "-c", str(cli.tmp / f"{n}.yaml")) for n in files)
    )
    # Three interpreters start side by side on a busy machine; the bomb alone took > 60 s.
    assert time.perf_counter() - started < 30
    for result in (recursive, bomb, oversized):
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 2, result.stderr
        assert result.stderr.startswith("error: ")
    path = cli.tmp / "recursive.yaml"
    assert f"{path}: line 4, column 5: invalid YAML: alias *q refers to a value" in (
        recursive.stderr
    )
    assert "values once aliases are expanded" in bomb.stderr
    assert f"{cli.tmp / 'bomb.yaml'}: line " in bomb.stderr
    assert "refused: the file is larger than 1024 KiB" in oversized.stderr


def test_check_config_refuses_hostile_flow_files(cli: Cli) -> None:
    flows = {
        "flow-recursive": "start: a\nsteps: &s\n  a: {type: hangup, again: *s}\n",
        "flow-bomb": billion_laughs(),
        "flow-oversized": OVERSIZED,
    }
    configs = [config_with_flow(cli.tmp, name, text) for name, text in flows.items()]
    recursive, bomb, oversized = parallel(
        *(lambda c=c: cli("check-config", "-c", str(c)) for c in configs)
    )
    for result in (recursive, bomb, oversized):
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert "invalid IVR flow:" in result.stderr
    assert "flow main: invalid YAML at line 3, column 28: alias *s refers" in recursive.stderr
    assert "flow main: invalid YAML at line " in bomb.stderr
    assert "values once aliases are expanded" in bomb.stderr
    assert "flow main: refused " in oversized.stderr
    assert "the file is larger than 1024 KiB" in oversized.stderr
