"""The history writer, reader and validator."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import HistoryFormatError
from harness.history import (
    ActivityRow,
    ErrorInfo,
    Event,
    FaultF,
    FinalState,
    HistoryWriter,
    OpEvent,
    ProcessTable,
    Sample,
    dumps,
    event_from_json,
    from_json,
    load_history,
    to_json,
    validate,
)
from tests.unit.builders import H


class Clock:
    """A deterministic clock: each read advances by ``step``."""

    def __init__(self, start: float, step: float = 0.25) -> None:
        self.t = start
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def writer(path: Path) -> HistoryWriter:
    return HistoryWriter(path, monotonic=Clock(10.0), wall=Clock(1_767_225_600.0))


def every_kind(w: HistoryWriter) -> list[Event]:
    out: list[Event] = [
        w.worker_event("spawn", worker="w1", os_pid=4242),
        w.backend(
            worker="w1",
            backend_pid=101,
            application_name="s=o;i=x;e=1;g=y",
            lease_expiry=1_767_225_601.5,
        ),
    ]
    inv = w.invoke(
        op="a1",
        worker="w1",
        f="write",
        value={"op_id": "a1", "amount": 2},
        lease_valid=True,
        backend_pid=101,
    )
    return [
        *out,
        inv,
        w.complete(
            inv, "info", error=ErrorInfo(None, "OutcomeUnknown", "socket died"), backend_pid=101
        ),
        w.fault("freeze_mid_query", worker="w1", value={"query": "pg_sleep"}),
        w.fault("terminate_backend", value={"backend_pid": 101}),
        w.reap(
            worker="w2",
            pid=101,
            result="killed",
            application_name="s=o;i=x;e=1;g=y",
            state="idle",
            state_change=1_767_225_600.5,
            lease_expiry_ms=1,
        ),
        w.foreign(backend_pid=77, kind="superuser"),
        w.worker_event("crash", worker="w2", os_pid=4243, exitcode=-11, detail="SIGSEGV"),
    ]


# ------------------------------------------------------------------------- writing


def test_each_event_is_on_disk_as_soon_as_it_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    w = writer(path)
    inv = w.invoke(op="a", worker="w1", f="read", value={}, lease_valid=True)
    # not closed: nothing may sit in a user-space buffer
    assert load_history(path) == [inv]
    done = w.complete(inv, "ok")
    assert load_history(path) == [inv, done]
    w.close()


def test_every_kind_of_event_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with writer(path) as w:
        written = every_kind(w)
    assert load_history(path) == written
    for ev in written:
        assert event_from_json(json.loads(dumps(ev))) == ev


def test_json_shape_matches_the_data_model(tmp_path: Path) -> None:
    with writer(tmp_path / "h.jsonl") as w:
        inv = w.invoke(
            op="a",
            worker="w1",
            f="write",
            value={"op_id": "a", "amount": 1},
            lease_valid=False,
            backend_pid=5,
        )
        done = w.complete(inv, "fail", error=ErrorInfo("53300", "TooManyConnections", "sorry"))
    j_inv, j_done = to_json(inv), to_json(done)
    assert j_inv["lease_valid"] is False
    assert "error" not in j_inv
    assert j_done["error"] == {
        "sqlstate": "53300",
        "class": "TooManyConnections",
        "message": "sorry",
    }
    assert "lease_valid" not in j_done
    assert {"type", "op", "process", "worker", "f", "value", "time", "wall"} <= j_inv.keys()


def test_writer_stamps_times_from_its_clocks_unless_given(tmp_path: Path) -> None:
    with writer(tmp_path / "h.jsonl") as w:
        a = w.fault("heal")
        b = w.fault("heal", time=3.0, wall=4.0)
    assert (a.time, a.wall) == (10.25, 1_767_225_600.25)
    assert (b.time, b.wall) == (3.0, 4.0)


def test_info_moves_the_worker_to_a_new_process(tmp_path: Path) -> None:
    with writer(tmp_path / "h.jsonl") as w:
        a = w.invoke(op="a", worker="w1", f="read", value={}, lease_valid=True)
        w.complete(a, "ok")
        b = w.invoke(op="b", worker="w1", f="read", value={}, lease_valid=True)
        w.complete(b, "info")
        c = w.invoke(op="c", worker="w1", f="read", value={}, lease_valid=True)
        w.complete(c, "fail")
        d = w.invoke(op="d", worker="w1", f="read", value={}, lease_valid=True)
    assert a.process == b.process != c.process == d.process
    assert validate(load_history(tmp_path / "h.jsonl")) == []


def test_process_table_never_reuses_ids_and_retires_only_the_current() -> None:
    t = ProcessTable()
    p1, p2 = t.current("w1"), t.current("w2")
    assert p1 != p2
    assert t.current("w1") == p1
    new = t.retire("w1", p1)
    assert new not in (p1, p2)
    assert t.retire("w1", p1) == new  # a stale retire changes nothing


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    w = writer(path)
    # long values make torn writes visible if the lock or O_APPEND failed
    payload = {"blob": "x" * 5000}

    def work(k: int) -> None:
        for i in range(100):
            w.fault("latency", worker=f"w{k}", value={**payload, "i": i}, time=float(i), wall=1.0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    w.close()
    events = load_history(path, allow_torn_tail=False)
    assert len(events) == 800
    assert sorted(e.worker or "" for e in events) == sorted(
        f"w{k}" for k in range(8) for _ in range(100)
    )


def test_closed_writer_refuses_to_append(tmp_path: Path) -> None:
    w = writer(tmp_path / "h.jsonl")
    w.close()
    with pytest.raises(HistoryFormatError, match="closed"):
        w.fault("heal")


# ------------------------------------------------------------------------- reading


def test_torn_last_line_from_a_crash_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with writer(path) as w:
        first = w.fault("freeze", worker="w1")
    with path.open("a") as fh:
        fh.write('{"type":"fault","f":"th')
    assert load_history(path) == [first]
    with pytest.raises(HistoryFormatError, match="not JSON"):
        load_history(path, allow_torn_tail=False)


def test_complete_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with writer(path) as w:
        ev = w.fault("heal")
    path.write_text(path.read_text().rstrip("\n"))
    assert load_history(path) == [ev]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "not a JSON object"),
        ('{"type": "party", "time": 1, "wall": 2}', "unknown event type 'party'"),
        ('{"type": "fault", "time": 1, "wall": 2}', "missing field 'f'"),
        ('{"type": "fault", "f": "heal", "time": "soon", "wall": 2}', "field 'time'"),
        (
            '{"type": "invoke", "op": "a", "process": true, "worker": null, "f": "read",'
            ' "time": 1, "wall": 2}',
            "'process' of invoke event is a bool",
        ),
        (
            '{"type": "ok", "op": "a", "process": 1, "worker": null, "f": "read", "time": 1,'
            ' "wall": 2, "error": {"sqlstate": null}}',
            "missing field 'class'",
        ),
    ],
)
def test_malformed_lines_raise_with_their_line_number(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(
        '{"type":"fault","f":"heal","worker":null,"value":{},"time":0,"wall":0}\n' + line + "\n"
    )
    with pytest.raises(HistoryFormatError, match=message) as err:
        load_history(path)
    assert ":2:" in str(err.value)


def test_samples_and_final_state_round_trip() -> None:
    s = Sample(
        1.5,
        2.5,
        (ActivityRow(7, "s=o;i=a;e=1;g=b", "idle", 2.0, 1.0, None, "app", "client backend"),),
    )
    assert from_json(Sample, json.loads(json.dumps(to_json(s)))) == s
    f = FinalState({"a": 1, "b": 0}, 1, 1)
    assert from_json(FinalState, to_json(f)) == f
    with pytest.raises(HistoryFormatError):
        from_json(FinalState, {"ledger_counts": {"a": "1"}, "counter": 1, "ledger_rows": 1})


# ---------------------------------------------------------------------- validation


def kinds(h: H) -> list[str]:
    return [p.kind for p in validate(h.events)]


def test_a_well_formed_history_has_no_problems() -> None:
    h = H()
    a = h.invoke("w1", 1.0)
    h.ok(a, 1.1)
    b = h.invoke("w1", 2.0)
    h.info(b, 2.5)
    c = h.invoke("w1", 3.0)  # new process after info
    h.fail(c, 3.1)
    h.invoke("w2", 4.0)  # open at the end: counts as info, not a problem
    assert kinds(h) == []


def test_completion_without_invoke() -> None:
    h = H()
    h.events.append(OpEvent("ok", "ghost", 0, "w1", "read", {}, 1.0, 1.0))
    assert kinds(h) == ["completion_without_invoke"]


def test_two_completions() -> None:
    h = H()
    a = h.invoke("w1", 1.0)
    h.ok(a, 1.1)
    h.fail(a, 1.2)
    problems = validate(h.events)
    assert [p.kind for p in problems] == ["double_completion"]
    assert problems[0].op == a
    assert problems[0].indexes == (1, 2)


def test_duplicate_invoke_and_concurrent_ops_on_one_process() -> None:
    h = H()
    a = h.invoke("w1", 1.0)
    h.events.append(h.events[-1])
    h.invoke("w1", 1.5)
    assert kinds(h) == ["duplicate_invoke", "concurrent_ops"]
    assert a


def test_process_reused_after_info() -> None:
    h = H()
    a = h.invoke("w1", 1.0)
    h.info(a, 1.1)
    h._process["w1"] = 0  # the fleet forgot to move w1 to a new process
    h.invoke("w1", 2.0)
    assert kinds(h) == ["process_after_info"]


def test_completion_mismatch_and_before_invoke() -> None:
    h = H()
    a = h.invoke("w1", 5.0)
    h.events.append(OpEvent("ok", a, 9, "w1", "write", {}, 4.0, 4.0))
    assert kinds(h) == ["completion_mismatch", "completion_before_invoke"]


def test_one_process_shared_by_two_workers() -> None:
    h = H()
    h.events.append(OpEvent("invoke", "a", 0, "w1", "read", {}, 1.0, 1.0))
    h.events.append(OpEvent("ok", "a", 0, "w1", "read", {}, 1.1, 1.1))
    h.events.append(OpEvent("invoke", "b", 0, "w2", "read", {}, 2.0, 2.0))
    assert kinds(h) == ["process_shared"]


# ---------------------------------------------------------------------- hypothesis

STEP = st.tuples(
    st.sampled_from(["w1", "w2", "w3"]),
    st.sampled_from(["ok", "fail", "info", None]),
    st.sampled_from(["write", "write_once", "read", "slow_read", "long_tx", "burst", "reap"]),
    st.integers(min_value=0, max_value=2**31),
    st.one_of(st.none(), st.sampled_from(["57P01", "53300", "08006"])),
    st.text(max_size=20),
)


@given(
    steps=st.lists(STEP, max_size=30),
    faults=st.lists(
        st.sampled_from(["freeze", "thaw", "reclaim", "socket_reset", "pg_restart", "heal"]),
        max_size=5,
    ),
)
def test_random_valid_histories_round_trip_and_validate(
    tmp_path_factory: pytest.TempPathFactory, steps: list[Any], faults: list[FaultF]
) -> None:
    path = tmp_path_factory.mktemp("h") / "history.jsonl"
    written: list[Event] = []
    ids = itertools.count()
    with writer(path) as w:
        for worker, outcome, f, amount, sqlstate, message in steps:
            op = f"op-{next(ids)}"
            inv = w.invoke(
                op=op,
                worker=worker,
                f=f,
                value={"op_id": op, "amount": amount},
                lease_valid=amount % 2 == 0,
                backend_pid=amount or None,
            )
            written.append(inv)
            if outcome is not None:
                err = None if outcome == "ok" else ErrorInfo(sqlstate, "E", message)
                written.append(w.complete(inv, outcome, error=err))
            else:
                written.append(w.complete(inv, "info"))  # keep each process sequential
        for f in faults:
            written.append(w.fault(f, worker="w1", value={"n": 1}))
    loaded = load_history(path, allow_torn_tail=False)
    assert loaded == written
    assert validate(loaded) == []
