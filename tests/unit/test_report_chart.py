"""What the timeline draws: lanes, states, ops, faults, kills and P2's panel, on one clock."""

from __future__ import annotations

import time
from pathlib import Path

from harness.check import Run, Verdict, check_all
from harness.history import ActivityRow, Sample, StepEvent
from harness.report.lanes import OTHER_LANE, Lane, build_chart, state_counts
from harness.report.plot import plot_timeline
from tests.unit.builders import H, final, lease, row, sample, wall
from tests.unit.test_checks import config


def _lane(chart_lanes: list[Lane], name: str) -> Lane:
    return next(lane for lane in chart_lanes if lane.name == name)


def _states(lane: Lane) -> list[tuple[float, float, str]]:
    return [(round(s.start, 3), round(s.end, 3), s.state) for s in lane.states]


def _life() -> H:
    """w1: cold start, an op, parked, thawed, an op frozen by a fault, reclaimed;
    w2: a socket reset healed, a terminate, a failed op; a restart and a heal for all."""
    h = H()
    h.events.append(StepEvent(1, "a burst", 0.0, wall(0.0)))
    h.spawn("w1", 0.0)
    h.backend("w1", 101, 0.2, until=50)
    h.ok(h.invoke("w1", 0.5), 0.6)
    h.fault("freeze", 0.6, "w1", cause="idle")
    h.fault("thaw", 1.0, "w1", cause="invoke")
    slow = h.invoke("w1", 1.0, "slow_read")
    h.fault("freeze_mid_query", 1.2, "w1", cause="fault", op=slow)
    h.fault("reclaim", 2.0, "w1", blackhole=True)
    h.info(slow, 2.0, cls="WorkerReclaimed")
    h.spawn("w2", 0.1)
    h.backend("w2", 102, 0.3, until=50)
    op = h.invoke("w2", 0.4, "read")
    h.fault("socket_reset", 0.45, "w2", mode="reset_peer", op=op)
    h.fault("heal", 0.7, "w2", undo="socket_reset", op=op)
    h.fail(op, 0.7, sqlstate=None, cls="OperationalError")
    h.fault("terminate_backend", 1.5, "w2", backend_pid=102)
    h.fault("pg_restart", 2.5, None, mode="immediate")
    h.fault("latency", 2.6, "w2", latency_ms=200, jitter_ms=0, stream="downstream")
    h.fault("heal", 3.0, None, undo="all")
    h.reap(101, 2.8, reaper="w2", until=1.0)  # w1's zombie
    h.reap(999, 2.9, reaper="w2", until=1.0)  # nobody's
    h.events.append(StepEvent(2, "reclaim idle worker #0", 1.9, wall(1.9)))
    return h


def test_a_workers_lane_follows_its_life_on_the_runs_clock() -> None:
    h = _life()
    samples = [sample(t / 10, row(101, lease("w1", 50))) for t in range(35)]
    run = Run(h.events, samples, final(), config(clock_start=-0.5))
    chart = build_chart(run)
    assert [lane.name for lane in chart.lanes] == ["w1", "w2", OTHER_LANE]
    w1 = _lane(chart.lanes, "w1")
    # the clock's zero is the configured clock start: every time is +0.5
    assert _states(w1) == [
        (0.5, 1.0, "cold-starting"),
        (1.0, 1.1, "running"),
        (1.1, 1.5, "parked"),
        (1.5, 1.7, "running"),
        (1.7, 2.5, "frozen"),
        (2.5, 3.9, "reclaimed"),
    ]
    assert [(o.outcome, o.open) for o in w1.ops] == [("ok", False), ("info", False)]
    assert [(f.f, f.window) for f in w1.faults] == [("freeze_mid_query", False), ("reclaim", False)]
    assert [(round(k.time, 3), k.pid, k.reaper) for k in w1.kills] == [(3.3, 101, "w2")]
    assert [k.pid for k in _lane(chart.lanes, OTHER_LANE).kills] == [999]
    w2 = _lane(chart.lanes, "w2")
    windows = [(f.f, round(f.start, 3), round(f.end, 3), f.label) for f in w2.faults]
    assert windows == [
        ("socket_reset", 0.95, 1.2, "socket reset"),
        ("terminate_backend", 2.0, 2.0, "terminate pid 102"),
        ("latency", 3.1, 3.5, "latency 200 ms"),  # ended by the global heal
    ]
    assert [o.outcome for o in w2.ops] == ["fail"]
    assert [(g.f, round(g.time, 3)) for g in chart.globals] == [("pg_restart", 3.0), ("heal", 3.5)]
    assert [(s.n, round(s.time, 3)) for s in chart.steps] == [(1, 0.5), (2, 2.4)]


