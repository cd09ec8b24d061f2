"""GC pause figures: each collection's pause lands in its generation's histogram."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from contact_center.gc_pauses import BUCKETS, GcCollector, GcPauses


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("generation", ""), sample.labels.get("le", ""))
            out[key] = sample.value
    return out


def test_each_collection_is_counted_in_its_generation() -> None:
    pauses = GcPauses()
    pauses.install()
    try:
        before = [pauses.count(g) for g in (0, 1, 2)]
        gc.collect(2)
        gc.collect(1)
        gc.collect(1)
    finally:
        pauses.uninstall()
    assert pauses.count(2) == before[2] + 1
    assert pauses.count(1) >= before[1] + 2
    assert 0 < pauses.last[2] <= pauses.maxima[2] <= pauses.sums[2]
    # Uninstalled: further collections are not seen.
    gc.collect(2)
    assert pauses.count(2) == before[2] + 1


def test_install_is_idempotent() -> None:
    pauses = GcPauses()
    pauses.install()
    pauses.install()
    try:
        gc.collect(2)
    finally:
        pauses.uninstall()
        pauses.uninstall()
    assert pauses.count(2) == 1
    assert pauses._on_gc not in gc.callbacks


def test_a_pause_goes_in_the_first_bucket_it_fits() -> None:
    now = [100.0]
    pauses = GcPauses(clock=lambda: now[0])
    for seconds, generation in ((0.00005, 0), (0.012, 2), (0.02, 2), (5.0, 1)):
        # Drive the callback with a known duration, as the collector would.
        pauses._on_gc("start", {"generation": generation})
        now[0] += seconds
        pauses._on_gc("stop", {"generation": generation, "collected": 0, "uncollectable": 0})
    assert pauses.buckets[0][0] == 1
    assert pauses.buckets[2][BUCKETS.index(0.015)] == 1
    assert pauses.buckets[2][BUCKETS.index(0.02)] == 1  # a bound is "less or equal"
    assert pauses.buckets[1][-1] == 1  # past the last bound: +Inf
    assert pauses.count(2) == 2
    assert pauses.maxima[1] == pauses.last[1] and abs(pauses.maxima[1] - 5.0) < 1e-9
    assert abs(pauses.sums[2] - 0.032) < 1e-9


def test_collector_exposes_histogram_gauges_and_heap_sizes() -> None:
    pauses = GcPauses()
    registry = CollectorRegistry()
    registry.register(GcCollector(pauses))
    try:
        first = _samples(registry)
        gc.collect(2)
        second = _samples(registry)
    finally:
        pauses.uninstall()
    count = ("cc_gc_pause_seconds_count", "2", "")
    assert second[count] == first[count] + 1
    assert second[("cc_gc_pause_seconds_bucket", "2", "+Inf")] == second[count]
    assert second[("cc_gc_pause_seconds_sum", "2", "")] > 0
    assert second[("cc_gc_pause_last_seconds", "2", "")] > 0
    assert (
        second[("cc_gc_pause_max_seconds", "2", "")]
        >= second[("cc_gc_pause_last_seconds", "2", "")]
    )
    # Cumulative buckets never go down.
    bounds = [second[("cc_gc_pause_seconds_bucket", "2", repr(b))] for b in BUCKETS]
    assert bounds == sorted(bounds)
    assert second[("cc_gc_threshold", "0", "")] == gc.get_threshold()[0]
    assert second[("cc_gc_tracked_objects", "", "")] > 0
    assert ("cc_gc_frozen_objects", "", "") in second
