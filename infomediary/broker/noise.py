"""Discrete Laplace noise from OpenDP (``make_laplace`` over integers), never numpy floats.

A count has sensitivity 1 (one customer more or less changes it by at most 1), and so
does a histogram over disjoint cells, so noise of scale ``1/epsilon`` on each released
integer gives epsilon-differential privacy per query.

OpenDP's Python call costs a few hundred microseconds whatever it computes, more than a
whole bitmap selection. So noise is drawn in batches: the vector form of the same
measurement applied to zeros yields independent samples of the same discrete Laplace
distribution, and adding one fresh sample to a true count is exactly what ``make_laplace``
does to it. Each sample is used once and never revealed except added to a count.
"""

from __future__ import annotations

import threading
from typing import Any

import opendp.prelude as dp

dp.enable_features("contrib")

BATCH = 4096


class NoiseSource:
    def __init__(self, epsilon: float, batch: int = BATCH):
        if not 0 < epsilon <= 10:
            raise ValueError("epsilon must be in (0, 10]")
        self.epsilon = epsilon
        self.scale = 1.0 / epsilon
        self._measurement: Any = dp.m.make_laplace(
            dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=self.scale
        )
        self._batch = batch
        self._pool: list[int] = []
        self._losses: dict[int, float] = {}
        self._lock = threading.Lock()

    def privacy_loss(self, sensitivity: int = 1) -> float:
        """Epsilon spent by one release of integers whose L1 sensitivity is ``sensitivity``
        (OpenDP's privacy map, asked once per sensitivity: the call costs as much as a count)."""
        loss = self._losses.get(sensitivity)
        if loss is None:
            loss = self._losses[sensitivity] = float(self._measurement.map(sensitivity))
        return loss

    def _samples(self, count: int) -> list[int]:
        with self._lock:
            while len(self._pool) < count:
                self._pool.extend(self._measurement([0] * self._batch))
            taken, self._pool = self._pool[:count], self._pool[count:]
        return taken

    def release(self, true_values: list[int]) -> list[int]:
        """Noisy versions of ``true_values`` (each gets its own fresh sample)."""
        noise = self._samples(len(true_values))
        return [value + z for value, z in zip(true_values, noise, strict=True)]
