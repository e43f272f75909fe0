"""LeaseConfig: defaults, derived margins, validation messages, the secret kept out of sight."""

from __future__ import annotations

import dataclasses

import pytest

from harness.lease import ConfigError, LeaseConfig

SECRET = "a-secret-of-24-bytes-xyz"


def test_defaults_follow_pg_aequor() -> None:
    c = LeaseConfig(service="orders", secret=SECRET)
    assert (c.lease_ttl, c.min_idle, c.cooldown, c.max_kills) == (90.0, 180.0, 30.0, 10)
    assert (c.retries, c.backoff_base, c.backoff_cap, c.retry_budget) == (3, 0.1, 2.0, 15.0)
    assert c.heartbeat_margin == 30.0
    assert c.fence_margin == 10.0
    assert c.reaper_grace == 10.0


def test_margins_derive_from_a_compressed_ttl() -> None:
    c = LeaseConfig(service="orders", secret=SECRET, lease_ttl=0.9)
    assert c.heartbeat_margin == pytest.approx(0.3)
    assert c.fence_margin == pytest.approx(0.1)
    assert c.reaper_grace == pytest.approx(0.1)
    # replace() keeps working on the resolved values
    d = dataclasses.replace(c, lease_ttl=1.2)
    assert d.heartbeat_margin == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lease_ttl", 0, r"lease_ttl must be a number in \[0.001, 86400\], got 0"),
        ("lease_ttl", float("nan"), "lease_ttl must be a number in"),
        ("min_idle", -1, r"min_idle must be a number in \[0, 86400\]"),
        ("max_kills", 0, r"max_kills must be an integer in \[1, 100000\], got 0"),
        ("max_kills", 2.5, "max_kills must be an integer"),
        ("max_kills", True, "max_kills must be an integer"),
        ("retries", -1, r"retries must be an integer in \[0, 1000\]"),
        ("backoff_cap", 0.05, r"backoff_cap must be a number in \[0.1, 3600\]"),
        ("reap_probability", 1.5, r"reap_probability must be a number in \[0, 1\]"),
        ("fence_margin", 90.0, r"fence_margin must be a number in \[0, 90\)"),
        ("heartbeat_margin", 5.0, r"heartbeat_margin must be a number in \(10, 90\)"),
        ("lock_namespace", 2**31, "lock_namespace must be an integer in"),
        ("aequor_lock_namespace", 2**31, "aequor_lock_namespace must be an integer in"),
        ("aequor_lock_namespace", 0x6C656173, "aequor_lock_namespace must differ"),
        ("dedup_table", "x; drop table y", "dedup_table must be an identifier"),
        ("service", "", "service must be a non-empty string"),
        ("reaper_enabled", "yes", "reaper_enabled must be a bool"),
        ("cooldown_jitter", 1.0, "cooldown_jitter must be a number in"),
    ],
)
def test_validation_names_field_and_range(field: str, value: object, message: str) -> None:
    kwargs: dict[str, object] = {"service": "orders", "secret": SECRET, field: value}
    with pytest.raises(ConfigError, match=message):
        LeaseConfig(**kwargs)  # type: ignore[arg-type]


def test_aequor_key_is_pg_aequors_namespace_by_default_and_can_be_off() -> None:
    assert LeaseConfig(service="orders", secret=SECRET).aequor_lock_namespace == 0x50474151
    assert (
        LeaseConfig(service="o", secret=SECRET, aequor_lock_namespace=None).aequor_lock_namespace
        is None
    )


def test_secret_bytes_as_node_counts_them() -> None:
    # A lone surrogate is U+FFFD (3 bytes) to Node, as in pg-aequor's length check.
    c = LeaseConfig(service="orders", secret="\ud800" * 6)
    assert c.secret_bytes == "\ufffd".encode() * 6
    with pytest.raises(ConfigError, match="16 bytes"):
        LeaseConfig(service="orders", secret="\ud800" * 5)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="max_kills"):
        LeaseConfig(service="orders", secret=SECRET, max_kills=0)


def test_short_secret_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as info:
        LeaseConfig(service="orders", secret="short-secret")
    assert "short-secret" not in str(info.value)
    assert "16 bytes" in str(info.value)
    # bytes count, not characters
    LeaseConfig(service="orders", secret="\u00e9" * 8)


def test_secret_never_in_repr_or_str() -> None:
    c = LeaseConfig(service="orders", secret=SECRET)
    assert SECRET not in repr(c)
    assert SECRET not in str(c)
    assert "orders" in repr(c)


def test_frozen() -> None:
    c = LeaseConfig(service="orders", secret=SECRET)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lease_ttl = 1.0  # type: ignore[misc]
