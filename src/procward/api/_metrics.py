"""``/metrics``: per-service figures in the Prometheus text format (prometheus_client).

A custom collector builds fresh metric families from a snapshot at each
scrape, instead of keeping live Gauge objects updated from the engine's hot
paths: supervision pays nothing between scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from procward.api._resources import tree_usage
from procward.engine import Control

__all__ = ["Snapshot", "render_metrics", "snapshot"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class _Row:
    service: str
    instance: str
    up: bool
    restarts: int
    uptime: float
    pid: int | None


@dataclass(frozen=True)
class Snapshot:
    rows: list[_Row]
    logs: list[tuple[str, str, str, int, int]]


def snapshot(control: Control) -> Snapshot:
    now = time.time()
    rows = [_Row(st.service, st.name, str(st.state) == "running", st.restarts,
                 st.uptime(now) or 0.0, st.pid) for st in control.status()]
    return Snapshot(rows, control.log_counters())


class _Collector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    def collect(self) -> Iterator[Metric]:
        labels = ["service", "instance"]
        up = GaugeMetricFamily("procward_service_up", "1 when the instance is running",
                               labels=labels)
        restarts = CounterMetricFamily("procward_service_restarts",
                                       "restarts since the daemon started", labels=labels)
        uptime = GaugeMetricFamily("procward_service_uptime_seconds",
                                   "seconds since the instance's process started", labels=labels)
        cpu = CounterMetricFamily("procward_service_cpu_seconds",
                                  "CPU seconds of the instance's process tree", labels=labels)
        rss = GaugeMetricFamily("procward_service_memory_rss_bytes",
                                "resident memory of the instance's process tree", labels=labels)
        usage = tree_usage([r.pid for r in self._snap.rows if r.pid])
        for row in self._snap.rows:
            key = [row.service, row.instance]
            up.add_metric(key, 1.0 if row.up else 0.0)
            restarts.add_metric(key, row.restarts)
            uptime.add_metric(key, row.uptime)
            found = usage.get(row.pid) if row.pid else None
            if found is not None:
                cpu.add_metric(key, found.cpu_seconds)
                rss.add_metric(key, found.rss)
        stream_labels = [*labels, "stream"]
        written = CounterMetricFamily("procward_log_bytes", "output bytes written to log files",
                                      labels=stream_labels)
        dropped = CounterMetricFamily("procward_log_dropped_bytes",
                                      "output bytes lost because the log could not be written",
                                      labels=stream_labels)
        for service, instance, stream, nbytes, ndropped in self._snap.logs:
            written.add_metric([service, instance, stream], nbytes)
            dropped.add_metric([service, instance, stream], ndropped)
        yield from (up, restarts, uptime, cpu, rss, written, dropped)


def render_metrics(snap: Snapshot) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(snap))
    return generate_latest(registry), CONTENT_TYPE
