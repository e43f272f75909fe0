"""P7 — the lease protocol, observed: a recorded client that keeps it, and one recorded
history per way to break each clause. Fence margin 0.1 s, tolerance 0.05 s."""

from __future__ import annotations

from typing import Any

import pytest

from harness.check import Verdict, check_p7, render_verdict
from harness.history import BackendEvent, ConnectionEvent, QueryErrorEvent, Sample
from tests.unit.builders import H, lease, recorded, row, sample, wall


def client(h: H | None = None) -> H:
    """w1 connects to backend 101 (lease until t=5), runs one op at t=1 (one statement),
    renews in an op at t=4.1 (lease until t=6) and sends under the new lease."""
    h = h or H()
    h.spawn("w1", 0.0).backend("w1", 101, 0.5, until=5.0, instance="w1a")
    op = h.invoke("w1", 1.0, pid=101)
    h.query("w1", 101, 1.01, until=5.0)
    h.ok(op, 1.1)
    op = h.invoke("w1", 4.1, pid=101)
    h.backend("w1", 101, 4.12, until=6.0, instance="w1a", renewed=True)
    h.query("w1", 101, 4.13, until=6.0)
    return h.ok(op, 4.2)


def server() -> list[Sample]:
    """What the server showed: the first lease, then the renewed one."""
    return [
        sample(1.05, row(101, lease("w1a", 5.0), "active", 1.02)),
        sample(4.3, row(101, lease("w1a", 6.0), "idle", 4.2)),
    ]


def holds(v: Verdict) -> None:
    assert v.ok, render_verdict(v)


def violated(v: Verdict, *expected: str) -> dict[str, Any]:
    assert v.failed, render_verdict(v)
    found = [e["clause"] for e in v.evidence]
    for c in expected:
        assert c in found, render_verdict(v)
    return v.evidence[found.index(expected[0])]


def test_p7_holds_for_a_client_that_keeps_the_protocol() -> None:
    v = check_p7(recorded(client(), server()))
    holds(v)
    assert v.measured["statements"] == 2
    assert v.measured["renewals"] == 1
    assert v.measured["fence_checked"] is True


def test_p7_says_so_when_fencing_could_not_be_checked() -> None:
    v = check_p7(recorded(client(), server(), fence_margin=None))
    holds(v)
    assert "fencing NOT checked" in v.summary


def test_p7_cannot_be_judged_when_the_sampler_fell_behind() -> None:
    assert check_p7(recorded(client(), [], sample_interval=0.05)).unknown


# ------------------------------------------------------------------ what the server shows


def test_p7_fails_when_the_server_shows_a_lease_never_confirmed_and_the_client_goes_on() -> None:
    shown = sample(3.0, row(101, lease("w1a", 7.0), "idle", 1.1))
    ev = violated(check_p7(recorded(client(), [*server(), shown])), "P7-unconfirmed")
    assert "backend 101 of worker w1" in ev["explain"]
    assert "t=+3.000s" in ev["explain"]


def test_p7_allows_an_unconfirmed_renewal_the_client_then_dropped() -> None:
    # the renewal reached the server but its answer never came back: the client dropped
    # that backend and never sent on it again
    h = client()
    shown = sample(4.5, row(101, lease("w1a", 7.0), "idle", 4.4))
    holds(check_p7(recorded(h, [*server(), shown])))


def test_p7_ignores_a_reused_pid_of_another_client() -> None:
    shown = sample(3.0, row(101, lease("zz9", 7.0), "idle", 1.1))
    holds(check_p7(recorded(client(), [*server(), shown])))


def test_p7_fails_when_the_local_expiry_runs_ahead_of_the_confirmed_token() -> None:
    h = client().backend("w1", 101, 4.5, until=6.0, instance="w1a", local_until=6.5)
    ev = violated(check_p7(recorded(h, server())), "P7-ahead")
    assert "0.500s past" in ev["explain"]


def test_p7_fails_when_a_statement_believes_a_lease_longer_than_the_confirmed_one() -> None:
    h = client()
    op = h.invoke("w1", 4.4, pid=101)
    h.query("w1", 101, 4.41, until=6.4)
    h.ok(op, 4.5)
    ev = violated(check_p7(recorded(h, server())), "P7-ahead")
    assert "0.400s longer" in ev["explain"]


