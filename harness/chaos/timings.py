"""The timings of a chaos run, compressed: seconds, not minutes, so an example takes seconds.

Pure data. Every wait a schedule makes on the clock is derived from these, and
P2's bound is computed from them by the one function that defines it
(:func:`harness.check.convergence_bound`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.check import convergence_bound

SERVICE = "thawproof"
SECRET = "thawproof-chaos-secret-32-bytes!"
OTHER_SECRET = "another-service-secret-of-32-b!!"


@dataclass(frozen=True)
class Timings:
    """Compressed lease timings."""

    lease_ttl: float = 0.8
    min_idle: float = 0.2
    cooldown: float = 0.1
    cooldown_jitter: float = 0.2
    reaper_grace: float = 0.1
    reaper_lock_timeout: float = 0.4
    reaper_statement_timeout: float = 2.0
    retry_budget: float = 4.0
    slack: float = 0.8
    """Added to P2's bound: one reaper pass, a lock timeout, scheduling noise."""
    settle_extra: float = 0.6
    """Settle keeps invocations arriving this long past the convergence bound."""
    wave_pace: float = 0.05
    """Pause between settle waves: the arrival rate of invocations, not a synchronisation."""

    @property
    def max_cooldown(self) -> float:
        return self.cooldown * (1 + self.cooldown_jitter)

    @property
    def bound(self) -> float:
        return convergence_bound(self.lease_ttl, self.min_idle, self.max_cooldown, self.slack)

    def lease_kwargs(self) -> dict[str, Any]:
        return {
            "service": SERVICE,
            "secret": SECRET,
            "lease_ttl": self.lease_ttl,
            "min_idle": self.min_idle,
            "cooldown": self.cooldown,
            "cooldown_jitter": self.cooldown_jitter,
            "reaper_grace": self.reaper_grace,
            "reap_probability": 1.0,
            "reaper_lock_timeout": self.reaper_lock_timeout,
            "reaper_statement_timeout": self.reaper_statement_timeout,
            "retry_budget": self.retry_budget,
            "backoff_base": 0.02,
            "backoff_cap": 0.3,
            "connect_timeout": 2.0,
        }
