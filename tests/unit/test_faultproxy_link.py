"""A link before and at its start (``_link``): held bytes, their bound, their order, a held end.

In-memory transports stand in for the two sockets, so what the link asks of
them (write, pause, resume, close) is seen exactly; the real sockets and the
real slow dial are in ``tests/integration/test_faultproxy_dial.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from harness.faultproxy._link import EARLY_HIGH, Link
from harness.faultproxy._metrics import ByteCounters
from harness.faultproxy._proxy import Proxy


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.reading = True
        self.pauses = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def make(metrics: ByteCounters | None = None) -> tuple[Link, FakeTransport, FakeTransport]:
    """A link whose client socket is open and whose upstream socket is not there yet."""
    proxy = Proxy("p", "127.0.0.1:1111", "127.0.0.1:2222", metrics)
    link = Link(proxy)
    client, upstream = FakeTransport(), FakeTransport()
    link.client.transport = client  # as connection_made would, without starting a dial
    link.dialling = True
    proxy.links.add(link)
    return link, client, upstream


def start(link: Link, upstream: FakeTransport) -> None:
    """The dial succeeded: the upstream socket exists and the link starts."""
    link.upstream.connection_made(upstream)
    link.dialled()


def test_bytes_before_the_start_are_held_then_passed_on_in_order() -> None:
    async def body() -> None:
        link, client, upstream = make()
        parts = [bytes([i]) * (i + 1) for i in range(50)]
        for part in parts:
            link.client.data_received(part)
        assert client.reading
        assert client.pauses == 0
        start(link, upstream)
        assert upstream.written == b"".join(parts)
        link.client.data_received(b"after")
        assert upstream.written.endswith(b"after")

    run(body)


def test_holding_more_than_the_bound_stops_reading_until_the_start() -> None:
    async def body() -> None:
        link, client, upstream = make()
        piece = b"x" * 65536
        sent = 0
        while client.reading:
            link.client.data_received(piece)
            sent += len(piece)
        assert EARLY_HIGH < sent <= EARLY_HIGH + len(piece)
        start(link, upstream)
        assert client.reading
        assert len(upstream.written) == sent

    run(body)


def test_an_end_before_the_start_follows_the_held_bytes() -> None:
    async def body() -> None:
        link, _client, upstream = make()
        link.client.data_received(b"last words")
        link.client.eof_received()
        assert not upstream.closed
        start(link, upstream)
        assert upstream.written == b"last words"
        assert upstream.closed

    run(body)


def test_a_client_gone_before_the_start_still_delivers() -> None:
    async def body() -> None:
        link, _client, upstream = make()
        link.client.data_received(b"sent, then gone")
        link.client.connection_lost(None)
        assert link in link.proxy.links  # the dial is still to come
        start(link, upstream)
        assert upstream.written == b"sent, then gone"
        assert upstream.closed

    run(body)


def test_upstream_bytes_before_the_start_reach_the_client() -> None:
    async def body() -> None:
        link, client, upstream = make()
        link.upstream.connection_made(upstream)
        link.upstream.data_received(b"banner")  # before the dial's coroutine resumed
        assert client.written == b""
        link.dialled()
        assert client.written == b"banner"

    run(body)


def test_held_bytes_go_through_the_toxics_present_at_the_start() -> None:
    async def body() -> None:
        link, _client, upstream = make()
        link.proxy.toxics.add(
            b'{"type": "limit_data", "stream": "upstream", "attributes": {"bytes": 4}}'
        )
        link.client.data_received(b"abcdefgh")
        start(link, upstream)
        for _ in range(100):
            if upstream.closed:
                break
            await asyncio.sleep(0)
        assert upstream.written == b"abcd"
        assert upstream.closed

    run(body)


def test_counts_go_to_the_metrics_when_the_link_ends() -> None:
    async def body() -> None:
        metrics = ByteCounters()
        link, _client, upstream = make(metrics)
        link.client.data_received(b"12345")
        start(link, upstream)
        link.upstream.data_received(b"abc")
        assert metrics.received == {}  # nothing before the connection ends
        link.client.connection_lost(None)
        link.upstream.connection_lost(None)
        up = ("upstream", "127.0.0.1:1111", "p", "127.0.0.1:2222")
        down = ("downstream", "127.0.0.1:1111", "p", "127.0.0.1:2222")
        assert metrics.received == {up: 5, down: 3}
        assert metrics.sent == {up: 5, down: 3}

    run(body)
