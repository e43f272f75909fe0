"""What flows through a toxic chain: data chunks stamped with their read time, and the end."""

from __future__ import annotations


class Chunk:
    """Bytes read from one side, with the loop time at which they were read."""

    __slots__ = ("data", "ts")

    def __init__(self, data: bytes, ts: float) -> None:
        self.data = data
        self.ts = ts


class End:
    """The stream is over: close the destination.

    A close is a TCP RST only on a link that started while the proxy had a
    ``reset_peer`` toxic (``SO_LINGER`` 0, set by ``_link``), as in the real server.
    """

    __slots__ = ()


Item = Chunk | End


def size(item: Item) -> int:
    return len(item.data) if isinstance(item, Chunk) else 0
