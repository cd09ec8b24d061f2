"""Prometheus metrics: read from live objects at scrape time, never pushed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from contact_center import __version__
from contact_center.gc_pauses import GcCollector

if TYPE_CHECKING:
    from contact_center.bus import EventBus
    from contact_center.health import HealthRegistry
    from routing.store_writer import StoreWriter

STATES = ("up", "down", "disabled", "starting", "saturated")


class _LiveCollector(Collector):
    def __init__(self, health: HealthRegistry, bus: EventBus) -> None:
        self._health = health
        self._bus = bus

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        info = InfoMetricFamily("cc_build", "Version of the contact center daemon")
        info.add_metric([], {"version": __version__})
        yield info
        state = GaugeMetricFamily(
            "cc_component_state",
            "1 for the state each component is in (up, down, disabled, starting)",
            labels=["component", "state"],
        )
        for component in self._health.all():
            for name in STATES:
                state.add_metric([component.name, name], 1.0 if component.state == name else 0.0)
        yield state
        yield CounterMetricFamily(
            "cc_bus_events_published", "Events published on the bus", value=self._bus.published
        )
        yield CounterMetricFamily(
            "cc_bus_handler_errors", "Bus handlers that raised", value=self._bus.handler_errors
        )


class _StoreWriterCollector(Collector):
    """The store writer's queue: how deep, how often producers waited, how often the
    store refused a batch (bench/simulator_calls.py drives it past saturation)."""

    def __init__(self, writer: StoreWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        w, stats = self._writer, self._writer.stats
        yield GaugeMetricFamily(
            "cc_store_write_queue_depth", "Writes queued for the store", value=w.depth
        )
        yield GaugeMetricFamily(
            "cc_store_write_queue_max_depth", "Deepest the queue has been", value=stats.max_depth
        )
        yield GaugeMetricFamily(
            "cc_store_write_queue_limit", "Queued writes before producers wait", value=w.limit
        )
        yield GaugeMetricFamily(
            "cc_store_write_saturated",
            "1 while the queue is over its high-water mark",
            value=1.0 if w.saturated else 0.0,
        )
        yield GaugeMetricFamily(
            "cc_store_write_held",
            "1 while the store cannot be written and contacts are served from memory",
            value=1.0 if w.holding else 0.0,
        )
        yield CounterMetricFamily(
            "cc_store_write_batches", "Transactions committed", value=stats.batches
        )
        yield CounterMetricFamily("cc_store_write_ops", "Writes committed", value=stats.ops_written)
        yield CounterMetricFamily(
            "cc_store_write_retries",
            "Batches the store could not take (busy, locked, down), retried",
            value=stats.retries,
        )
        yield CounterMetricFamily(
            "cc_store_write_waits", "Times a producer waited for room", value=stats.waits
        )
        yield CounterMetricFamily(
            "cc_store_write_wait_seconds",
            "Time producers spent waiting for room",
            value=stats.wait_seconds,
        )
        yield CounterMetricFamily(
            "cc_store_write_rekeyed",
            "Held contacts stored under another id (theirs was taken meanwhile)",
            value=stats.rekeyed,
        )
        yield CounterMetricFamily(
            "cc_store_write_lost", "Writes given up (wrong in themselves)", value=w.lost_writes
        )


class Metrics:
    """The daemon's own registry, so tests and several apps in one process don't collide."""

    def __init__(self, health: HealthRegistry, bus: EventBus) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_LiveCollector(health, bus))
        ProcessCollector(registry=self.registry)
        # Garbage-collection pauses: with thousands of sockets open, the full ones are
        # what stops the loop longest (bench/gc_pauses.py).
        self.registry.register(GcCollector())
        self.http_requests = Counter(
            "cc_http_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._store_writer: _StoreWriterCollector | None = None
        self.http_seconds = Histogram(
            "cc_http_request_seconds",
            "Time to serve an HTTP request",
            ["route"],
            registry=self.registry,
        )

    def watch_store_writer(self, writer: StoreWriter) -> None:
        """Expose `writer`'s queue (one per daemon; a second call replaces the first)."""
        if self._store_writer is not None:
            self.registry.unregister(self._store_writer)
        self._store_writer = _StoreWriterCollector(writer)
        self.registry.register(self._store_writer)
