"""Provider presets, the RDS formula and the capacity rule (pure)."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.infra.presets import GIB, PRESETS, capacity, preset, rds_max_connections


def test_the_rds_formula() -> None:
    assert rds_max_connections(1 * GIB) == 1073741824 // 9531392 == 112
    assert rds_max_connections(16 * GIB) == 1802
    assert rds_max_connections(64 * GIB) == 5000  # capped
    assert PRESETS["rds-db.t3.micro"].max_connections == 112
    assert PRESETS["rds-db.r6g.2xlarge"].max_connections == 5000
    assert all(p.reserved == 5 for name, p in PRESETS.items() if name.startswith("rds-"))


@pytest.mark.parametrize(
    ("name", "max_connections", "reserved"),
    [
        ("self-hosted", 100, 3),
        ("supabase-nano", 60, 3),
        ("supabase-micro", 60, 3),
        ("supabase-16xl", 500, 3),
        ("neon-0.25cu", 104, 7),
        ("neon-9cu", 4000, 7),
    ],
)
def test_the_published_limits(name: str, max_connections: int, reserved: int) -> None:
    p = preset(name)
    assert (p.max_connections, p.reserved) == (max_connections, reserved)
    assert p.usable == max_connections - reserved


def test_capacity_is_concurrency_times_pool_against_what_the_role_may_use() -> None:
    fits = capacity(97, 1, "self-hosted")
    assert fits.needed == 97
    assert fits.fits
    assert "fits (0 to spare)" in fits.explain()
    over = capacity(50, 2, "supabase-micro")
    assert over.needed == 100
    assert not over.fits
    assert "43 over" in over.explain()
    assert "at most 28 concurrent invocations" in over.explain()


def test_bad_capacity_input_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown preset 'nope'"):
        capacity(1, 1, "nope")
    with pytest.raises(UsageError, match="at least 1"):
        capacity(0, 1, "self-hosted")
