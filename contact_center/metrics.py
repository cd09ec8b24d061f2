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

STATES = ("up", "down", "disabled", "starting")


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
        self.http_seconds = Histogram(
            "cc_http_request_seconds",
            "Time to serve an HTTP request",
            ["route"],
            registry=self.registry,
        )
