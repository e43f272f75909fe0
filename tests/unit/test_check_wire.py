"""The checker's own reading of the token spec agrees with the spec's vectors.

``harness.check.wire`` is written from LEASE_SPEC.md alone, so that a mistake in
``harness.lease.token`` cannot hide by agreeing with itself; these vectors (made by
running pg-aequor 0.1.4's own code) are what both must produce.
"""

from __future__ import annotations

import pytest

from harness.chaos.timings import SERVICE, SERVICE_TAG
from harness.check import wire
from tests.unit.test_lease_token import AEQUOR_VECTORS, VECTORS

PLAIN = [
    v
    for v in VECTORS + AEQUOR_VECTORS
    if wire.tag(v[0]) is not None
    and wire.tag(v[1]) is not None
    and len(v[1]) == 8
    and v[2].isascii()
]
"""The vectors the oracle covers: a plain service name, the 8-character instance both
clients make, an ASCII secret (the harness's own runs are all of these)."""


def test_there_are_plain_vectors() -> None:
    assert len(PLAIN) >= 2


@pytest.mark.parametrize(("service", "instance", "secret", "expiry", "expected"), PLAIN)
def test_encode_matches_the_vectors(
    service: str, instance: str, secret: str, expiry: int, expected: str
) -> None:
    tag = wire.tag(service)
    assert tag is not None
    assert wire.encode(tag, instance, expiry, secret.encode()) == expected
    assert wire.genuine(expected, tag, secret.encode())
    assert wire.problem(expected, tag, lambda a: wire.genuine(a, tag, secret.encode())) is None


@pytest.mark.parametrize(
    ("service", "instance", "secret", "expiry", "expected"), VECTORS + AEQUOR_VECTORS
)
def test_parse_reads_every_vector(
    service: str, instance: str, secret: str, expiry: int, expected: str
) -> None:
    t = wire.parse(expected)
    assert t is not None
    assert t.expiry_ms == expiry
    assert expected == f"{t.payload};g={t.signature}"


def test_the_chaos_service_tag_is_the_specs() -> None:
    assert wire.tag(SERVICE) == SERVICE_TAG


@pytest.mark.parametrize(
    "name", ["", "psql", "s=orders;i=a;e=;g=x", "s=orders;i=a;e=12abc;g=x", "s=a;i=b;e=١٢;g=x"]
)
def test_parse_refuses_what_is_no_token(name: str) -> None:
    assert wire.parse(name) is None


def test_a_wrong_signature_or_service_is_not_genuine() -> None:
    good = wire.encode("orders", "AbCdEf12", 1767225600000, b"sixteen-byte-secret!")
    assert wire.genuine(good, "orders", b"sixteen-byte-secret!")
    assert not wire.genuine(good, "orders", b"another-secret")
    assert not wire.genuine(good, "order", b"sixteen-byte-secret!")
    assert not wire.genuine(good[:-1] + "A", "orders", b"sixteen-byte-secret!")
