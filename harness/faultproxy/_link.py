"""One accepted client and its upstream connection, spliced together.

A link starts when the upstream dial succeeds, as in the real server, which
reads a client only from then on. Until then whatever either socket delivers is
held in order (up to ``EARLY_HIGH`` bytes a side, above which that side stops
reading), and an end of stream that comes meanwhile is kept; when the link
starts, the proxy's toxics are attached, the held bytes go through them first
and the end follows. This does not rest on ``pause_reading`` inside
``connection_made``, which CPython 3.11.2 ignores and 3.11.7 honours. A failed
dial closes the client and drops what it sent.

Without toxics in a direction, bytes read on one side are written straight to
the other transport from ``data_received`` (the fast path: no task, no copy,
no timestamp; asyncio reads up to 256 KiB at a time and sets TCP_NODELAY on
both sockets). With toxics, that direction goes through a :class:`Pipe`. As
in the real server there is no half-close: the end of either direction closes
its destination, and the other direction then ends in turn.

As in the real server, a link that starts while the proxy has a ``reset_peer``
toxic gets ``SO_LINGER`` 0 on both sockets, so every close of that link is a
TCP RST; a ``reset_peer`` added to a link already running closes it with a FIN.

Each side counts the bytes it read and the bytes its direction wrote to the
other socket; when the link is released they go to the proxy's byte counters
(``_metrics``), as the real server adds them when a direction ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import TYPE_CHECKING

from ._addr import split_host_port
from ._pipe import Pipe
from ._toxics import DOWNSTREAM, UPSTREAM, Toxic

if TYPE_CHECKING:
    from ._proxy import Proxy

EARLY_HIGH = 1024 * 1024
"""Bytes a side holds before its link starts; above this it stops reading until then."""

_LINGER_ZERO = struct.pack("ii", 1, 0)


class Side(asyncio.Protocol):
    """One socket of a link: the source of one direction and the destination of the other."""

    def __init__(self, link: Link, direction: str) -> None:
        self.link = link
        self.direction = direction
        """The direction this side is the source of (the client's is ``upstream``)."""
        self.peer: Side = self
        self.transport: asyncio.Transport | None = None
        self.out: asyncio.Transport | None = None
        self.pipe: Pipe | None = None
        self.early: list[bytes] | None = []
        """What arrived before the link started (``None`` once it has)."""
        self.early_size = 0
        self.received = 0
        self.sent = 0
        self.write_paused = False
        self.lost = False
        self.input_over = False
        self.end_passed = False
        self._blocks: set[str] = set()
        self._drain: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.link.connected(self)

    def data_received(self, data: bytes) -> None:
        n = len(data)
        self.received += n
        out = self.out
        if out is not None and self.pipe is None:
            self.sent += n
            out.write(data)
        else:
            self._forward(data)

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

    # -- as a source ------------------------------------------------------------
    def _forward(self, data: bytes) -> None:
        """Pass ``data`` on: through the pipe, straight out, held (not started), or dropped."""
        pipe = self.pipe
        if pipe is not None and pipe.idle:
            self.pipe = None
            pipe.cancel()
            pipe = None
        if pipe is not None:
            pipe.feed(data)
        elif self.out is not None:
            self.sent += len(data)
            self.out.write(data)
        elif self.early is not None:
            self.early.append(data)
            self.early_size += len(data)
            if self.early_size > EARLY_HIGH:
                self.block("early")
        # otherwise the destination is gone: the bytes have nowhere to go

    def start(self) -> None:
        """The link has started: pass on, in order, what was held, then a held end."""
        early, self.early = self.early, None
        for data in early or ():
            self._forward(data)
        self.unblock("early")
        if self.input_over and not self.link.closed:
            self._pass_end()

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
        if self.early is None:
            self._pass_end()

    def _pass_end(self) -> None:
        self.end_passed = True
        if self.pipe is not None:
            self.pipe.end()
        else:
            self.peer.finish()

    # -- as a destination (Dest) --------------------------------------------------
    def send(self, data: bytes) -> None:
        if not self.lost and self.transport is not None:
            self.peer.sent += len(data)
            self.transport.write(data)

    async def drained(self) -> None:
        while self.write_paused and not self.lost:
            waiter = asyncio.get_running_loop().create_future()
            self._drain = waiter
            await waiter

    def finish(self) -> None:
        """Close this socket once what is buffered is written (an RST if the link started
        under a ``reset_peer`` toxic: see the module docstring)."""
        transport = self.transport
        if transport is not None and not self.lost:
            transport.close()

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
        self.client = Side(self, UPSTREAM)
        self.upstream = Side(self, DOWNSTREAM)
        self.client.peer = self.upstream
        self.upstream.peer = self.client
        self.dialling = False
        self.closed = False
        self._released = False
        self._labels: tuple[str, str, str] | None = None
        self._dial: asyncio.Task[None] | None = None

    def connected(self, side: Side) -> None:
        if side is self.client:
            self.proxy.links.add(self)
            self.dialling = True
            self._dial = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        """Dial the upstream once for this client; a failed dial closes the client."""
        loop = asyncio.get_running_loop()
        try:
            host, port = split_host_port(self.proxy.upstream)
            await loop.create_connection(lambda: self.upstream, host or "localhost", port)
        except (OSError, ValueError):
            self._dial = None
            self.dialling = False
            self.client.early = None
            self.client.finish()
            self.lost(self.client)
            return
        self._dial = None
        self.dialled()

    def dialled(self) -> None:
        """The upstream socket exists: start the link, unless it was closed meanwhile."""
        self.dialling = False
        if self.closed:
            self.upstream.finish()
            return
        self._start()

    def _start(self) -> None:
        """Splice the two sockets, attach the toxics, then let the held bytes through."""
        client, upstream = self.client, self.upstream
        proxy = self.proxy
        self._labels = (proxy.name, proxy.listen, proxy.upstream)
        if proxy.toxics.has_type("reset_peer"):
            _set_linger_zero(client.transport)
            _set_linger_zero(upstream.transport)
        client.out = None if upstream.lost else upstream.transport
        upstream.out = None if client.lost else client.transport
        proxy.toxics.attach(self)
        client.start()
        upstream.start()
        self.lost(client)

    def _side_for(self, toxic: Toxic) -> Side:
        return self.client if toxic.direction == UPSTREAM else self.upstream

    def add_toxic(self, toxic: Toxic) -> None:
        side = self._side_for(toxic)
        if side.pipe is None:
            side.pipe = Pipe(side, side.peer)
            if side.end_passed:
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
        """Release the link once no dial is pending and neither socket is left."""
        if not self.dialling and self.client.lost:
            upstream = self.upstream
            if upstream.lost or upstream.transport is None:
                self._release()

    def close(self) -> None:
        """Close both connections now (the proxy was disabled, deleted or moved)."""
        if self.closed:
            return
        self.closed = True
        if self._dial is not None:
            self._dial.cancel()
            self._dial = None
        self.dialling = False
        for side in (self.client, self.upstream):
            side.early = None
            if side.transport is not None:
                side.transport.abort()
        self._release()

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        self.closed = True
        for side in (self.client, self.upstream):
            if side.pipe is not None:
                side.pipe.cancel()
        self.proxy.links.discard(self)
        self.proxy.toxics.detach(self)
        if self._labels is not None and self.proxy.metrics is not None:
            name, listen, upstream = self._labels
            for side in (self.client, self.upstream):
                self.proxy.metrics.add(
                    side.direction, name, listen, upstream, side.received, side.sent
                )
