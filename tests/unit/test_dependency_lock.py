"""The lock files pin every dependency within pyproject's bounds, with licences we can ship.

`scripts/_venv.sh` installs from requirements.lock / requirements-dev.lock with
`--require-hashes`; a dependency added to pyproject.toml without `scripts/lock` would
otherwise go unpinned (or not be installed at all on a fresh machine).
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")

# Licences compatible with shipping the whole under AGPL-3.0-or-later (permissive, or
# MPL-2.0 file-level copyleft, or GPL-3.0, whose section 13 lets a GPL-3.0 work be
# combined with an AGPL-3.0 one: aioimaplib). Anything else needs a person's decision.
COMPATIBLE = {
    "MIT",
    "MIT-0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "Apache-2.0",
    "PSF-2.0",
    "MPL-2.0",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
}
_SPELLINGS = {
    "mit license": "MIT",
    "apache 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "python software foundation license": "PSF-2.0",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
}


def _pins(lock: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / lock).read_text().splitlines():
        found = _PIN.match(line)
        if found:
            pins[canonicalize_name(found.group(1))] = found.group(2)
    return pins


def _declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    if extra is not None:
        declared += project["optional-dependencies"][extra]
    return [Requirement(r) for r in declared]


@pytest.mark.parametrize(
    ("lock", "extra"), [("requirements.lock", None), ("requirements-dev.lock", "dev")]
)
def test_every_declared_dependency_is_pinned_within_its_bounds(
    lock: str, extra: str | None
) -> None:
    pins = _pins(lock)
    for requirement in _declared(extra):
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not in {lock}: run scripts/lock"
        assert requirement.specifier.contains(pinned), f"{lock} pins {requirement.name}=={pinned}"


def test_every_declared_dependency_has_an_upper_bound() -> None:
    for requirement in _declared("dev"):
        assert any(s.operator in ("<", "<=", "==", "~=") for s in requirement.specifier), (
            f"{requirement} has no upper bound: a new major release could break a fresh install"
        )


def test_every_lock_line_carries_hashes() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text()
        for block in re.split(r"\n(?=[A-Za-z0-9])", text):
            if _PIN.match(block):
                assert "--hash=sha256:" in block, block.splitlines()[0]


def _licence(name: str) -> str:
    meta = metadata.metadata(name)
    expression = meta.get("License-Expression")
    if expression:
        return expression
    text = (meta.get("License") or "").strip()
    if text and len(text) < 60:
        return _SPELLINGS.get(text.lower(), text)
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            label = classifier.split("::")[-1].strip()
            return _SPELLINGS.get(label.lower(), label)
    return "unknown"


def test_every_runtime_dependency_has_a_licence_compatible_with_ours() -> None:
    problems = []
    for name in _pins("requirements.lock"):
        licence = _licence(name)
        parts = set(re.split(r"\s+(?:AND|OR)\s+", licence.replace("(", "").replace(")", "")))
        if not parts <= COMPATIBLE:
            problems.append(f"{name}: {licence}")
    assert not problems, problems
