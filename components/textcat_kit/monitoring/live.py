"""A sliding window of recent predictions, compared with the reference on demand.

``textcat-kit serve`` appends every micro-batch's probabilities and decisions; ``GET
/monitor`` and ``GET /metrics`` compare the last ``size`` predictions with the reference
profile using the same :func:`~textcat_kit.monitoring.monitor.compare` as the
``monitor`` command. Results are cached until new predictions arrive.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .monitor import MonitorSettings, compare
from .profile import ReferenceProfile


class SlidingWindow:
    """Ring buffer of the last ``size`` probability rows and 0/1 decision rows."""

    def __init__(
        self, profile: ReferenceProfile, size: int = 2000, settings: MonitorSettings | None = None
    ) -> None:
        n_labels = len(profile.labels)
        self.profile = profile
        self.size = size
        self.settings = settings or MonitorSettings()
        self._probs = np.zeros((size, n_labels), dtype=np.float32)
        self._decided = np.zeros((size, n_labels), dtype=bool)
        self._next = 0
        self._filled = 0
        self._seen = 0
        self._lock = threading.Lock()
        self._cache: tuple[int, dict[str, Any]] | None = None

    def add(self, probs: np.ndarray, decided: np.ndarray) -> None:
        """Append rows (the newest ``size`` rows win when more are given)."""
        probs = np.asarray(probs)[-self.size :]
        decided = np.asarray(decided, dtype=bool)[-self.size :]
        n = probs.shape[0]
        with self._lock:
            end = self._next + n
            if end <= self.size:
                self._probs[self._next : end] = probs
                self._decided[self._next : end] = decided
            else:
                first = self.size - self._next
                self._probs[self._next :] = probs[:first]
                self._decided[self._next :] = decided[:first]
                self._probs[: n - first] = probs[first:]
                self._decided[: n - first] = decided[first:]
            self._next = end % self.size
            self._filled = min(self.size, self._filled + n)
            self._seen += n

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._filled < self.size:
                return self._probs[: self._filled].copy(), self._decided[: self._filled].copy()
            order = np.r_[self._next : self.size, 0 : self._next]
            return self._probs[order], self._decided[order]

    def report(self) -> dict[str, Any]:
        """Monitor report over the window, or a status when it holds too few predictions."""
        seen = self._seen
        if self._cache is not None and self._cache[0] == seen:
            return self._cache[1]
        probs, decided = self.snapshot()
        if probs.shape[0] < self.settings.min_docs:
            result: dict[str, Any] = {
                "status": "warming_up",
                "n_docs": int(probs.shape[0]),
                "min_docs": self.settings.min_docs,
                "alert": False,
                "alerts": [],
            }
        else:
            result = {
                "status": "ok",
                "window": self.size,
                **compare(self.profile, probs.astype(np.float64), decided, self.settings),
            }
        self._cache = (seen, result)
        return result