def test_p7_fails_when_a_statement_believes_more_than_the_server_showed() -> None:
    # the client confirmed a lease until t=5 but the server shows one until t=4.5 of its
    # instance: the local expiry runs ahead of the server's
    h = client()
    shown = [sample(1.05, row(101, lease("w1a", 4.5), "active", 1.02))]
    op = h.invoke("w1", 1.3, pid=101)
    h.query("w1", 101, 1.31, until=5.0)
    h.ok(op, 1.4)
    violated(check_p7(recorded(h, shown)), "P7-ahead", "P7-unconfirmed")


def test_p7_fails_when_a_statement_goes_to_a_backend_never_confirmed() -> None:
    h = client()
    op = h.invoke("w1", 4.4, pid=102)
    h.query("w1", 102, 4.41, until=6.0)
    h.ok(op, 4.5)
    ev = violated(check_p7(recorded(h, server())), "P7-ahead")
    assert "no server had confirmed" in ev["explain"]


# ------------------------------------------------------------------ fencing


def late_op(h: H, invoke: float, send: float, *, until: float = 5.0) -> H:
    op = h.invoke("w1", invoke, pid=101)
    h.query("w1", 101, send, until=until)
    return h.ok(op, send + 0.01)


def test_p7_fails_on_a_send_on_a_lease_already_within_the_fence_at_the_invoke() -> None:
    # thawed at t=4.9 with 0.1 s left; at the invoke (t=4.95) 0.05 s: inside the fence
    h = client_first_lease().fault("freeze", 2.0, "w1").fault("thaw", 4.9, "w1")
    h = late_op(h, 4.95, 4.96)
    ev = violated(check_p7(recorded(h, first_lease_shown())), "P7-fence")
    assert "0.050s left" in ev["explain"]
    assert "op w1-" in ev["explain"]


def test_p7_fails_on_a_send_long_after_the_fence_by_running_time() -> None:
    # invoked with 0.5 s left, sent with 0.03 s left, not frozen in between
    h = late_op(client_first_lease(), 4.5, 4.97)
    ev = violated(check_p7(recorded(h, first_lease_shown())), "P7-fence")
    assert "0.030s left" in ev["explain"]


def test_p7_tolerates_scheduling_noise_at_the_fence() -> None:
    # 0.07 s left at the send: inside the 0.1 s margin by 0.03 s, within the tolerance
    holds(check_p7(recorded(late_op(client_first_lease(), 4.5, 4.93), first_lease_shown())))


def test_p7_does_not_judge_a_send_after_a_freeze_inside_the_op() -> None:
    # frozen between the invoke and the send: the decision may have come before the freeze
    h = client_first_lease().fault("freeze", 4.6, "w1").fault("thaw", 4.9, "w1")
    holds(check_p7(recorded(late_op(h, 4.5, 4.97), first_lease_shown())))


def test_p7_fails_on_a_renewal_sent_on_a_lease_already_within_the_fence() -> None:
    h = client_first_lease()
    op = h.invoke("w1", 4.95, pid=101)
    h.backend("w1", 101, 4.97, until=5.95, instance="w1a", renewed=True)
    h.ok(op, 4.98)
    ev = violated(check_p7(recorded(h, first_lease_shown())), "P7-fence")
    assert "renewed its lease" in ev["explain"]


@pytest.mark.parametrize(
    ("skew_at", "seconds", "ok"),
    [(0.2, 0.08, False), (4.86, 0.08, True), (0.2, -0.08, True)],
    ids=["ahead-before-the-op", "ahead-recorded-during-the-op", "behind"],
)
def test_p7_reads_the_clients_own_clock_with_its_skew(
    skew_at: float, seconds: float, ok: bool
) -> None:
    # at the invoke (t=4.85) 0.15 s are left by true time; a client clock 0.08 s ahead
    # has 0.07 s: inside the fence. A skew recorded during the op may not be applied yet.
    h = client_first_lease().fault("clock_skew", skew_at, "w1", seconds=seconds)
    v = check_p7(recorded(late_op(h, 4.85, 4.851), first_lease_shown()))
    if ok:
        holds(v)
    else:
        violated(v, "P7-fence")


def client_first_lease() -> H:
    """w1 on backend 101 with a lease until t=5, one op at t=1."""
    h = H().spawn("w1", 0.0).backend("w1", 101, 0.5, until=5.0, instance="w1a")
    op = h.invoke("w1", 1.0, pid=101)
    h.query("w1", 101, 1.01, until=5.0)
    return h.ok(op, 1.1)


def first_lease_shown() -> list[Sample]:
    return [sample(1.05, row(101, lease("w1a", 5.0), "active", 1.02))]


# -------------------------------------------------------------------- the wire format