def test_window_faults_end_at_their_own_heal() -> None:
    h = H()
    h.spawn("w1", 0.0)
    op = h.write("w1", 0.1, "op-9")
    h.fault("ack_lost", 0.1, "w1", op="op-9", timeout_ms=300)
    h.info(op, 0.5, cls="OperationalError")
    h.fault("heal", 0.5, "w1", undo="ack_lost", op="op-9")
    h.fault("proxy_down", 1.0, "w1")
    h.fault("proxy_up", 1.4, "w1")
    h.fault("clock_skew", 1.6, "w1", seconds=-5)
    h.fault("bandwidth", 1.7, "w1", rate_kb=10, stream="downstream")
    run = Run(h.events, [sample(2.0)], final(), config())
    (lane,) = build_chart(run).lanes
    got = [(f.f, round(f.start, 3), round(f.end, 3), f.window, f.label) for f in lane.faults]
    assert got == [
        ("ack_lost", 0.1, 0.5, True, "ack lost"),
        ("proxy_down", 1.0, 1.4, True, "proxy down"),
        ("clock_skew", 1.6, 1.6, False, "clock skew -5 s"),
        ("bandwidth", 1.7, 2.0, True, "bandwidth 10 KB/s"),  # never healed: to the end
    ]
    assert [o.outcome for o in lane.ops] == ["info"]


def test_routine_parking_is_a_state_not_a_fault() -> None:
    h = H()
    h.spawn("w1", 0.0)
    h.ok(h.invoke("w1", 0.1), 0.2)
    h.fault("freeze", 0.2, "w1", cause="idle")
    run = Run(h.events, [sample(1.0, row(5, lease("w1", 9)))], final(), config())
    lane = build_chart(run).lanes[0]
    assert lane.faults == []
    assert [s.state for s in lane.states] == ["cold-starting", "running", "parked"]


def test_an_open_operation_is_drawn_as_info() -> None:
    h = H()
    h.spawn("w1", 0.0)
    h.invoke("w1", 0.1)
    run = Run(h.events, [sample(1.0)], final(), config())
    (bar,) = build_chart(run).lanes[0].ops
    assert bar.outcome == "info"
    assert bar.open
    assert bar.end == 1.0


def test_p2_panel_counts_like_p2_and_shades_its_deadline_and_violations() -> None:
    h = H()
    h.spawn("w1", 0.0)
    h.fault("reclaim", 1.0, "w1")
    h.spawn("w2", 6.0)
    h.ok(h.invoke("w2", 6.0), 6.1)
    zombie = [row(500 + i, lease(f"z{i}", 0.0)) for i in range(5)]
    foreign = ActivityRow(900, "s=orders;i=forged;e=1;g=x", "idle")
    h.foreign(900, 0.0, "forged")
    samples = [Sample(t / 10, wall(t / 10), (*zombie, foreign)) for t in range(70)]
    run = Run(h.events, samples, final(), config())
    verdicts = check_all(run)
    p2 = next(v for v in verdicts if v.prop == "P2")
    assert p2.failed
    chart = build_chart(run, verdicts)
    assert {n for _, n in chart.counts} == {5}  # the forged one is not the service's
    assert chart.limit == 3
    assert chart.deadline is not None
    assert abs(chart.deadline - (p2.measured["deadline"] - run.t0)) < 1e-9
    (window,) = chart.violations
    assert window.start >= chart.deadline
    assert window.end == max(t for t, _ in chart.counts)


def test_state_counts_add_up_to_the_lanes_alive() -> None:
    h = _life()
    run = Run(h.events, [sample(3.4)], final(), config())
    chart = build_chart(run)
    grid, counts = state_counts(chart, points=35)
    i = grid.index(next(t for t in grid if t >= 1.1))  # w1 in its slow read, w2 running
    assert sum(c[i] for c in counts.values()) == 2
    assert counts["reclaimed"][-2] == 1
    assert counts["cold-starting"][-2] == 0


def _storm(workers: int, ops: int) -> Run:
    """``workers`` workers, each cold-started, then ``ops`` invocations parked between."""
    h = H()
    for w in range(workers):
        name = f"w{w + 1}"
        t = w * 0.01
        h.spawn(name, t)
        h.backend(name, 10_000 + w, t + 0.01, until=500)
        for k in range(ops):
            start = t + 0.05 + k * 0.2
            op = h.invoke(name, start)
            (h.ok if k % 7 else h.info)(op, start + 0.03)
            h.fault("freeze", start + 0.03, name, cause="idle")
            h.fault("thaw", start + 0.19, name, cause="invoke")
        if w % 10 == 0:
            h.fault("reclaim", t + ops * 0.2 + 0.1, name)
    rows = tuple(row(10_000 + w, lease(f"w{w + 1}", 500)) for w in range(workers))
    samples = [sample(t / 20, *rows[: min(workers, t)]) for t in range(int(ops * 0.2 * 20) + 40)]
    return Run(h.events, samples, final(), config(connection_limit=60))


def test_a_few_hundred_workers_plot_in_seconds(tmp_path: Path) -> None:
    run = _storm(300, 20)
    assert len(run.events) > 20_000
    verdicts: list[Verdict] = []
    started = time.monotonic()
    assert plot_timeline(run, tmp_path / "timeline.png", verdicts)
    took = time.monotonic() - started
    assert took < 60, f"plotting 300 lanes took {took:.1f}s"
    data = (tmp_path / "timeline.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    height = int.from_bytes(data[20:24], "big")
    assert 1000 <= height <= 2000  # the lanes get thin; the picture does not grow without end
