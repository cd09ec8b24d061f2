"""Fuzz suite: every parser and entry point that takes outside input, fed mutated input.

The same tests run two ways. In CI (the default) each target gets a bounded,
derandomised run (`CC_FUZZ_EXAMPLES`, 100 by default) and replays the kept corpus. The
long run (`scripts/fuzz`) explores at random with many more examples and saves every
input that fails into `tests/fuzz/corpus/<target>/`; committed, each later run replays it.
"""
