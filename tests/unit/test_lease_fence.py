"""Fencing decisions with a fake clock."""

from __future__ import annotations

import pytest

from harness.lease.fence import FenceAction, fence_action

EXPIRY = 1000.0


def act(now: float, expected: float = 0.0) -> FenceAction:
    return fence_action(
        EXPIRY, now, heartbeat_margin=30.0, fence_margin=10.0, expected_duration=expected
    )


@pytest.mark.parametrize(
    ("now", "action"),
    [
        (900.0, FenceAction.SEND),  # 100 s left
        (969.9, FenceAction.SEND),
        (970.0, FenceAction.RENEW),  # 30 s left: heartbeat first
        (985.0, FenceAction.RENEW),
        (990.0, FenceAction.DISCARD),  # within the safety margin
        (1000.0, FenceAction.DISCARD),
        (5000.0, FenceAction.DISCARD),  # thawed long after expiry
    ],
)
def test_thresholds(now: float, action: FenceAction) -> None:
    assert act(now) is action


def test_long_statement_renews_first() -> None:
    assert act(900.0, expected=80.0) is FenceAction.SEND  # 100 - 10 >= 80
    assert act(900.0, expected=95.0) is FenceAction.RENEW
    assert act(995.0, expected=1.0) is FenceAction.DISCARD  # never renews inside the fence


def test_fake_clock_jump_after_thaw() -> None:
    clock = [900.0]
    assert fence_action(EXPIRY, clock[0], heartbeat_margin=30, fence_margin=10) is FenceAction.SEND
    clock[0] += 3600  # frozen for an hour
    assert (
        fence_action(EXPIRY, clock[0], heartbeat_margin=30, fence_margin=10) is FenceAction.DISCARD
    )
