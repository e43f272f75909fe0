"""harness.observe: what the server saw, recorded beside the history.

- ``sampler``    ``pg_stat_activity`` many times a second (``ActivitySampler``)
- ``serverlog``  the server log's terminations, cross-checked against the reaper's ledger,
                 and its 53300 refusals
"""

from harness.observe.sampler import ActivitySampler
from harness.observe.serverlog import (
    KillCrossCheck,
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
    "cross_check_kills",
    "parse_log",
    "refusal_events",
    "refusals",
    "terminations",
    "terminations_from_log",
]
