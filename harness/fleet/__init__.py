"""harness.fleet: Lambda-like worker processes, their proxies, and the faults done to them.

Layering inside: ``protocol`` (every message, typed), ``classify`` (ok / fail /
info rules) and ``drivers`` (what a worker runs: the driver registry) are pure;
``channel`` is the one link to a worker process (a forkserver pipe, or any
program's stdin/stdout); ``worker`` is the Python worker process; ``procs`` (signals that
wait for their effect, /proc), ``links`` (a worker's proxy), ``sockets`` (holding
a reclaimed worker's sockets), ``schema`` (the workload tables) and ``pending``
(an op in flight) sit beside it; ``core`` (:class:`Fleet`: processes, routing,
freezes, the message log) builds on those, and ``nemesis`` (the faults) only on
``core``'s public methods.
"""

from harness.errors import FleetAtCapacity, FleetError, FleetTimeout, WorkerUnavailable
from harness.fleet.core import Diagnostic, Fleet, FleetConfig
from harness.fleet.nemesis import Nemesis
from harness.fleet.pending import OpResult, Pending
from harness.fleet.procs import assert_no_leftover_processes, leftover_processes
from harness.fleet.protocol import WorkerSpec

__all__ = [
    "Diagnostic",
    "Fleet",
    "FleetAtCapacity",
    "FleetConfig",
    "FleetError",
    "FleetTimeout",
    "Nemesis",
    "OpResult",
    "Pending",
    "WorkerSpec",
    "WorkerUnavailable",
    "assert_no_leftover_processes",
    "leftover_processes",
]
