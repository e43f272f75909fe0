"""harness.observe: what the server saw, recorded beside the history.

- ``sampler``    ``pg_stat_activity`` many times a second (``ActivitySampler``)
- ``serverlog``  the server log's terminations, cross-checked against the reaper's ledger,
                 its 53300 refusals, and every connection it authorized
"""

from harness.observe.sampler import ActivitySampler
from harness.observe.serverlog import (
    KillCrossCheck,
    connection_events,
    cross_check_kills,
    parse_log,
    refusal_events,
    refusals,
    terminations,
    terminations_from_log,
)

__all__ = [
    "ActivitySampler",
    "KillCrossCheck",
    "connection_events",
    "cross_check_kills",
    "parse_log",
    "refusal_events",
    "refusals",
    "terminations",
    "terminations_from_log",
]
