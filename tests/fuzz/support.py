"""Settings, seeds and the byte-mutation strategy the fuzz targets share."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
TRACES = ROOT / "tests" / "fixtures" / "asterisk-traces"

LONG = os.environ.get("CC_FUZZ_LONG") == "1"
EXAMPLES = int(os.environ.get("CC_FUZZ_EXAMPLES", "20000" if LONG else "100"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # CI: the same inputs every run (a red CI is then a finding, never chance); the long
    # run explores at random and saves what fails under corpus/<target>/ (keep_on_failure),
    # which every run replays.
    derandomize=not LONG,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def seeds(pattern: str, *, directory: Path = TRACES, limit: int = 4096) -> list[bytes]:
    """The start (up to `limit` bytes) of every file matching `pattern`, plus saved seeds."""
    found = [p.read_bytes()[:limit] for p in sorted(directory.glob(pattern))]
    assert found, f"no seed files match {directory / pattern}"
    return found


def kept(target: str) -> list[bytes]:
    """Inputs kept for `target` under corpus/<target>/ (regressions found earlier)."""
    folder = CORPUS / target
    return [p.read_bytes() for p in sorted(folder.glob("*"))] if folder.is_dir() else []


@st.composite
def _mutation(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(("insert", "delete", "flip", "truncate", "splice")))
        at = draw(st.integers(0, len(data)))
        if op == "insert":
            data[at:at] = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=16),
                    st.sampled_from([b"\r\n", b"\r\n\r\n", b"\n", b": ", b"\x00", b"\xff"]),
                )
            )
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[at:]
        elif op == "splice" and data:
            start = draw(st.integers(0, len(data) - 1))
            data[at:at] = data[start : start + draw(st.integers(1, 256))]
    return bytes(data)


def mutated(seed_inputs: list[bytes]) -> st.SearchStrategy[bytes]:
    """Seeds with a few byte-level mutations (an AFL-style havoc), or plain random bytes."""
    return st.one_of(_mutation(seed_inputs), st.binary(max_size=2048))


def keep_on_failure(target: str, data: bytes) -> None:
    """In the long run, save an input that made `target` fail under corpus/<target>/."""
    if not LONG:
        return
    import hashlib

    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"crash-{hashlib.sha1(data).hexdigest()[:16]}.bin").write_bytes(data)
