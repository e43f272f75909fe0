"""What each toxic type does to one direction of one connection.

Each behaviour is a coroutine driven by a :class:`Stage`: it takes items with
``get()`` and passes data on with ``forward`` / ``emit``. Whatever it has taken
but not yet passed on is "held" (``get`` holds the item; ``hold`` replaces it
with a remainder; ``drop`` and ``forward`` release it), so that removing or
updating the toxic can flush it instead of losing it. Behaviours read their
attributes afresh for every chunk; an update restarts the coroutine, and what
must survive a restart lives in ``stage.state``. Times are loop times
(seconds); attributes are in the units of the Toxiproxy API.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Protocol

from ._chunks import Chunk, End, Item


class Stage(Protocol):
    """The view a behaviour has of its place in the chain."""

    @property
    def attrs(self) -> dict[str, int]: ...

    @property
    def state(self) -> dict[str, Any]: ...

    def now(self) -> float: ...

    async def get(self) -> Item: ...

    def forward(self, item: Item) -> None: ...

    def emit(self, item: Item) -> None: ...

    def hold(self, item: Item) -> None: ...

    def drop(self) -> None: ...

    def close(self) -> None: ...


async def noop(st: Stage) -> None:
    while True:
        item = await st.get()
        st.forward(item)
        if isinstance(item, End):
            return


async def latency(st: Stage) -> None:
    """Delay each chunk by latency ± jitter counted from its read time; stamps add up."""
    while True:
        item = await st.get()
        if isinstance(item, End):
            st.forward(item)
            return
        delay = st.attrs["latency"]
        jitter = st.attrs["jitter"]
        if jitter > 0:
            delay += random.randrange(jitter * 2) - jitter
        due = item.ts + delay / 1000.0
        wait = due - st.now()
        if wait > 0:
            await asyncio.sleep(wait)
        item.ts = due
        st.forward(item)


async def bandwidth(st: Stage) -> None:
    """Limit to ``rate`` KB/s; chunks bigger than 100 ms worth go out in 100 ms pieces."""
    debt = 0.0
    while True:
        item = await st.get()
        if isinstance(item, End):
            st.forward(item)
            return
        rate = st.attrs["rate"]
        data = item.data
        debt += len(data) / (rate * 1000.0)
        piece = rate * 100
        while len(data) > piece:
            await asyncio.sleep(0.1)
            st.emit(Chunk(data[:piece], item.ts))
            data = data[piece:]
            st.hold(Chunk(data, item.ts))
            debt -= 0.1
        start = st.now()
        await asyncio.sleep(max(debt, 0.0))
        debt -= st.now() - start
        st.forward(Chunk(data, item.ts))


async def slow_close(st: Stage) -> None:
    """Pass data; pass the close on ``delay`` ms after it came."""
    while True:
        item = await st.get()
        if isinstance(item, End):
            delay = st.attrs["delay"]
            if delay > 0:
                await asyncio.sleep(delay / 1000.0)
            st.forward(item)
            return
        st.forward(item)


async def timeout(st: Stage) -> None:
    """A blackhole: drop everything, the end of the stream included; close ``timeout`` ms
    after the last chunk, or (with 0) only when the toxic is removed.

    The real server passes the end straight on; swallowing it is what "with 0, never
    close until the toxic is removed" asks, and what lets a blackholed link keep the
    server's backend as a zombie after its client died.
    """
    while True:
        limit = st.attrs["timeout"]
        try:
            if limit > 0:
                async with asyncio.timeout(limit / 1000.0):
                    await st.get()
            else:
                await st.get()
        except TimeoutError:
            st.close()
            return
        st.drop()


async def reset_peer(st: Stage) -> None:
    """After the first chunk (or the end), wait ``timeout`` ms, then close the connection.

    The close is an RST because the link set ``SO_LINGER`` 0 when it started with
    this toxic present (see ``_link``); on a link that was already running when the
    toxic was added it is a FIN, as measured on the real server.
    """
    fired = st.state.get("fired")
    if fired is None:
        await st.get()
        st.drop()
        fired = st.state["fired"] = st.now()
    wait = fired + st.attrs["timeout"] / 1000.0 - st.now()
    if wait > 0:
        await asyncio.sleep(wait)
    st.close()


def slice_points(length: int, average: int, variation: int, rng: random.Random) -> list[int]:
    """End offsets of the pieces a slicer cuts ``length`` bytes into (``average`` >= 1).

    Halves recursively with a random shift of up to ``variation`` until a piece
    is at most ``average + variation`` long, like the real slicer, but keeps
    every cut strictly inside its piece so that no input can loop or crash.
    """
    out: list[int] = []
    todo = [(0, length)]
    while todo:
        start, end = todo.pop()
        if (end - start) - average <= variation:
            out.append(end)
            continue
        mid = start + (end - start) // 2
        if variation > 0:
            mid += rng.randrange(variation * 2) - variation
        mid = min(max(mid, start + 1), end - 1)
        todo.append((mid, end))
        todo.append((start, mid))
    return out


_SLICER_RNG = random.Random()


async def slicer(st: Stage) -> None:
    """Cut chunks into pieces of about average_size ± size_variation, ``delay`` µs apart."""
    while True:
        item = await st.get()
        if isinstance(item, End):
            st.forward(item)
            return
        attrs = st.attrs
        data = item.data
        points = slice_points(
            len(data), attrs["average_size"], attrs["size_variation"], _SLICER_RNG
        )
        delay = attrs["delay"] / 1_000_000.0
        start = 0
        for end in points:
            st.emit(Chunk(data[start:end], item.ts))
            start = end
            if start < len(data):
                st.hold(Chunk(data[start:], item.ts))
            else:
                st.drop()
            if delay > 0:
                await asyncio.sleep(delay)


async def limit_data(st: Stage) -> None:
    """Pass up to ``bytes`` bytes, then close; the count survives updates."""
    st.state.setdefault("sent", 0)
    while True:
        item = await st.get()
        if isinstance(item, End):
            st.forward(item)
            return
        limit = st.attrs["bytes"]
        remaining = max(limit - st.state["sent"], 0)
        data = item.data[:remaining] if remaining < len(item.data) else item.data
        if data:
            st.state["sent"] += len(data)
            st.forward(Chunk(data, item.ts))
        else:
            st.drop()
        if limit - st.state["sent"] <= 0:
            st.close()
            return
