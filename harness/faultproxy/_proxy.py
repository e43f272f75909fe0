"""A named proxy: its listener, its live links, its toxics; start and stop."""

from __future__ import annotations

import asyncio
from typing import Any

from ._addr import bind_listener
from ._link import Link
from ._metrics import ByteCounters
from ._toxicset import ToxicSet


class Proxy:
    """Listens on ``listen`` and splices each client to ``upstream`` while enabled.

    ``metrics``, when the server counts bytes (``-proxy-metrics``), receives each
    connection's counts when it ends.
    """

    def __init__(
        self, name: str, listen: str, upstream: str, metrics: ByteCounters | None = None
    ) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.metrics = metrics
        self.toxics = ToxicSet()
        self.links: set[Link] = set()
        self._server: asyncio.Server | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in self.toxics.all()],
        }

    async def start(self) -> None:
        """Listen (``listen`` becomes the bound address); a bind failure is a 500."""
        if self.enabled:
            return
        sock, bound = bind_listener(self.listen)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: Link(self).client, sock=sock, backlog=1024
            )
        except BaseException:
            sock.close()
            raise
        self.listen = bound
        self.enabled = True

    def stop(self) -> None:
        """Close the listener and every client and upstream connection; toxics stay."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self.links):
            link.close()

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Apply a proxy update the way the real server does (moving restarts it)."""
        if listen != self.listen or upstream != self.upstream:
            was_enabled = self.enabled
            self.stop()
            self.listen = listen
            self.upstream = upstream
            if was_enabled and enabled:
                await self.start()
                return
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            self.stop()
