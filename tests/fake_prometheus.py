"""A fake of linkerd-viz's Prometheus HTTP API, small but honest about time windows.

It stores samples per series with their timestamps and evaluates the one query shape verify and
viz's metrics-api send, `sum(increase(<metric>{<matchers>}[<window>])) by (<labels>)`
(viz/metrics-api/stat_summary.go), at its own clock `now`. Any other query gets Prometheus's
400 `bad_data` answer, so a check cannot pass on a query the fake does not understand.

    prometheus = FakePrometheus()
    prometheus.scrape({"__name__": "response_total", "tls": "true"}, [100, 110, 120])
    prometheus.handle("/api/v1/query?query=...")  # -> (200, "application/json", body)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

# viz's chart scrapes every 10 s (linkerd-viz values: prometheus.globalConfig.scrape_interval).
SCRAPE_INTERVAL_SECONDS = 10.0
QUERY = re.compile(r"^sum\(increase\((?P<metric>\w+)\{(?P<matchers>.*)\}\[(?P<window>\d+)(?P<unit>[smhd])\]\)\) by \((?P<by>[\w, ]*)\)$")
MATCHER = re.compile(r'\s*(?P<label>\w+)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*(?:,|$)')
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Labels = frozenset  # of (name, value) pairs, `__name__` included


def _unquote(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)  # PromQL strings use Go escapes; `\\.` is a regex `\.`


def _matches(labels: Mapping[str, str], label: str, op: str, value: str) -> bool:
    actual = labels.get(label, "")
    if op in ("=~", "!~"):
        found = re.fullmatch(value, actual) is not None  # PromQL regexes are fully anchored
        return found if op == "=~" else not found
    return (actual == value) if op == "=" else (actual != value)


def _format(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)  # as Go's FormatFloat(v, 'f', -1, 64)


def _increase(samples: Sequence[tuple[float, float]]) -> float:
    """A counter's growth across the samples, counting a drop as a restart from zero (as Prometheus does).

    Prometheus also extrapolates to the window's edges; verify only asks whether the growth is
    above zero, which extrapolation never changes, so the fake leaves it out.
    """
    growth = 0.0
    for (_, before), (_, after) in zip(samples, samples[1:]):
        growth += after - before if after >= before else after
    return growth


@dataclass
class FakePrometheus:
    now: float = 1_700_000_000.0
    ready: bool = True
    series: dict[Labels, list[tuple[float, float]]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)

    def scrape(self, labels: Mapping[str, str], values: Sequence[float]) -> None:
        """Records `values` as the last len(values) scrapes of one series, the last one at `now`."""
        samples = self.series.setdefault(Labels(labels.items()), [])
        start = self.now - SCRAPE_INTERVAL_SECONDS * (len(values) - 1)
        samples.extend((start + SCRAPE_INTERVAL_SECONDS * i, float(value)) for i, value in enumerate(values))
        samples.sort()

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def handle(self, path_and_query: str) -> tuple[int, str, bytes]:
        url = urlsplit(path_and_query)
        if not self.ready:
            # Prometheus answers 503 on every API path until its TSDB is ready (prometheus web/web.go, testReady).
            return 503, "text/plain", b"Service Unavailable"
        if url.path != "/api/v1/query":
            return 404, "text/plain", b"404 page not found"
        query = parse_qs(url.query).get("query", [""])[0]
        self.queries.append(query)
        try:
            result = self._evaluate(query)
        except ValueError as err:
            return 400, "application/json", json.dumps({"status": "error", "errorType": "bad_data", "error": str(err)}).encode()
        return 200, "application/json", json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()

    def _evaluate(self, query: str) -> list[dict]:
        parsed = QUERY.match(query.strip())
        if not parsed:
            raise ValueError(f"the fake evaluates only sum(increase(m{{..}}[w])) by (..), not {query!r}")
        matchers = [(m["label"], m["op"], _unquote(m["value"])) for m in MATCHER.finditer(parsed["matchers"])]
        window = int(parsed["window"]) * UNIT_SECONDS[parsed["unit"]]
        by = [label.strip() for label in parsed["by"].split(",") if label.strip()]
        sums: dict[tuple[str, ...], float] = {}
        for labels_set, samples in self.series.items():
            labels = dict(labels_set)
            if labels.get("__name__") != parsed["metric"] or not all(_matches(labels, *matcher) for matcher in matchers):
                continue
            # A range selector takes the samples in [now - window, now] in Prometheus 2.x (viz's chart pins
            # v2.55.1; 3.x leaves the start open); increase() needs two of them.
            in_window = [sample for sample in samples if self.now - window <= sample[0] <= self.now]
            if len(in_window) < 2:
                continue
            key = tuple(labels.get(label, "") for label in by)
            sums[key] = sums.get(key, 0.0) + _increase(in_window)
        # Prometheus drops empty label values from a result's metric.
        return [
            {"metric": {label: value for label, value in zip(by, key) if value}, "value": [self.now, _format(total)]}
            for key, total in sorted(sums.items())
        ]
