"""How long each garbage collection stops the process, by generation, for `/metrics`.

A collection holds the GIL from its start to its end: the loop, every socket and every
thread wait that long. `gc.callbacks` is told of both ends; the time between them is
the pause. One watcher per process (the collector is process-wide too), shared by every
app's registry.

The callback runs inside the collector, at any allocation, in whichever thread
allocated: it takes no lock (a lock held by the interrupted code would deadlock it) and
allocates nothing the collector tracks. It only adds to preallocated lists; a scrape
reads them, and a value torn by a collection running mid-scrape is off by one pause.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

GENERATIONS = (0, 1, 2)
# Upper bounds in seconds: young collections take tens of microseconds, a full one over
# a large heap hundreds of milliseconds; 20 ms is the target for a full one.
BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
)


class GcPauses:
    """Pause durations per generation: bucket counts, sum, maximum, last."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.buckets: list[list[int]] = [[0] * (len(BUCKETS) + 1) for _ in GENERATIONS]
        self.sums = [0.0 for _ in GENERATIONS]
        self.maxima = [0.0 for _ in GENERATIONS]
        self.last = [0.0 for _ in GENERATIONS]
        self._started = 0.0
        self._installed = False

    def install(self) -> None:
        """Start watching (idempotent)."""
        if not self._installed:
            gc.callbacks.append(self._on_gc)
            self._installed = True

    def uninstall(self) -> None:
        """Stop watching (idempotent); the figures so far are kept."""
        if self._installed:
            gc.callbacks.remove(self._on_gc)
            self._installed = False

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = self._clock()
        if phase == "start":
            self._started = now
            return
        seconds = now - self._started
        generation = info["generation"]
        self.buckets[generation][bisect_left(BUCKETS, seconds)] += 1
        self.sums[generation] += seconds
        self.last[generation] = seconds
        if seconds > self.maxima[generation]:
            self.maxima[generation] = seconds

    def count(self, generation: int) -> int:
        """Collections of `generation` seen since installed."""
        return sum(self.buckets[generation])


PAUSES = GcPauses()


class GcCollector(Collector):
    """`cc_gc_*`: pause histogram per generation, worst and last pause, heap sizes."""

    def __init__(self, pauses: GcPauses = PAUSES) -> None:
        self._pauses = pauses
        pauses.install()

    def collect(self) -> Iterator[HistogramMetricFamily | GaugeMetricFamily]:
        pauses = self._pauses
        histogram = HistogramMetricFamily(
            "cc_gc_pause_seconds",
            "Time each garbage collection stopped the process, by generation (2 = full)",
            labels=["generation"],
        )
        worst = GaugeMetricFamily(
            "cc_gc_pause_max_seconds",
            "Longest garbage-collection pause since start, by generation",
            labels=["generation"],
        )
        last = GaugeMetricFamily(
            "cc_gc_pause_last_seconds",
            "The latest garbage-collection pause, by generation",
            labels=["generation"],
        )
        for generation in GENERATIONS:
            counts = list(pauses.buckets[generation])
            cumulative: list[tuple[str, float]] = []
            running = 0
            for bound, count in zip(BUCKETS, counts, strict=False):
                running += count
                cumulative.append((repr(bound), running))
            cumulative.append(("+Inf", running + counts[-1]))
            label = [str(generation)]
            histogram.add_metric(label, cumulative, sum_value=pauses.sums[generation])
            worst.add_metric(label, pauses.maxima[generation])
            last.add_metric(label, pauses.last[generation])
        yield histogram
        yield worst
        yield last
        threshold = GaugeMetricFamily(
            "cc_gc_threshold",
            "Collection thresholds (gc.get_threshold) by generation",
            labels=["generation"],
        )
        for generation, value in zip(GENERATIONS, gc.get_threshold(), strict=True):
            threshold.add_metric([str(generation)], value)
        yield threshold
        yield GaugeMetricFamily(
            "cc_gc_frozen_objects",
            "Objects moved out of the collector's way (gc.freeze): never walked",
            value=gc.get_freeze_count(),
        )
        # gc.get_objects() lists the unfrozen objects only: ~15 ms per million, a few
        # thousand while the daemon keeps freezing (contact_center/heap.py).
        yield GaugeMetricFamily(
            "cc_gc_tracked_objects",
            "Objects a full collection walks (tracked by the collector and not frozen)",
            value=len(gc.get_objects()),
        )
