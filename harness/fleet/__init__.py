"""harness.fleet: Lambda-like worker processes, their proxies, and the faults done to them.

Layering: ``spec`` (what a worker is told, the pipe protocol) and ``_classify``
(ok/fail/info rules) are pure; ``_worker`` is the worker process; ``procs``
(signals that wait for their effect, /proc), ``links`` (a worker's proxy),
``schema`` (the workload tables) and ``pending`` sit beside it; ``_core``
(``FleetCore``: processes, routing, reader threads, event log) builds on those,
and ``fleet`` (``Fleet``: the faults) on the core.
"""

from harness.fleet.fleet import Fleet, FleetConfig
from harness.fleet.pending import (
    FleetAtCapacity,
    FleetError,
    FleetTimeout,
    OpResult,
    Pending,
    WorkerUnavailable,
)
from harness.fleet.procs import assert_no_leftover_processes, leftover_processes
from harness.fleet.spec import WorkerSpec

__all__ = [
    "Fleet",
    "FleetAtCapacity",
    "FleetConfig",
    "FleetError",
    "FleetTimeout",
    "OpResult",
    "Pending",
    "WorkerSpec",
    "WorkerUnavailable",
    "assert_no_leftover_processes",
    "leftover_processes",
]
