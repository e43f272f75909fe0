"""Every error the harness raises on purpose, in one tree (the lease client has its own).

Each class says whose fault it was and what it does to a run's verdict::

    HarnessError
    ├── UsageError              the user asked for something that cannot be done
    │                           (bad option, unknown scenario): one line, exit 2
    ├── SetupError              a real component could not be started or reached:
    │   │                       the run cannot be judged, exit 2
    │   ├── PostgresBinariesNotFound
    │   └── ProxyServerUnavailable
    ├── HarnessFault            the harness's own machinery misbehaved during a run
    │                           (a proxy that lost bytes, a sampler that fell behind):
    │                           the run is unjudged, never the client's failure, exit 2
    ├── HistoryFormatError      a recorded file is malformed: it cannot be judged, exit 2
    ├── ProtocolError           a worker sent a line that is not a message of the worker
    │                           protocol (the worker's program is broken, not the database)
    ├── ToxiproxyApiError       a Toxiproxy server refused a request (status, message)
    │   ├── ToxiproxyNotFound   404: no such proxy or toxic
    │   └── ToxiproxyConflict   409: that proxy or toxic already exists
    ├── WaitTimeout             something waited for did not happen by its deadline;
    │   │                       the message names what was awaited and what was seen
    │   └── SignalTimeout       a process did not reach the state a signal asks for
    └── FleetError              the fleet could not do what was asked
        ├── FleetAtCapacity     no idle worker, and the concurrency cap forbids a cold start
        ├── WorkerUnavailable   the named worker cannot take this (busy, dead, unknown)
        ├── PauseNotReached     an op ended before the point where a fault was to strike
        └── FleetTimeout        (also a WaitTimeout) an op or sync point did not come in time

Not in the tree, on purpose: ``harness.chaos.judge.PropertyViolation`` is an
``AssertionError`` that carries a *verdict* (the client broke a property),
which is what Hypothesis shrinks; it is the client's failure, not an error of
the harness.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class UsageError(HarnessError):
    """The user asked for something that cannot be done (bad option, unknown scenario)."""


class SetupError(HarnessError):
    """A real component could not be started or reached; the run cannot be judged."""


class PostgresBinariesNotFound(SetupError):
    """initdb / pg_ctl / postgres were not found where the harness looks."""


class ProxyServerUnavailable(SetupError):
    """No Toxiproxy-compatible server could be started or reached."""


class HarnessFault(HarnessError):
    """The harness's own machinery misbehaved; what it recorded cannot be trusted."""


class HistoryFormatError(HarnessError):
    """A history file or event is malformed; the run cannot be judged (exit status 2)."""


class ProtocolError(HarnessError):
    """A worker sent a line that is not a message of the worker protocol."""


class ToxiproxyApiError(HarnessError):
    """A Toxiproxy server answered a request with an error: the request was wrong."""

    def __init__(self, status: int, message: str, request: str) -> None:
        super().__init__(f"{request}: {status} {message}")
        self.status = status
        self.message = message
        self.request = request


class ToxiproxyNotFound(ToxiproxyApiError):
    """404: the proxy or toxic named does not exist."""


class ToxiproxyConflict(ToxiproxyApiError):
    """409: a proxy or toxic of that name already exists."""


class WaitTimeout(HarnessError):
    """Something waited for did not happen before its deadline."""


class SignalTimeout(WaitTimeout):
    """A process did not reach the state a signal should have put it in, in time."""


class FleetError(HarnessError):
    """Base of the fleet's own errors."""


class FleetAtCapacity(FleetError):
    """No idle worker, and the concurrency cap forbids a cold start."""


class WorkerUnavailable(FleetError):
    """The named worker cannot take this request (busy, dead or unknown)."""


class PauseNotReached(FleetError):
    """The operation ended before it reached the point where the fault was to strike."""


class FleetTimeout(FleetError, WaitTimeout):
    """An op or a sync point of the fleet did not come before its deadline."""
