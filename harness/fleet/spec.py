"""What a worker is told when it is cold-started, and the messages of the pipe protocol.

Every message is a small picklable dict with a ``kind``. Worker to controller,
each also stamped by the worker with its own ``time`` (``time.monotonic()``,
shared by all processes on Linux) and ``wall`` (true ``time.time()``):

- ``ready``: the init phase is over (the client is built; nothing is connected).
- ``hook``: ``hook`` (the lease client's hook name) and ``payload`` (its dict).
- ``invoke``: ``op``, ``f``, ``value``, ``lease_valid``, ``backend_pid``.
- ``paused``: ``op``, ``at`` (``tx``, ``locked``, ``scanned``): blocked until ``continue``.
- ``complete``: ``op``, ``type`` (ok/fail/info), ``result``, ``error``, ``backend_pid``.
- ``crash``: ``traceback``: sent just before the worker dies of an unhandled exception.

Controller to worker: ``invoke`` (``op``, ``f``, ``args``), ``continue``,
``skew`` (``seconds``: the worker's lease clock becomes ``time.time() + seconds``),
``stop`` (close the client and exit 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CLIENT = "harness.lease:LeaseClient"

OP_FS: frozenset[str] = frozenset(
    {"write", "write_once", "read", "slow_read", "long_tx", "burst", "reap"}
)
PAUSE_POINTS: frozenset[str] = frozenset({"locked", "scanned"})
"""Where a ``reap`` op may pause (``on_reap`` events)."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a cold-started worker needs; pickled to the forkserver."""

    name: str
    """History name, e.g. ``w3``."""
    slot: int
    """This worker's row in ``hot`` (1-based)."""
    conninfo: str
    """libpq conninfo pointing at the worker's OWN proxy."""
    lease: Mapping[str, Any] = field(default_factory=dict)
    """``LeaseConfig`` keyword arguments, except ``clock`` (the worker supplies its own)."""
    client_class: str = DEFAULT_CLIENT
    """``module:Class`` of the client to build (the bug zoo substitutes subclasses)."""
    client_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the client class."""