def _mapped(app: str) -> H:
    h = H().spawn("w1", 0.0)
    h.events.append(BackendEvent("w1", 101, app, wall(5.0), 0.5, wall(0.5)))
    return h


def test_p7_holds_for_tokens_in_the_specs_format() -> None:
    holds(check_p7(recorded(_mapped(lease("w1a", 5.0)))))


@pytest.mark.parametrize(
    ("app", "words"),
    [
        (lease("w1a", 5.0, service="orders-1a2b3c4d"), "the spec's tag is 'orders'"),
        (lease("w1a", 5.0, sig="BADsig00000"), "signature is not"),
        (lease("w1a", 5.0, sig="GOODsig000"), "not in the spec's format"),
        ("s=orders;i=w1a;e=12abc;g=GOODsig0000", "not in the spec's format"),
        (lease("w" * 21, 5.0), "not in the spec's format"),
    ],
)
def test_p7_fails_on_a_confirmed_token_the_spec_does_not_allow(app: str, words: str) -> None:
    e = violated(check_p7(recorded(_mapped(app))), "P7-wire")
    assert words in e["explain"], e["explain"]
    assert e["application_name"] == app


def test_p7_does_not_judge_the_wire_without_a_signature_check() -> None:
    app = lease("w1a", 5.0, service="orders-1a2b3c4d")
    v = check_p7(recorded(_mapped(app), verify=None))
    assert "P7-wire" not in [e["clause"] for e in v.evidence]


# ------------------------------------------------------------------------- renewing


def _late(renew: bool) -> H:
    """w1's lease (until t=5) has 0.4 s left when its op is invoked at t=4.6; it renews
    first (lease until 6.6) or sends on the old lease."""
    h = H().spawn("w1", 0.0).backend("w1", 101, 0.5, until=5.0, instance="w1a")
    op = h.invoke("w1", 4.6, pid=101)
    if renew:
        h.backend("w1", 101, 4.61, until=6.6, instance="w1a", renewed=True)
        h.query("w1", 101, 4.62, until=6.6)
    else:
        h.query("w1", 101, 4.62, until=5.0)
    return h.ok(op, 4.7)


def test_p7_holds_when_the_client_renews_inside_the_heartbeat_margin() -> None:
    holds(check_p7(recorded(_late(renew=True), heartbeat_margin=0.5)))


def test_p7_fails_on_a_send_inside_the_heartbeat_margin_without_renewing() -> None:
    e = violated(check_p7(recorded(_late(renew=False), heartbeat_margin=0.5)), "P7-renew")
    assert "without renewing it first" in e["explain"]
    assert e["left_at_bound_s"] == pytest.approx(0.4)


def test_p7_does_not_judge_renewing_without_a_heartbeat_margin() -> None:
    v = check_p7(recorded(_late(renew=False), heartbeat_margin=None))
    assert "P7-renew" not in [e["clause"] for e in v.evidence]


# ------------------------------------------------------------------- renewing early


def _renewed_at(t: float) -> H:
    """w1 connects at t=0.5 with a 1 s lease (until 1.5) and renews at ``t`` (a new
    lease until t + 1)."""
    h = H().spawn("w1", 0.0).backend("w1", 101, 0.5, until=1.5, instance="w1a")
    op = h.invoke("w1", t - 0.01, pid=101)
    h.backend("w1", 101, t, until=t + 1.0, instance="w1a", renewed=True)
    h.query("w1", 101, t + 0.005, until=t + 1.0)
    return h.ok(op, t + 0.05)


def test_p7_holds_for_a_renewal_inside_the_heartbeat_margin() -> None:
    holds(check_p7(recorded(_renewed_at(1.1), heartbeat_margin=0.5, renews_only_at_margin=True)))


def test_p7_fails_on_a_renewal_with_more_than_the_heartbeat_margin_left() -> None:
    v = check_p7(recorded(_renewed_at(0.7), heartbeat_margin=0.5, renews_only_at_margin=True))
    e = violated(v, "P7-early")
    assert e["left_at_least_s"] == pytest.approx(0.799)
    assert "renews only within the heartbeat margin" in e["explain"]


def test_p7_does_not_judge_early_renewals_of_a_client_with_its_own_rule() -> None:
    v = check_p7(recorded(_renewed_at(0.7), heartbeat_margin=0.5))
    assert "P7-early" not in [e["clause"] for e in v.evidence]


# ------------------------------------------------------------------- a stale lease at connect


def _authorized(app: str, t: float = 2.0) -> H:
    """The server's log: backend 555 authorized at ``t`` with ``app``."""
    h = client()
    h.events.append(ConnectionEvent(555, "app", "thawproof", app, t, wall(t)))
    return h


