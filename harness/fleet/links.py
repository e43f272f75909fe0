"""One worker's link to PostgreSQL: its own proxy on the Toxiproxy server, and its toxics.

Built on :class:`harness.infra.toxiproxy.Proxy`; adds only what the fleet needs
on top: the *blackhole* (a ``timeout`` toxic with timeout 0 in both directions,
so a frozen or reclaimed worker's backend stays on the server as a true zombie),
and clearing every toxic this link knows of or the server reports.

Facts (TOXIPROXY_API.md): removing a ``timeout`` toxic closes the connections
it held; disabling a proxy closes every connection through it at once; toxics
survive a disable.
"""

from __future__ import annotations

import contextlib

from harness.errors import ToxiproxyNotFound
from harness.infra.toxiproxy import Proxy, ToxiproxyServer

BLACKHOLE = ("blackhole_up", "blackhole_down")


class WorkerLink:
    """The proxy in front of PostgreSQL for one worker."""

    def __init__(self, server: ToxiproxyServer, name: str, upstream: tuple[str, int]) -> None:
        self.name = name
        self.proxy: Proxy = server.create_proxy(name, upstream)
        self.server = server
        self.deleted = False

    @property
    def host(self) -> str:
        return self.proxy.host

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def blackholed(self) -> bool:
        return BLACKHOLE[0] in self.proxy.toxics()

    def add(self, type: str, *, name: str, stream: str = "downstream", **attributes: int) -> None:
        """Add toxic ``name``, or update it in place if it is already there."""
        if name in self.proxy.toxics():
            self.proxy.update_toxic(name, **attributes)
        else:
            self.proxy.add_toxic(type, name=name, stream=stream, **attributes)

    def remove(self, name: str) -> bool:
        """Remove toxic ``name``; False if it was not there."""
        try:
            self.proxy.remove_toxic(name)
        except ToxiproxyNotFound:
            return False
        return True

    def blackhole(self) -> None:
        """Drop everything in both directions and never close (``timeout`` 0)."""
        self.add("timeout", name=BLACKHOLE[0], stream="upstream", timeout=0)
        self.add("timeout", name=BLACKHOLE[1], stream="downstream", timeout=0)

    def unblackhole(self) -> bool:
        """Remove the blackhole (this closes the connections it held); False if none."""
        removed = [self.remove(n) for n in BLACKHOLE]
        return any(removed)

    def disable(self) -> None:
        self.proxy.disable()

    def enable(self) -> None:
        self.proxy.enable()

    def clear(self) -> list[str]:
        """Remove every toxic and enable the proxy; the names removed."""
        removed = [n for n in self.proxy.toxics() if self.remove(n)]
        self.proxy.refresh()
        if not self.proxy.enabled:
            self.proxy.enable()
        return removed

    def delete(self) -> None:
        """Delete the proxy (closes every connection through it). Idempotent."""
        if self.deleted:
            return
        self.deleted = True
        with contextlib.suppress(ToxiproxyNotFound):
            self.server.delete_proxy(self.name)
