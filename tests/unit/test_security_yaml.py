"""Hostile YAML (issue 13, item 11): config.yaml and IVR flows are refused fast and clearly.

Recursive aliases, alias bombs ("billion laughs"), oversized files, deep nesting and values
Python cannot build must each give the loader's own error naming the file and the position,
within a second and a few megabytes, never a traceback or an endless walk.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from contact_center.config import load_config
from contact_center.errors import ConfigError
from ivr_flows import safe_yaml
from ivr_flows.loader import FlowError, load_flows

REPO = Path(__file__).resolve().parents[2]

RECURSIVE = "queues: &q\n  - name: a\n    channels: [voice]\n  - *q\n"
RECURSIVE_MAPPING = "web: &w\n  host: x\n  again: *w\n"


def billion_laughs(levels: int = 9) -> str:
    """The classic bomb: 10 ** levels strings from a file of a few hundred bytes."""
    lines = ['l0: &l0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return "a: " + "[" * depth + "]" * depth + "\n"


@pytest.fixture
def bounded() -> Iterator[Callable[[], None]]:
    """Check, after the test's load, that it took under a second and under 20 MB."""
    tracemalloc.start()
    started = time.perf_counter()

    def check() -> None:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        assert elapsed < 1.0, f"took {elapsed:.2f} s"
        assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"

    try:
        yield check
    finally:
        tracemalloc.stop()


def config_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value.problems


def flow_problems(directory: Path) -> list[str]:
    with pytest.raises(FlowError) as info:
        load_flows(directory, {"support"})
    return info.value.problems


def test_shipped_files_use_no_alias_and_still_load() -> None:
    load_config(REPO / "config.yaml", env={})
    assert set(load_flows(REPO / "ivr_flows", None)) >= {"main", "sales"}


@pytest.mark.parametrize("text", [RECURSIVE, RECURSIVE_MAPPING], ids=["list", "mapping"])
def test_recursive_config_is_refused_with_its_position(
    tmp_path: Path, text: str, bounded: Callable[[], None]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    [problem] = config_problems(path)
    bounded()
    assert problem.startswith(f"{path}: line ")
    assert "invalid YAML: alias *" in problem
    assert "recursive structures are not allowed" in problem


def test_billion_laughs_config_is_refused_fast_and_small(
    tmp_path: Path, bounded: Callable[[], None]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(billion_laughs())
    [problem] = config_problems(path)
    bounded()
    assert f"more than {safe_yaml.MAX_VALUES} values once aliases are expanded" in problem
    assert problem.startswith(f"{path}: line ")


def test_a_few_aliases_are_still_fine(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "queues:\n  - &voice {name: support, channels: [voice]}\n  - {<<: *voice, name: billing}\n"
    )
    config = load_config(path, env={})
    assert [q.name for q in config.queues] == ["support", "billing"]


def test_oversized_config_is_refused_before_parsing(
    tmp_path: Path, bounded: Callable[[], None]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("# padding\n" * (safe_yaml.MAX_BYTES // 10 + 1))
    assert config_problems(path) == [f"{path}: refused: the file is larger than 1024 KiB"]
    bounded()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (nested(500), f"values nested more than {safe_yaml.MAX_DEPTH} levels deep"),
        ("web:\n  started: 2020-13-45\n", "cannot read '2020-13-45': month must be in 1..12"),
        ("web:\n  port: " + "9" * 5000 + "\n", "cannot read '99999999"),
    ],
    ids=["deep", "bad-date", "huge-int"],
)
def test_other_hostile_values_are_yaml_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    [problem] = config_problems(path)
    assert problem.startswith(f"{path}: line ")
    assert expected in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "start: a\nsteps: &s\n  a: {type: hangup, prompt: bye.wav, again: *s}\n",
            "recursive structures are not allowed",
        ),
        (billion_laughs(), "values once aliases are expanded"),
        (nested(500), "levels deep"),
        ("start: a\nsteps:\n  a: {type: hangup, when: 2021-02-30}\n", "day is out of range"),
    ],
    ids=["recursive", "billion-laughs", "deep", "bad-date"],
)
def test_hostile_flow_is_refused_naming_flow_and_position(
    tmp_path: Path, text: str, expected: str, bounded: Callable[[], None]
) -> None:
    (tmp_path / "main.yaml").write_text(text)
    [problem] = flow_problems(tmp_path)
    bounded()
    assert problem.startswith("flow main: invalid YAML at line ")
    assert expected in problem


def test_oversized_or_binary_flow_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("# padding\n" * (safe_yaml.MAX_BYTES // 10 + 1))
    (tmp_path / "latin.yaml").write_bytes("start: caf\xe9\n".encode("latin-1"))
    problems = flow_problems(tmp_path)
    assert problems == [
        f"flow big: refused {tmp_path / 'big.yaml'}: the file is larger than 1024 KiB",
        f"flow latin: cannot read {tmp_path / 'latin.yaml'} (not UTF-8 text: byte 11 is b'\\xe9')",
    ]