def test_p7_holds_for_connections_with_fresh_or_foreign_names() -> None:
    h = _authorized(lease("cron1", 3.0))  # a standalone reaper's fresh lease
    h.events.append(ConnectionEvent(556, "app", "thawproof", "psql", 2.1, wall(2.1)))
    h.events.append(ConnectionEvent(557, "app", "thawproof", None, 2.2, wall(2.2)))
    forged = lease("x", -1e6, sig="AAAAAAAAAAA")  # not ours: P5 and P6 judge what is done to it
    h.events.append(ConnectionEvent(558, "app", "thawproof", forged, 2.3, wall(2.3)))
    holds(check_p7(recorded(h, server(), renews_only_at_margin=True)))


def test_p7_fails_on_a_connection_begun_with_a_long_expired_lease() -> None:
    stale = lease("cron1", 2.0 - 20 * 86400)  # expiry x 999: twenty days back
    e = violated(
        check_p7(recorded(_authorized(stale), server(), renews_only_at_margin=True)), "P7-stale"
    )
    assert e["pid"] == 555
    assert e["expired_before_s"] == pytest.approx(20 * 86400, abs=1)
    assert "no client mints such a lease" in e["explain"]


def test_p7_allows_a_lease_expired_by_less_than_a_slow_connect_and_the_skews() -> None:
    h = _authorized(lease("cron1", 2.0 - 30.0))
    holds(check_p7(recorded(h, server(), renews_only_at_margin=True)))
    h.fault("clock_skew", 1.0, "w1", seconds=-0.5)
    h.events.append(
        ConnectionEvent(559, "app", "thawproof", lease("c2", 2.0 - 60.4), 2.0, wall(2.0))
    )
    holds(check_p7(recorded(h, server(), renews_only_at_margin=True)))


def test_p7_leaves_the_harness_s_own_stale_neighbours_alone() -> None:
    stale = lease("5uperU5r", 2.0 - 3600.0)
    h = _authorized(stale)
    h.foreign(555, 2.1, "forged")
    holds(check_p7(recorded(h, server(), renews_only_at_margin=True)))


# ------------------------------------------------------------------- the hooks tell the truth


def _connects(*said: bool | None, respawn_before: int | None = None) -> H:
    """w1's client connects len(said) times (backends 101, 102, ...), each on_connect
    saying reconnect=said[i]; the worker process is respawned before connect
    ``respawn_before`` (an index) when given."""
    h = H().spawn("w1", 0.0)
    for i, s in enumerate(said):
        t = 1.0 + i
        if respawn_before == i:
            h.spawn("w1", t - 0.1, os_pid=4001)
        app = lease("w1a", t + 1.0)
        h.events.append(BackendEvent("w1", 101 + i, app, wall(t + 1.0), t, wall(t), reconnect=s))
    return h


@pytest.mark.parametrize(
    ("said", "respawn"),
    [((False, True, True), None), ((False, True, False), 2), ((None, None), None)],
)
def test_p7_holds_when_on_connect_says_what_happened(
    said: tuple[bool | None, ...], respawn: int | None
) -> None:
    holds(check_p7(recorded(_connects(*said, respawn_before=respawn))))


@pytest.mark.parametrize("said", [(True,), (False, False)])
def test_p7_fails_when_on_connect_misnames_a_connect(said: tuple[bool, ...]) -> None:
    e = violated(check_p7(recorded(_connects(*said))), "P7-hooks")
    assert "its on_connect said" in e["explain"]


def _lost_then(send_on: int) -> H:
    """w1's statement on backend 101 fails at t=2 and its client says the connection was
    lost; at t=2.5 it sends on ``send_on`` (after connecting to 102 when that is it)."""
    h = _connects(False)
    h.events.append(QueryErrorEvent("w1", 101, None, "OperationalError", True, 2.0, wall(2.0)))
    if send_on == 102:
        app = lease("w1a", 3.4)
        h.events.append(BackendEvent("w1", 102, app, wall(3.4), 2.4, wall(2.4), reconnect=True))
    h.query("w1", send_on, 2.5, until=3.4)
    return h


def test_p7_holds_when_a_lost_connection_is_replaced() -> None:
    holds(check_p7(recorded(_lost_then(102))))


def test_p7_fails_when_the_client_sends_on_a_connection_it_called_lost() -> None:
    e = violated(check_p7(recorded(_lost_then(101))), "P7-hooks")
    assert "on_query_error lost=True" in e["explain"]
