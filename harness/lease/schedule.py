"""When a client's reaper pass is due: probability, cooldown with jitter, busy backoff.

Consulted when the client connects and when it renews its lease (so warm, busy
workers reap too, at the pace of their heartbeats). A pass that found the leader
lock busy backs off exponentially (cooldown x 2, x 4 ... x 64): another client is
reaping, so this one need not hurry.
"""

from __future__ import annotations

import math
import random

from harness.lease.config import LeaseConfig

_MAX_BUSY_DOUBLINGS = 6


class ReapSchedule:
    def __init__(self, config: LeaseConfig, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng if rng is not None else random.Random()
        self._not_before = -math.inf
        self._busy_streak = 0

    @property
    def not_before(self) -> float:
        return self._not_before

    def due(self, now: float) -> bool:
        """Should a pass run now? (Out of cooldown, and the probability draw says yes.)"""
        if not self._config.reaper_enabled or now < self._not_before:
            return False
        p = self._config.reap_probability
        return p > 0 and (p >= 1 or self._rng.random() < p)

    def done(self, now: float, *, busy: bool) -> None:
        """Record a pass (or an attempt) made at ``now``."""
        if busy:
            self._busy_streak = min(self._busy_streak + 1, _MAX_BUSY_DOUBLINGS)
        else:
            self._busy_streak = 0
        j = self._config.cooldown_jitter
        delay = self._config.cooldown * (2**self._busy_streak) * self._rng.uniform(1 - j, 1 + j)
        self._not_before = now + delay
