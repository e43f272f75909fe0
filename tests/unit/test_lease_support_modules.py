"""Small pieces of harness.lease: dedup codec, reap schedule, hooks, layering, seams."""

from __future__ import annotations

import ast
import datetime as dt
import decimal
import logging
import math
import random
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.lease import ConfigError, LeaseClient, LeaseConfig, Reaper, dedup
from harness.lease.hooks import HOOK_NAMES, Hooks
from harness.lease.schedule import ReapSchedule

SECRET = "unit-secret-0123456789"
LEASE_DIR = Path(__file__).resolve().parents[2] / "harness" / "lease"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    st.floats(allow_nan=False),
    st.sampled_from([math.inf, -math.inf]),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.sampled_from([dt.UTC, None])),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.uuids(),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.lists(st.tuples(values, values), max_size=4))
def test_dedup_codec_round_trips(rows: list[tuple[Any, ...]]) -> None:
    import json

    stored = json.loads(json.dumps(dedup.encode_rows(rows)))  # what jsonb keeps
    assert dedup.decode_rows(stored) == rows


def test_dedup_codec_examples() -> None:
    rows = [(1, decimal.Decimal("1.25"), uuid.UUID(int=5), b"\x00", {"$t": "sneaky"})]
    assert dedup.decode_rows(dedup.encode_rows(rows)) == rows
    assert dedup.decode_rows(None) == []


def test_dedup_ddl_quotes_names() -> None:
    assert (
        'CREATE TABLE IF NOT EXISTS "myschema"."dedup"' in dedup.ddl("myschema.dedup").as_string()
    )


def cfg(**kw: Any) -> LeaseConfig:
    return LeaseConfig(service="orders", secret=SECRET, **kw)


def test_schedule_probability_and_cooldown() -> None:
    s = ReapSchedule(cfg(reap_probability=1.0, cooldown=10.0, cooldown_jitter=0.0))
    assert s.due(100.0)
    s.done(100.0, busy=False)
    assert not s.due(109.9)
    assert s.due(110.0)
    never = ReapSchedule(cfg(reap_probability=0.0))
    assert not any(never.due(t) for t in range(100))
    off = ReapSchedule(cfg(reap_probability=1.0, reaper_enabled=False))
    assert not off.due(0.0)


def test_schedule_probability_is_a_draw() -> None:
    s = ReapSchedule(cfg(reap_probability=0.25), random.Random(7))
    hits = sum(s.due(0.0) for _ in range(4000))
    assert 800 < hits < 1200


def test_schedule_busy_backs_off_exponentially_with_jitter() -> None:
    s = ReapSchedule(cfg(reap_probability=1.0, cooldown=1.0, cooldown_jitter=0.2), random.Random(1))
    delays = []
    for _ in range(8):
        s.done(0.0, busy=True)
        delays.append(s.not_before)
    assert 1.6 <= delays[0] <= 2.4
    assert 3.2 <= delays[1] <= 4.8
    assert all(d <= 64 * 1.2 for d in delays)
    s.done(0.0, busy=False)
    assert 0.8 <= s.not_before <= 1.2


def test_hooks_swallow_and_log_once(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def bad(payload: dict[str, Any]) -> None:
        calls.append(payload)
        raise RuntimeError("nope")

    hooks = Hooks({"on_reap": bad}, clock=lambda: 42.0)
    caplog.set_level(logging.WARNING, logger="harness.lease")
    for _ in range(3):
        hooks.emit("on_reap", {"event": "busy"})
    hooks.emit("on_connect", {})  # not registered: nothing
    assert len(calls) == 3
    assert calls[0]["at"] == 42.0
    assert calls[0]["hook"] == "on_reap"
    assert len([r for r in caplog.records if "on_reap" in r.getMessage()]) == 1


def test_hook_names_are_checked() -> None:
    assert {"on_connect", "on_reap", "on_query_error"} <= HOOK_NAMES
    with pytest.raises(ConfigError, match="unknown hook"):
        Hooks({"on_conect": print}, clock=lambda: 0.0)
    with pytest.raises(ConfigError, match="callable"):
        Hooks({"on_connect": 3}, clock=lambda: 0.0)  # type: ignore[dict-item]


def test_lease_imports_nothing_else_from_harness() -> None:
    allowed_third_party = {"psycopg"}
    for path in LEASE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "harness":
                    assert name.startswith("harness.lease"), f"{path.name} imports {name}"
                else:
                    assert top in sys.stdlib_module_names or top in allowed_third_party, (
                        f"{path.name} imports {name}"
                    )


def test_bug_zoo_seams_exist() -> None:
    for name in ("lease_expired", "lease_of", "terminate", "leadership", "decide", "scan"):
        assert callable(getattr(Reaper, name))
    assert "idle" in Reaper.idle_states
    for name in (
        "fence_action",
        "statement_outcome",
        "transaction_outcome",
        "handle_idle_socket_error",
    ):
        assert callable(getattr(LeaseClient, name))
    assert LeaseClient.reaper_class is Reaper
    assert cfg(reaper_enabled=False).reaper_enabled is False


def test_overriding_fence_action_turns_the_fast_path_off() -> None:
    class NoFencing(LeaseClient):
        def fence_action(self, now: float, expected_duration: float) -> Any:
            return super().fence_action(now, expected_duration)

    assert LeaseClient("", cfg())._fast_fence
    assert not NoFencing("", cfg())._fast_fence
    assert LeaseClient("", cfg())._fast_execute
    assert not NoFencing("", cfg())._fast_execute


@pytest.mark.parametrize("hook", ["on_query_start", "on_query_end", "on_query_error"])
def test_a_query_hook_turns_the_inlined_execute_off(hook: str) -> None:
    """execute()'s hot path emits no query hook, so a listener sends it the general way."""
    assert not LeaseClient("", cfg(), {hook: lambda p: None})._fast_execute
    assert LeaseClient("", cfg(), {"on_reap": lambda p: None})._fast_execute


def test_client_repr_has_no_secret() -> None:
    client = LeaseClient("dbname=x", cfg())
    assert SECRET not in repr(client)
    assert SECRET not in repr(client.config)
