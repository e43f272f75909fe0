"""The toxic chain of one direction (``_pipe``), with an in-memory source and destination."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from harness.faultproxy._pipe import Pipe
from harness.faultproxy._toxics import Toxic, parse_create, parse_update

WAIT = 5.0


class FakeDest:
    def __init__(self) -> None:
        self.data = bytearray()
        self.finished = False
        self.write_paused = False

    def send(self, data: bytes) -> None:
        self.data += data

    async def drained(self) -> None:
        return None

    def finish(self) -> None:
        self.finished = True


class FakeSource:
    def __init__(self) -> None:
        self.blocked: set[str] = set()

    def block(self, reason: str) -> None:
        self.blocked.add(reason)

    def unblock(self, reason: str) -> None:
        self.blocked.discard(reason)


def toxic(body: str) -> Toxic:
    return parse_create(body.encode()).build()


async def until(check: Callable[[], bool], what: str) -> None:
    async def spin() -> None:
        while not check():
            await asyncio.sleep(0)

    try:
        await asyncio.wait_for(spin(), WAIT)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def make() -> tuple[Pipe, FakeSource, FakeDest]:
    source, dest = FakeSource(), FakeDest()
    return Pipe(source, dest), source, dest


def test_no_stage_writes_through() -> None:
    async def body() -> None:
        pipe, _, dest = make()
        pipe.feed(b"abc")
        pipe.end()
        assert dest.data == b"abc"
        assert dest.finished

    run(body)


def test_removing_latency_flushes_in_order() -> None:
    async def body() -> None:
        pipe, _, dest = make()
        slow = toxic('{"type": "latency", "attributes": {"latency": 60000}}')
        pipe.add(slow)
        for part in (b"one ", b"two ", b"three"):
            pipe.feed(part)
        await until(lambda: pipe.stages[0].holding is not None, "latency to hold a chunk")
        assert dest.data == b""
        pipe.remove(slow)
        assert dest.data == b"one two three"
        assert pipe.idle

    run(body)


def test_removing_an_acting_timeout_closes() -> None:
    async def body() -> None:
        pipe, _, dest = make()
        hold = toxic('{"type": "timeout", "attributes": {"timeout": 0}}')
        pipe.add(hold)
        pipe.feed(b"dropped")
        await until(lambda: not pipe.stages[0].queue, "the chunk to be taken")
        pipe.remove(hold)
        assert dest.data == b""
        assert dest.finished

    run(body)


def test_timeout_swallows_the_end_until_removed() -> None:
    async def body() -> None:
        pipe, _, dest = make()
        hold = toxic('{"type": "timeout", "attributes": {"timeout": 0}}')
        pipe.add(hold)
        pipe.feed(b"dropped")
        pipe.end()
        await until(lambda: not pipe.stages[0].queue, "the end to be taken")
        assert not dest.finished
        pipe.remove(hold)
        assert dest.data == b""
        assert dest.finished

    run(body)


def test_limit_data_count_survives_update() -> None:
    async def body() -> None:
        pipe, _, dest = make()
        limit = toxic('{"type": "limit_data", "attributes": {"bytes": 10}}')
        pipe.add(limit)
        pipe.feed(b"123456")
        await until(lambda: len(dest.data) == 6, "six bytes")
        limit.attributes, limit.toxicity = parse_update(limit, b'{"attributes": {"bytes": 8}}')
        pipe.update(limit)
        pipe.feed(b"789abc")
        await until(lambda: dest.finished, "the close")
        assert dest.data == b"12345678"

    run(body)


def test_stages_apply_in_insertion_order_and_reset_peer_closes() -> None:
    async def body() -> None:
        pipe, _, dest = make()
        pipe.add(toxic('{"type": "noop"}'))
        pipe.add(toxic('{"type": "reset_peer", "attributes": {"timeout": 0}}'))
        pipe.feed(b"x")
        await until(lambda: dest.finished, "the close")
        assert dest.data == b""

    run(body)


def test_toxicity_zero_passes_through() -> None:
    async def body() -> None:
        pipe, _, dest = make()
        pipe.add(toxic('{"type": "timeout", "toxicity": 0}'))
        pipe.feed(b"kept")
        await until(lambda: dest.data == b"kept", "the data")

    run(body)


def test_update_of_slicer_keeps_every_byte() -> None:
    async def body() -> None:
        pipe, _, dest = make()
        slicer = toxic('{"type": "slicer", "attributes": {"average_size": 1, "delay": 1000}}')
        pipe.add(slicer)
        payload = bytes(range(200))
        pipe.feed(payload)
        await until(lambda: len(dest.data) >= 3, "a few pieces")
        slicer.attributes, _ = parse_update(slicer, b'{"attributes": {"average_size": 50}}')
        pipe.update(slicer)
        await until(lambda: len(dest.data) == len(payload), "every byte")
        assert dest.data == payload

    run(body)


def test_full_pipe_pauses_the_source() -> None:
    async def body() -> None:
        pipe, source, dest = make()
        slow = toxic('{"type": "latency", "attributes": {"latency": 60000}}')
        pipe.add(slow)
        for _ in range(10):
            pipe.feed(b"x" * 1_000_000)
        assert "pipe" in source.blocked
        pipe.remove(slow)
        assert not source.blocked
        assert len(dest.data) == 10_000_000

    run(body)
