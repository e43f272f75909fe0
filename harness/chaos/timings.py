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
SERVICE_TAG = "thawproof"
"""SERVICE as its tokens carry it, by the spec (a plain name is kept as it is;
``harness.check.wire.tag`` agrees, and a unit test says so). Never computed with
the code under test."""


AT_SCALE_FROM = 20
"""From this many workers on, :meth:`Timings.for_fleet` gives the timings at scale."""


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
    backoff_base: float = 0.02
    backoff_cap: float = 0.3
    slack: float = 0.8
    """Added to P2's bound: one reaper pass, a lock timeout, scheduling noise."""
    settle_extra: float = 0.6
    """Settle keeps invocations arriving this long past the convergence bound."""
    settle_early: bool = True
    """Settle's arrivals end as soon as the record decides P2 (see
    :meth:`harness.chaos.env.ChaosEnv.settle`); False: always ``bound + settle_extra``."""
    wave_pace: float = 0.05
    """Pause between settle waves: the arrival rate of invocations, not a synchronisation."""

    @classmethod
    def for_fleet(cls, workers: int) -> Timings:
        """The defaults for a fleet of ``workers``. From :data:`AT_SCALE_FROM` workers on,
        the timings are compressed less. Compressed timings must stay long against what
        the machine's scheduling alone does to a live worker, and with 100 processes on
        two cores that is measured at 0.4-0.8 s off-CPU during a cold-start wave: a
        worker's 0.8 s lease lapsed between the server accepting its connection and the
        worker reading the reply (another reaper then rightly reaped it), and a pass's
        0.4 s lock timeout ended a live worker's session inside its own pass. Leases of
        3 s and a 1.5 s lock timeout (the bound's slack with it) put that noise well
        inside the margins, as minutes do on Lambda."""
        if workers < AT_SCALE_FROM:
            return cls()
        return cls(lease_ttl=3.0, min_idle=0.5, reaper_lock_timeout=1.5, slack=1.9)

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
            "backoff_base": self.backoff_base,
            "backoff_cap": self.backoff_cap,
            "connect_timeout": 2.0,
        }
