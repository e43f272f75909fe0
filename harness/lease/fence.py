"""Fencing: may a statement be sent on this connection now? Pure.

Before every statement the client asks :func:`fence_action` with its own clock:

- ``DISCARD`` when the lease is within ``fence_margin`` of expiry (or past it, e.g.
  after a thaw): the connection is closed unused and a new one opened. Together with
  the reaper's grace this is what keeps "no active connection is killed" true through
  the race between a thaw and a reap: a reaper only kills leases expired by more than
  ``reaper_grace`` by its clock, and a client never sends on one with less than
  ``fence_margin`` left by its clock, so they cannot both act on one lease unless the
  clocks disagree by more than ``reaper_grace + fence_margin``.
- ``RENEW`` when less than ``heartbeat_margin`` remains, or when the statement is
  expected to run longer than what remains above the fence: renew, then send.
- ``SEND`` otherwise.
"""

from __future__ import annotations

import enum


class FenceAction(enum.Enum):
    SEND = "send"
    RENEW = "renew"
    DISCARD = "discard"


def fence_action(
    lease_expiry: float,
    now: float,
    *,
    heartbeat_margin: float,
    fence_margin: float,
    expected_duration: float = 0.0,
) -> FenceAction:
    remaining = lease_expiry - now
    if remaining <= fence_margin:
        return FenceAction.DISCARD
    if remaining <= heartbeat_margin or remaining - fence_margin < expected_duration:
        return FenceAction.RENEW
    return FenceAction.SEND
