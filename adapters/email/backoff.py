"""How long to wait before trying again: exponential, capped, with jitter (pure)."""

from __future__ import annotations


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait before retry number `attempt` (1 for the first retry).

    The ceiling doubles from `base` up to `cap`; the wait is its upper half chosen by
    `jitter` (a random number in [0, 1], drawn by the caller so this stays pure): never
    less than half the ceiling, and clients that failed together do not retry together.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, not {attempt}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be within [0, 1], not {jitter}")
    if base <= 0 or cap < base:
        raise ValueError(f"need 0 < base <= cap, not base={base} cap={cap}")
    # 2**attempt overflows a float near attempt 1024: stop doubling once past the cap.
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return ceiling / 2 + jitter * ceiling / 2
