"""Counters and histograms for the per-frame path (`LoopCounter`, `LoopHistogram`): plain
numbers, handed to Prometheus when it scrapes.

prometheus_client's metrics take a lock on every update (they may be shared between
threads), and a histogram finds its bucket in Python on top; the daemon bumps these several
times for every frame, from its one event-loop thread, where an addition is enough. They
are exported under the same names, types and labels a `Counter` or `Histogram` would give
them (the `_created` samples aside), through a collector's `collect`, so a scraper, a
dashboard or an alert sees no difference.

Contract: update from the event loop's thread only; `collect` runs on that thread too (the
ops endpoint is served by the same loop), so a scrape sees each metric whole.
"""

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class Count:
    """One counter series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Spread:
    """One histogram series: how many observations fell in each bucket, and their sum."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf's own
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


class _Family(Collector):
    """A metric family whose series are made on first use, one per label value."""

    def __init__(
        self, name: str, documentation: str, label: str | None, registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        registry.register(self)

    def _labels(self) -> list[str]:
        return [] if self.label is None else [self.label]


class LoopCounter(_Family):
    """A counter (`name` without `_total`), optionally with one label: `tally[value].inc()`,
    or `tally.inc()` without a label."""

    def __init__(
        self,
        name: str,
        documentation: str,
        registry: CollectorRegistry,
        label: str | None = None,
    ) -> None:
        self._series: dict[str, Count] = {}
        if label is None:
            self.inc(0.0)  # exported from the start, at zero, as a Counter is
        super().__init__(name, documentation, label, registry)

    def __getitem__(self, value: str) -> Count:
        series = self._series.get(value)
        if series is None:
            series = self._series[value] = Count()
        return series

    def inc(self, amount: float = 1.0) -> None:
        self[""].inc(amount)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self._labels())
        for value, series in self._series.items():
            family.add_metric([] if self.label is None else [value], series.value)
        yield family


class LoopHistogram(_Family):
    """A histogram, optionally with one label: `histogram[value].observe(x)`, or
    `histogram.observe(x)` without a label. `buckets` are the upper bounds, +Inf implied."""

    def __init__(
        self,
        name: str,
        documentation: str,
        registry: CollectorRegistry,
        buckets: Sequence[float],
        label: str | None = None,
    ) -> None:
        self._bounds = tuple(sorted(float(b) for b in buckets))
        self._series: dict[str, Spread] = {}
        if label is None:
            self[""]  # exported from the start, empty, as a Histogram is
        super().__init__(name, documentation, label, registry)

    def __getitem__(self, value: str) -> Spread:
        series = self._series.get(value)
        if series is None:
            series = self._series[value] = Spread(self._bounds)
        return series

    def observe(self, value: float) -> None:
        self[""].observe(value)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self._labels())
        # `le` labels as prometheus_client writes them (`0.005`, `1e+06`).
        bounds = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for value, series in self._series.items():
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, series.counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            labels = [] if self.label is None else [value]
            family.add_metric(labels, buckets, series.sum)
        yield family
