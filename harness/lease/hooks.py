"""Hooks: small dicts handed to the caller's callbacks, which can never hurt the client.

A hook that raises is logged (once per hook name and exception type) and otherwise
ignored: hooks observe, they never change behaviour. Payloads never contain the
coordination secret. Unknown hook names are refused when the client is built, so a
typo does not silently observe nothing.

Payloads (every one also has ``"hook"`` and ``"at"``, the client's clock):

- ``on_connect``/``on_reconnect``: backend_pid, application_name (the lease as the
  server reported it), lease_expiry, reason; on_connect fires for every new
  connection, on_reconnect in addition when it replaces an earlier one.
- ``on_query_start``/``on_query_end``/``on_query_error``: kind (the SQL's first
  word, upper case), op (execute, transaction, execute_once, ...), backend_pid,
  lease_expiry; end adds rows and duration; error adds sqlstate and error (the
  exception class name) and outcome.
- ``on_query_retry``: op, attempt, delay, error, sqlstate.
- ``on_heartbeat``: backend_pid, application_name, lease_expiry, previous_expiry;
  ``on_heartbeat_fail``: backend_pid, error, sqlstate.
- ``on_client_dead``: backend_pid, reason, error, sqlstate (the connection was
  found dead and dropped; the next use reconnects).
- ``on_reap``: event ``locked`` (server_at; aequor_lock: whether the pass also
  holds pg-aequor's key, None when ``aequor_lock_namespace`` is None) |
  ``scanned`` (candidates) | ``kill`` (one ledger entry: pid, result, the row acted
  on, lease_expiry_ms, and ``at`` / ``sent_monotonic``, the reaper's clock and
  ``time.monotonic()`` just before the kill was sent) | ``busy`` | ``pass_end``
  (killed) | ``error`` (error, sqlstate) | ``denied_once`` (first permission denial
  of this reaper).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from harness.lease.errors import ConfigError

log = logging.getLogger("harness.lease")

HOOK_NAMES = frozenset(
    {
        "on_connect",
        "on_reconnect",
        "on_query_retry",
        "on_heartbeat",
        "on_heartbeat_fail",
        "on_reap",
        "on_client_dead",
        "on_query_start",
        "on_query_end",
        "on_query_error",
    }
)

Hook = Callable[[dict[str, Any]], None]


class Hooks:
    """The caller's hooks, called safely."""

    def __init__(self, hooks: Mapping[str, Hook] | None, clock: Callable[[], float]) -> None:
        given = dict(hooks or {})
        unknown = sorted(set(given) - HOOK_NAMES)
        if unknown:
            raise ConfigError(
                f"unknown hook {unknown[0]!r}; known hooks: {', '.join(sorted(HOOK_NAMES))}"
            )
        for name, fn in given.items():
            if not callable(fn):
                raise ConfigError(f"hook {name!r} must be callable")
        self._hooks = given
        self._clock = clock
        self._logged: set[tuple[str, str]] = set()

    def wants(self, name: str) -> bool:
        """Is a hook registered (so the payload is worth building)?"""
        return name in self._hooks

    def wants_any(self, names: tuple[str, ...]) -> bool:
        return any(n in self._hooks for n in names)

    def emit(self, name: str, payload: dict[str, Any]) -> None:
        fn = self._hooks.get(name)
        if fn is None:
            return
        payload.setdefault("hook", name)
        try:
            payload.setdefault("at", self._clock())
        except Exception:  # a broken clock must not break the hook either
            payload.setdefault("at", None)
        try:
            fn(payload)
        except Exception as exc:
            key = (name, type(exc).__name__)
            if key not in self._logged:
                self._logged.add(key)
                log.warning("hook %s raised %s (ignored)", name, type(exc).__name__, exc_info=True)
