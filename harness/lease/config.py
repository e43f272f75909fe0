"""``LeaseConfig``: every option of the client and reaper, validated once.

Defaults follow pg-aequor (lease 90 s, minimum idle 180 s, cooldown 30 s, 10 kills
a pass, 3 retries, backoff 100 ms to 2 s, 15 s of retrying in all). Every time is
in seconds (float), so the harness can run the same code with compressed timings.

The three safety margins default to ``AUTO``, which derives them from
``lease_ttl`` (so a compressed ``lease_ttl`` alone gives a valid config):
``heartbeat_margin`` = ttl/3, ``fence_margin`` = ttl/9, ``reaper_grace`` = ttl/9.

The secret never appears in ``repr``, in any error message or in any hook payload.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from harness.lease.errors import ConfigError
from harness.lease.token import js_utf8

AUTO: Final = -1.0
"""Default of the margins: derive the value from ``lease_ttl``."""

MIN_SECRET_BYTES: Final = 16
_DAY: Final = 86_400.0
_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


@dataclass(frozen=True)
class LeaseConfig:
    """Options of one service's lease client and reaper."""

    service: str
    """Service name; tokens carry its sanitised, possibly shortened, form."""
    secret: str | bytes = field(repr=False)
    """Coordination secret shared by the service (not the DB password), >= 16 bytes."""

    lease_ttl: float = 90.0
    """How long a lease is valid after it was set or renewed."""
    min_idle: float = 180.0
    """A backend must have been idle this long (server's measure) before it is reaped."""
    cooldown: float = 30.0
    """Minimum time between two scheduled reaper passes of one client."""
    cooldown_jitter: float = 0.2
    """Each cooldown is multiplied by uniform(1 - j, 1 + j)."""
    max_kills: int = 10
    """At most this many terminations per pass."""

    retries: int = 3
    """Retries (after the first attempt) for a connect or a re-runnable statement."""
    backoff_base: float = 0.1
    backoff_cap: float = 2.0
    retry_budget: float = 15.0
    """Total time spent retrying one operation, sleeps included."""
    connect_timeout: float = 5.0
    """libpq ``connect_timeout`` (libpq rounds to whole seconds, minimum 2)."""

    heartbeat_margin: float = AUTO
    """Renew the lease before a statement when less than this remains (default ttl/3)."""
    fence_margin: float = AUTO
    """Never send on a connection with less than this left: reconnect (default ttl/9)."""
    reaper_grace: float = AUTO
    """The reaper kills only leases expired by more than this (default ttl/9)."""

    reaper_enabled: bool = True
    """False: the client never reaps, not even through ``reap_now`` (bug zoo #8)."""
    reap_probability: float = 0.1
    """Chance that a due pass runs when the client connects or renews its lease."""
    lock_namespace: int = 0x6C656173  # "leas"
    """First key of ``pg_try_advisory_xact_lock(namespace, hashtext(service))``."""
    aequor_lock_namespace: int | None = 0x50474151  # "PGAQ": pg-aequor's Reaper.LOCK_NS
    """pg-aequor's namespace: a leading pass also takes
    ``pg_try_advisory_xact_lock(aequor_lock_namespace, hashtext(service))``, without
    waiting and without needing it, so pg-aequor reapers of the service (which lead
    with a session lock on that key) skip while a Python pass runs, and a frozen
    pg-aequor leader holding it never stalls ours. ``None``: do not touch that key.
    Why, measured: harness/lease/README.md, "Mixed fleets"."""
    reaper_lock_timeout: float = 5.0
    """``SET LOCAL idle_in_transaction_session_timeout`` of the pass: a holder frozen
    longer than this loses its session and with it the lock."""
    reaper_statement_timeout: float = 5.0
    """``SET LOCAL statement_timeout`` of the pass."""

    dedup_table: str = "lease_dedup"
    """Table of ``execute_once`` (see ``harness.lease.dedup.DDL``)."""

    clock: Callable[[], float] = time.time
    """Wall clock in Unix seconds: lease expiry, reaper decisions. Injectable for tests."""

    def __post_init__(self) -> None:
        ttl = self.lease_ttl
        _check_range("lease_ttl", ttl, 0.001, _DAY, low_open=False)
        for name, derived in (
            ("heartbeat_margin", ttl / 3),
            ("fence_margin", ttl / 9),
            ("reaper_grace", ttl / 9),
        ):
            if getattr(self, name) == AUTO:
                object.__setattr__(self, name, derived)
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.service, str) or not self.service:
            raise ConfigError("service must be a non-empty string")
        secret = self.secret
        # As pg-aequor counts it: Buffer.byteLength(secret, 'utf8') (see token.js_utf8).
        raw = js_utf8(secret) if isinstance(secret, str) else secret
        if not isinstance(raw, bytes | bytearray) or len(raw) < MIN_SECRET_BYTES:
            raise ConfigError(f"secret must be at least {MIN_SECRET_BYTES} bytes")
        _check_range("min_idle", self.min_idle, 0.0, _DAY)
        _check_range("cooldown", self.cooldown, 0.0, _DAY)
        _check_range("cooldown_jitter", self.cooldown_jitter, 0.0, 0.999)
        _check_int("max_kills", self.max_kills, 1, 100_000)
        _check_int("retries", self.retries, 0, 1000)
        _check_range("backoff_base", self.backoff_base, 0.001, 60.0)
        _check_range("backoff_cap", self.backoff_cap, self.backoff_base, 3600.0)
        _check_range("retry_budget", self.retry_budget, 0.0, _DAY)
        _check_range("connect_timeout", self.connect_timeout, 0.001, 3600.0)
        _check_range("fence_margin", self.fence_margin, 0.0, self.lease_ttl, high_open=True)
        _check_range(
            "heartbeat_margin",
            self.heartbeat_margin,
            self.fence_margin,
            self.lease_ttl,
            low_open=True,
            high_open=True,
        )
        _check_range("reaper_grace", self.reaper_grace, 0.0, _DAY)
        _check_range("reap_probability", self.reap_probability, 0.0, 1.0)
        _check_int("lock_namespace", self.lock_namespace, _INT4_MIN, _INT4_MAX)
        if self.aequor_lock_namespace is not None:
            _check_int("aequor_lock_namespace", self.aequor_lock_namespace, _INT4_MIN, _INT4_MAX)
            if self.aequor_lock_namespace == self.lock_namespace:
                raise ConfigError(
                    "aequor_lock_namespace must differ from lock_namespace (or be None)"
                )
        _check_range("reaper_lock_timeout", self.reaper_lock_timeout, 0.001, 3600.0)
        _check_range("reaper_statement_timeout", self.reaper_statement_timeout, 0.001, 3600.0)
        if not isinstance(self.reaper_enabled, bool):
            raise ConfigError("reaper_enabled must be a bool")
        if not (isinstance(self.dedup_table, str) and _IDENT.fullmatch(self.dedup_table)):
            raise ConfigError(
                "dedup_table must be an identifier of [A-Za-z0-9_], optionally schema-qualified"
            )
        if not callable(self.clock):
            raise ConfigError("clock must be a callable returning Unix seconds")

    @property
    def secret_bytes(self) -> bytes:
        s = self.secret
        return js_utf8(s) if isinstance(s, str) else bytes(s)


def _check_range(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(v) and (v > low if low_open else v >= low)
        ok = ok and (v < high if high_open else v <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ConfigError(f"{name} must be a number in {lo}{low:g}, {high:g}{hi}, got {value!r}")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        raise ConfigError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
