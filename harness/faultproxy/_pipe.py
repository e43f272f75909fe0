"""One direction of one connection while it has toxics: a chain of stages and a sink.

Data read from the source is stamped and pushed into the first stage; each
stage runs its toxic's behaviour as a task and pushes on to the next; the sink
writes to the destination. Queues between stages are unbounded but the pipe
counts what they hold and pauses the source above ``HIGH`` bytes. Toxics are
added at the end of the chain, updated in place (the behaviour restarts with
what it held put back first) and removed with what they held flushed onwards
(or, for an acting ``timeout``, with the connection closed).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from typing import Any, Protocol

from . import _behaviours as behave
from ._chunks import Chunk, End, Item, size
from ._toxics import Toxic

HIGH = 8 * 1024 * 1024
LOW = 2 * 1024 * 1024

log = logging.getLogger(__name__)


class Source(Protocol):
    def block(self, reason: str) -> None: ...

    def unblock(self, reason: str) -> None: ...


class Dest(Protocol):
    @property
    def write_paused(self) -> bool: ...

    def send(self, data: bytes) -> None: ...

    async def drained(self) -> None: ...

    def finish(self) -> None: ...


class Sink:
    """Writes what reaches the end of the chain, honouring the destination's flow control."""

    def __init__(self, pipe: Pipe, dest: Dest) -> None:
        self.pipe = pipe
        self.dest = dest
        self.queue: deque[Item] = deque()
        self.done = False
        self._task: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return not self.queue and self._task is None

    def push(self, item: Item) -> None:
        if self.done:
            return
        if self.idle and not self.dest.write_paused:
            if isinstance(item, Chunk):
                self.dest.send(item.data)
            else:
                self.done = True
                self.dest.finish()
            return
        self.queue.append(item)
        self.pipe.account(size(item))
        if self._task is None:
            self._task = self.pipe.loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.queue:
                if self.dest.write_paused:
                    await self.dest.drained()
                item = self.queue.popleft()
                self.pipe.account(-size(item))
                if isinstance(item, Chunk):
                    self.dest.send(item.data)
                else:
                    self.done = True
                    self.queue.clear()
                    self.dest.finish()
        finally:
            self._task = None

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.queue.clear()


class Stage:
    """One toxic acting on one direction of one connection (implements ``behave.Stage``)."""

    def __init__(self, pipe: Pipe, toxic: Toxic) -> None:
        self.pipe = pipe
        self.toxic = toxic
        self.next: Stage | Sink = pipe.sink
        self.queue: deque[Item] = deque()
        self.holding: Item | None = None
        self.closed = False
        self._state: dict[str, Any] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._drawn_for = toxic.toxicity
        self.active = random.random() < toxic.toxicity

    # -- the behaviour's view -------------------------------------------------
    @property
    def attrs(self) -> dict[str, int]:
        return self.toxic.attributes

    @property
    def state(self) -> dict[str, Any]:
        return self._state

    def now(self) -> float:
        return self.pipe.loop.time()

    async def get(self) -> Item:
        while not self.queue:
            waiter = self.pipe.loop.create_future()
            self._waiter = waiter
            await waiter
        item = self.queue.popleft()
        self.pipe.account(-size(item))
        self.holding = item
        return item

    def forward(self, item: Item) -> None:
        self.holding = None
        self.next.push(item)

    def emit(self, item: Item) -> None:
        self.next.push(item)

    def hold(self, item: Item) -> None:
        self.holding = item

    def drop(self) -> None:
        self.holding = None

    def close(self) -> None:
        self.holding = None
        self.closed = True
        self._discard_queue()
        self.next.push(End())

    # -- the pipe's view ------------------------------------------------------
    def push(self, item: Item) -> None:
        if self.closed:
            return
        self.queue.append(item)
        self.pipe.account(size(item))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def start(self) -> None:
        self._task = self.pipe.loop.create_task(self._run())

    async def _run(self) -> None:
        run = self.toxic.kind.run if self.active else behave.noop
        try:
            await run(self)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("toxic %s failed; closing its connection", self.toxic.name)
            if not self.closed:
                self.close()
        self.closed = True
        self._discard_queue()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._waiter = None

    def restart(self) -> None:
        """Apply an update: put back what was held, redraw if toxicity changed, run again."""
        if self.closed:
            return
        self.stop()
        if self.holding is not None:
            self.queue.appendleft(self.holding)
            self.pipe.account(size(self.holding))
            self.holding = None
        if self.toxic.toxicity != self._drawn_for:
            self._drawn_for = self.toxic.toxicity
            self.active = random.random() < self.toxic.toxicity
        self.start()

    def remove(self) -> None:
        """Leave the chain: flush what is held onwards, or close if an acting timeout."""
        self.stop()
        if self.closed:
            return
        if self.toxic.kind.closes_on_removal and self.active:
            self.close()
            return
        items = [self.holding] if self.holding is not None else []
        self.holding = None
        items.extend(self.queue)
        self._discard_queue()
        self.closed = True
        for item in items:
            self.next.push(item)

    def _discard_queue(self) -> None:
        if self.queue:
            self.pipe.account(-sum(size(item) for item in self.queue))
            self.queue.clear()


class Pipe:
    """The toxic chain of one direction of one connection."""

    def __init__(self, source: Source, dest: Dest) -> None:
        self.loop = asyncio.get_running_loop()
        self.source = source
        self.stages: list[Stage] = []
        self.sink = Sink(self, dest)
        self.queued = 0
        self._blocked = False

    @property
    def head(self) -> Stage | Sink:
        return self.stages[0] if self.stages else self.sink

    @property
    def idle(self) -> bool:
        """No toxics and nothing in flight: the connection may bypass the pipe."""
        return not self.stages and self.sink.idle and not self.sink.done

    def feed(self, data: bytes) -> None:
        self.head.push(Chunk(data, self.loop.time()))

    def end(self) -> None:
        self.head.push(End())

    def account(self, delta: int) -> None:
        self.queued += delta
        if not self._blocked and self.queued > HIGH:
            self._blocked = True
            self.source.block("pipe")
        elif self._blocked and self.queued < LOW:
            self._blocked = False
            self.source.unblock("pipe")

    def _index(self, toxic: Toxic) -> int:
        for i, stage in enumerate(self.stages):
            if stage.toxic is toxic:
                return i
        raise LookupError(toxic.name)

    def add(self, toxic: Toxic) -> None:
        stage = Stage(self, toxic)
        if self.stages:
            self.stages[-1].next = stage
        self.stages.append(stage)
        stage.start()

    def update(self, toxic: Toxic) -> None:
        self.stages[self._index(toxic)].restart()

    def remove(self, toxic: Toxic) -> None:
        i = self._index(toxic)
        stage = self.stages.pop(i)
        stage.remove()
        if i > 0:
            self.stages[i - 1].next = stage.next

    def cancel(self) -> None:
        for stage in self.stages:
            stage.stop()
        self.sink.cancel()
        if self._blocked:
            self._blocked = False
            self.source.unblock("pipe")
