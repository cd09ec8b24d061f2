"""Fuzz: config.yaml and IVR flow files, as bytes on disk and as parsed structures.

Whatever the file holds, loading it either succeeds or raises the loader's own error
with a message (`ConfigError`, `FlowError`): never a traceback, never a hang.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from contact_center.config import load_config, parse_config
from contact_center.errors import ConfigError
from ivr_flows.loader import FlowError, load_flows, validate_flow
from tests.fuzz.support import FUZZ, ROOT, keep_on_failure, kept, mutated, seeds

CONFIG_SEEDS = seeds("config.yaml", directory=ROOT, limit=1 << 16)
FLOW_SEEDS = seeds("*.yaml", directory=ROOT / "ivr_flows", limit=1 << 16)

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
STRUCTURES = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from(
                    [
                        "name",
                        "start",
                        "steps",
                        "type",
                        "next",
                        "prompt",
                        "choices",
                        "queue",
                        "web",
                        "database",
                        "pbx",
                        "routing",
                        "queues",
                        "skills",
                        "auth",
                        "mode",
                    ]
                ),
                st.text(max_size=8),
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=30,
)


def check_config_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_bytes(data)
        try:
            load_config(path, {})
        except ConfigError as exc:
            assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        except BaseException:
            keep_on_failure("config_file", data)
            raise


def check_flow_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "fuzzed.yaml").write_bytes(data)
        try:
            load_flows(folder, {"support", "billing", "sales", "spanish"})
        except FlowError as exc:
            assert str(exc)
        except BaseException:
            keep_on_failure("flow_file", data)
            raise


@given(data=mutated(CONFIG_SEEDS))
@FUZZ
def test_a_config_file_loads_or_says_what_is_wrong(data: bytes) -> None:
    check_config_file(data)


@given(raw=STRUCTURES)
@FUZZ
def test_a_config_structure_validates_or_says_what_is_wrong(raw: Any) -> None:
    try:
        parse_config(raw, {})
    except ConfigError as exc:
        assert exc.problems


@given(data=mutated(FLOW_SEEDS))
@FUZZ
def test_a_flow_file_loads_or_says_what_is_wrong(data: bytes) -> None:
    check_flow_file(data)


@given(raw=STRUCTURES)
@FUZZ
def test_a_flow_structure_validates_or_says_what_is_wrong(raw: Any) -> None:
    try:
        validate_flow(raw, "fuzzed", {"support", "billing"})
    except FlowError as exc:
        assert str(exc)


def test_the_kept_corpus_still_passes() -> None:
    for data in kept("config_file"):
        check_config_file(data)
    for data in kept("flow_file"):
        check_flow_file(data)
