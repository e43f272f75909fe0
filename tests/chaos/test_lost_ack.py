"""A lost answer to COMMIT, provoked for real: the case ``execute_once``'s key exists for.

The worker pauses just before its client sends COMMIT, the proxy starts dropping
what the server sends, COMMIT goes out and commits, and its answer never arrives;
the toxic goes at the client's first error, so its retry reaches the server. The
correct client returns the original result with one ledger row; a client that
retries the transaction without its key writes twice, and P3 says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.chaos.env import ChaosEnv
from harness.chaos.steps import AckLost, Invoke
from harness.chaos.zoo import Bug
from harness.history import Event, FaultEvent, OpEvent

SCHEDULE = (Invoke("write"), AckLost("write_once"))


def _lost_commit_op(history: Sequence[Event]) -> str:
    faults = [
        e
        for e in history
        if isinstance(e, FaultEvent) and e.f == "ack_lost" and e.value.get("f") == "write_once"
    ]
    assert len(faults) == 1, faults
    return str(faults[0].value["op"])


def test_a_lost_answer_to_commit_is_retried_and_applied_once(chaos: ChaosEnv) -> None:
    judged = chaos.run(SCHEDULE)
    assert judged.ok, judged.explain_failures()
    history = list(judged.run.events)
    op = _lost_commit_op(history)
    events = [e for e in history if isinstance(e, OpEvent) and e.op == op]
    assert [e.type for e in events] == ["invoke", "ok"], events
    invoked, ended = events
    # the first attempt's connection was lost after COMMIT; the retry ran on a new one
    assert invoked.backend_pid != ended.backend_pid, events
    healed = [
        e
        for e in history
        if isinstance(e, FaultEvent) and e.f == "heal" and e.value.get("op") == op
    ]
    assert healed, "the toxic was never removed"
    assert healed[0].time < ended.time, "the toxic stayed until the op ended"


def test_execute_once_without_its_key_is_caught_writing_twice(chaos: ChaosEnv) -> None:
    bug = Bug(
        0,
        "no_idempotency_key",
        "execute_once retries a transaction whose COMMIT answer was lost, without its key",
        "P3",
        "tests.fixtures.user_client:NoIdempotencyKeyClient",
    )
    judged = chaos.run(SCHEDULE, bug)
    assert "P3" in judged.failed, judged.narrative()
    assert "2 ledger row(s)" in judged.explain_failures()
