"""One accepted client and its upstream connection, spliced together.

Without toxics in a direction, bytes read on one side are written straight to
the other transport from ``data_received`` (the fast path: no task, no copy,
no timestamp; asyncio reads up to 256 KiB at a time and sets TCP_NODELAY on
both sockets). With toxics, that direction goes through a :class:`Pipe`. As
in the real server there is no half-close: the end of either direction closes
its destination, and the other direction then ends in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import TYPE_CHECKING

from ._addr import split_host_port
from ._pipe import Pipe
from ._toxics import UPSTREAM, Toxic

if TYPE_CHECKING:
    from ._proxy import Proxy

_LINGER_ZERO = struct.pack("ii", 1, 0)


class Side(asyncio.Protocol):
    """One socket of a link: the source of one direction and the destination of the other."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.peer: Side = self
        self.transport: asyncio.Transport | None = None
        self.out: asyncio.Transport | None = None
        self.pipe: Pipe | None = None
        self.write_paused = False
        self.lost = False
        self.input_over = False
        self._blocks: set[str] = set()
        self._drain: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.link.connected(self)

    def data_received(self, data: bytes) -> None:
        pipe = self.pipe
        if pipe is None:
            out = self.out
            if out is not None:
                out.write(data)
        elif pipe.idle:
            self.pipe = None
            pipe.cancel()
            self.data_received(data)
        else:
            pipe.feed(data)

    def eof_received(self) -> bool:
        self._end_input()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.peer.out = None
        self._wake()
        self._end_input()
        self.link.lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        self.peer.block("peer")

    def resume_writing(self) -> None:
        self.write_paused = False
        self.peer.unblock("peer")
        self._wake()

    # -- as a destination (Dest) --------------------------------------------------
    def send(self, data: bytes) -> None:
        if not self.lost and self.transport is not None:
            self.transport.write(data)

    async def drained(self) -> None:
        while self.write_paused and not self.lost:
            waiter = asyncio.get_running_loop().create_future()
            self._drain = waiter
            await waiter

    def finish(self, reset: bool) -> None:
        """Close this socket (flushing what is buffered), or reset it and its peer."""
        transport = self.transport
        if transport is None or self.lost:
            return
        if reset:
            for side in (self, self.peer):
                _set_linger_zero(side.transport)
            transport.abort()
        else:
            transport.close()

    # -- as a source (Source) -----------------------------------------------------
    def block(self, reason: str) -> None:
        if not self._blocks and self.transport is not None:
            self.transport.pause_reading()
        self._blocks.add(reason)

    def unblock(self, reason: str) -> None:
        if reason in self._blocks:
            self._blocks.discard(reason)
            if not self._blocks and self.transport is not None:
                self.transport.resume_reading()

    def _end_input(self) -> None:
        if self.input_over or self.link.closed:
            return
        self.input_over = True
        if self.pipe is not None:
            self.pipe.end()
        else:
            self.peer.finish(False)

    def _wake(self) -> None:
        waiter = self._drain
        if waiter is not None:
            self._drain = None
            if not waiter.done():
                waiter.set_result(None)


def _set_linger_zero(transport: asyncio.Transport | None) -> None:
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)


class Link:
    """A client connection and its upstream, with the proxy's toxics applied live."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.client = Side(self)
        self.upstream = Side(self)
        self.client.peer = self.upstream
        self.upstream.peer = self.client
        self.closed = False
        self._dial: asyncio.Task[None] | None = None

    def connected(self, side: Side) -> None:
        if side is self.client:
            side.block("dial")
            self.proxy.links.add(self)
            self._dial = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        """Dial the upstream once for this client; a failed dial closes the client."""
        loop = asyncio.get_running_loop()
        try:
            host, port = split_host_port(self.proxy.upstream)
            await loop.create_connection(lambda: self.upstream, host or "localhost", port)
        except (OSError, ValueError):
            self.client.finish(False)
            return
        client, upstream = self.client, self.upstream
        if self.closed or client.lost:
            upstream.finish(False)
            return
        client.out = upstream.transport
        upstream.out = client.transport
        self.proxy.toxics.attach(self)
        client.unblock("dial")

    def _side_for(self, toxic: Toxic) -> Side:
        return self.client if toxic.direction == UPSTREAM else self.upstream

    def add_toxic(self, toxic: Toxic) -> None:
        side = self._side_for(toxic)
        if side.pipe is None:
            side.pipe = Pipe(side, side.peer)
            if side.input_over:
                side.pipe.sink.done = True
        side.pipe.add(toxic)

    def update_toxic(self, toxic: Toxic) -> None:
        pipe = self._side_for(toxic).pipe
        if pipe is not None:
            pipe.update(toxic)

    def remove_toxic(self, toxic: Toxic) -> None:
        side = self._side_for(toxic)
        pipe = side.pipe
        if pipe is not None:
            pipe.remove(toxic)
            if pipe.idle:
                side.pipe = None
                pipe.cancel()

    def lost(self, side: Side) -> None:
        if self.client.lost and (self.upstream.lost or self.upstream.transport is None):
            self._release()

    def close(self) -> None:
        """Close both connections now (the proxy was disabled, deleted or moved)."""
        if self.closed:
            return
        self.closed = True
        if self._dial is not None:
            self._dial.cancel()
        for side in (self.client, self.upstream):
            if side.transport is not None:
                side.transport.abort()
        self._release()

    def _release(self) -> None:
        self.closed = True
        for side in (self.client, self.upstream):
            if side.pipe is not None:
                side.pipe.cancel()
        self.proxy.links.discard(self)
        self.proxy.toxics.detach(self)
