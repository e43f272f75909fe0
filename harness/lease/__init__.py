"""harness.lease: a PostgreSQL client with signed, expiring leases, and its reaper.

Usable on its own (stdlib + psycopg 3 only; nothing else from ``harness``).

Layering, bottom to top (a module imports only from those above it in this list):

- ``errors``   the exception tree (drawn in its docstring)
- ``token``    the lease in ``application_name``: encode, parse, verify (pure)
- ``config``   ``LeaseConfig``, validated once
- ``retry``, ``fence``, ``decide``   the rules, as pure functions of their inputs:
  backoff and outcome rules; may this connection be used now; which rows to reap
- ``hooks``    calling the user's callbacks safely
- ``dedup``    the ``execute_once`` table and result codec
- ``reaper``   leader election, scan, guarded kill (SQL around ``decide``)
- ``client``   ``LeaseClient``: connections, heartbeat, fencing, retries, scheduling
"""

from harness.lease import token
from harness.lease.client import LeaseClient, Tx
from harness.lease.config import AUTO, LeaseConfig
from harness.lease.decide import ActivityRow, Candidate, Rules, decide
from harness.lease.dedup import DDL as DEDUP_DDL
from harness.lease.errors import (
    ConfigError,
    ConnectFailed,
    ConnectionDead,
    LeaseError,
    LeaseExpired,
    OutcomeUnknown,
    RetriesExhausted,
)
from harness.lease.fence import FenceAction, fence_action
from harness.lease.reaper import PassResult, Reaper
from harness.lease.retry import Outcome

__all__ = [
    "AUTO",
    "DEDUP_DDL",
    "ActivityRow",
    "Candidate",
    "ConfigError",
    "ConnectFailed",
    "ConnectionDead",
    "FenceAction",
    "LeaseClient",
    "LeaseConfig",
    "LeaseError",
    "LeaseExpired",
    "Outcome",
    "OutcomeUnknown",
    "PassResult",
    "Reaper",
    "RetriesExhausted",
    "Rules",
    "Tx",
    "decide",
    "fence_action",
    "token",
]
