"""Service metrics in the Prometheus text exposition format (version 0.0.4).

A small, dependency-free registry: counters and histograms updated from the event loop
and the batching thread under one lock, rendered on ``GET /metrics``. Label values of
the ``path`` label are limited to the app's routes (others count as ``other``), so a
scanner cannot blow up the number of series.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Histogram:
    """Cumulative-bucket histogram as Prometheus expects it."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        out = []
        cumulative = 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{_num(bound)}"}} {cumulative}')
        cumulative += self.counts[-1]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {cumulative}')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {_num(self.total)}")
        out.append(f"{name}_count{suffix} {self.n}")
        return out


def _num(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ServiceMetrics:
    """Request, latency, batch and prediction metrics of one server process."""

    def __init__(self, labels: Iterable[str], routes: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self.routes = set(routes)
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_texts = Histogram(BATCH_BUCKETS)
        self.batch_requests = Histogram(BATCH_BUCKETS)
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.texts = 0
        self.abstained = 0
        self.no_label = 0
        self.label_counts: dict[str, int] = dict.fromkeys(labels, 0)

    def route(self, path: str) -> str:
        return path if path in self.routes else "other"

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        path = self.route(path)
        with self._lock:
            self.requests[(method, path, status)] += 1
            hist = self.latency.get(path)
            if hist is None:
                hist = self.latency[path] = Histogram(LATENCY_BUCKETS)
            hist.observe(seconds)

    def observe_batch(
        self,
        n_texts: int,
        n_requests: int,
        seconds: float,
        decided: Sequence[Sequence[str]],
        exclusive: bool,
    ) -> None:
        with self._lock:
            self.batch_texts.observe(n_texts)
            self.batch_requests.observe(n_requests)
            self.batch_seconds.observe(seconds)
            self.texts += n_texts
            counts = self.label_counts
            for doc_labels in decided:
                if not doc_labels:
                    if exclusive:
                        self.abstained += 1
                    else:
                        self.no_label += 1
                for label in doc_labels:
                    counts[label] = counts.get(label, 0) + 1

    def render(self, extra: Sequence[str] = ()) -> str:
        """The exposition text; ``extra`` lines (already formatted) are appended."""
        with self._lock:
            lines = [
                "# HELP textcat_requests_total HTTP requests by method, route and status.",
                "# TYPE textcat_requests_total counter",
            ]
            for (method, path, status), n in sorted(self.requests.items()):
                lines.append(
                    f'textcat_requests_total{{method="{method}",path="{_escape(path)}",'
                    f'status="{status}"}} {n}'
                )
            lines += [
                "# HELP textcat_request_duration_seconds Time from request start to response.",
                "# TYPE textcat_request_duration_seconds histogram",
            ]
            for path, hist in sorted(self.latency.items()):
                lines += hist.lines("textcat_request_duration_seconds", f'path="{_escape(path)}"')
            lines += [
                "# HELP textcat_batch_texts Texts per nlp.pipe micro-batch.",
                "# TYPE textcat_batch_texts histogram",
                *self.batch_texts.lines("textcat_batch_texts"),
                "# HELP textcat_batch_requests Requests gathered into one micro-batch.",
                "# TYPE textcat_batch_requests histogram",
                *self.batch_requests.lines("textcat_batch_requests"),
                "# HELP textcat_batch_duration_seconds Pipeline time per micro-batch.",
                "# TYPE textcat_batch_duration_seconds histogram",
                *self.batch_seconds.lines("textcat_batch_duration_seconds"),
                "# HELP textcat_texts_total Texts classified.",
                "# TYPE textcat_texts_total counter",
                f"textcat_texts_total {self.texts}",
                "# HELP textcat_predicted_label_total Decided labels by label.",
                "# TYPE textcat_predicted_label_total counter",
            ]
            for label, n in sorted(self.label_counts.items()):
                lines.append(f'textcat_predicted_label_total{{label="{_escape(label)}"}} {n}')
            rate = (self.abstained / self.texts) if self.texts else 0.0
            lines += [
                "# HELP textcat_abstained_total Exclusive-task texts without a decided label.",
                "# TYPE textcat_abstained_total counter",
                f"textcat_abstained_total {self.abstained}",
                "# HELP textcat_no_label_total Multi-label texts without a decided label.",
                "# TYPE textcat_no_label_total counter",
                f"textcat_no_label_total {self.no_label}",
                "# HELP textcat_abstain_rate Abstained share of all texts since start.",
                "# TYPE textcat_abstain_rate gauge",
                f"textcat_abstain_rate {_num(rate)}",
            ]
        lines += [
            "# HELP process_resident_memory_bytes Resident memory size in bytes.",
            "# TYPE process_resident_memory_bytes gauge",
            f"process_resident_memory_bytes {rss_bytes()}",
            *extra,
        ]
        return "\n".join(lines) + "\n"
