"""What flows through a toxic chain: data chunks stamped with their read time, and the end."""

from __future__ import annotations


class Chunk:
    """Bytes read from one side, with the loop time at which they were read."""

    __slots__ = ("data", "ts")

    def __init__(self, data: bytes, ts: float) -> None:
        self.data = data
        self.ts = ts


class End:
    """The stream is over: close the destination (with a TCP RST when ``reset``)."""

    __slots__ = ("reset",)

    def __init__(self, reset: bool = False) -> None:
        self.reset = reset


Item = Chunk | End


def size(item: Item) -> int:
    return len(item.data) if isinstance(item, Chunk) else 0
