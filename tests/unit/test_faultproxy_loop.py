"""faultproxy's spinning selector keeps the selector contract."""

from __future__ import annotations

import asyncio
import selectors
import socket
import time

from harness.faultproxy._flags import parse
from harness.faultproxy._loop import SpinningSelector, new_event_loop


def test_ready_is_returned_and_timeouts_are_kept() -> None:
    a, b = socket.socketpair()
    with a, b, SpinningSelector(0.001) as selector:
        selector.register(a, selectors.EVENT_READ)
        start = time.monotonic()
        assert selector.select(0.02) == []
        assert time.monotonic() - start >= 0.02
        assert selector.select(0) == []
        b.send(b"x")
        ready = selector.select(None)
        assert [key.fileobj for key, _ in ready] == [a]


def test_loop_runs_with_and_without_spin() -> None:
    for spin in (0, 50):
        loop = new_event_loop(spin)
        try:
            assert loop.run_until_complete(asyncio.sleep(0.001, result=spin)) == spin
        finally:
            loop.close()


def test_spin_flag() -> None:
    assert parse([]).spin_us == 50
    assert parse(["-spin-us", "0"]).spin_us == 0
