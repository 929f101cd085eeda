"""Prometheus metrics, named as the kubelet names them where it has them.

One registry per agent (not the library's global one), so tests and
benchmarks can run several agents' worth of parts in one process. Gauges
about pods and containers are read from the runtime cache at scrape time
rather than kept up to date on every change.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from minikubelet.container.state import ContainerRecord

# Probe lags are milliseconds when things go well; the buckets resolve that.
LAG_BUCKETS = (
    0.0001,
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)
DURATION_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _RuntimeCollector(Collector):
    def __init__(self, records: Callable[[], list[ContainerRecord]]) -> None:
        self._records = records

    def collect(self) -> Iterator[Metric]:
        records = self._records()
        pods = {r.pod_uid for r in records if r.is_sandbox and r.running}
        yield GaugeMetricFamily(
            "kubelet_running_pods", "Number of pods that have a running pod sandbox", len(pods)
        )
        states = Counter(r.state.value for r in records if not r.is_sandbox)
        family = GaugeMetricFamily(
            "kubelet_running_containers",
            "Number of containers currently running",
            labels=["container_state"],
        )
        for state, count in sorted(states.items()):
            family.add_metric([state], count)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.probes = PromCounter(
            "prober_probe_total",
            "Cumulative number of liveness, readiness or startup probes for a container",
            # The kubelet's labels, so its dashboards and alerts work unchanged.
            ["probe_type", "result", "container", "pod", "namespace", "pod_uid"],
            registry=self.registry,
        )
        self.probe_duration = Histogram(
            "prober_probe_duration_seconds",
            "Duration in seconds for a probe response",
            ["probe_type", "container", "pod", "namespace"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.probe_lag = Histogram(
            "minikubelet_probe_lag_seconds",
            "How late a probe started against its due time",
            ["probe_type"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )

    def watch_runtime(self, records: Callable[[], list[ContainerRecord]]) -> None:
        self.registry.register(_RuntimeCollector(records))

    def probe_ran(self, probe: ProbeLabels, result: str, duration: float, lag: float) -> None:
        self.probes.labels(probe.probe_type, result, *probe.container_labels, probe.pod_uid).inc()
        self.probe_duration.labels(probe.probe_type, *probe.container_labels).observe(duration)
        self.probe_lag.labels(probe.probe_type).observe(max(lag, 0.0))

    def probe_removed(self, probe: ProbeLabels) -> None:
        """Forget a probe's series when it stops, as the kubelet's prober worker does,
        so pods that come and go do not grow /metrics forever."""
        for result in PROBE_RESULTS:
            with contextlib.suppress(KeyError):
                self.probes.remove(probe.probe_type, result, *probe.container_labels, probe.pod_uid)
        with contextlib.suppress(KeyError):
            self.probe_duration.remove(probe.probe_type, *probe.container_labels)


PROBE_RESULTS = ("successful", "failed", "unknown")


@dataclass(frozen=True, slots=True)
class ProbeLabels:
    probe_type: str
    container: str
    pod: str
    namespace: str
    pod_uid: str

    @property
    def container_labels(self) -> tuple[str, str, str]:
        return (self.container, self.pod, self.namespace)
