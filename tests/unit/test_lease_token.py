"""Lease tokens: pg-aequor wire compatibility, the 63-byte limit, tampering, sanitising."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.lease import token

# Computed with pg-aequor 0.1.4's own code (LEASE_SPEC.md).
VECTORS = [
    (
        "orders",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600000,
        "s=orders;i=AbCdEf12;e=1767225600000;g=xW0oiwAZHGw",
    ),
    (
        "billing service/eu",
        "Zz9_-xY0",
        "another secret of 32 bytes......",
        1767225600123,
        "s=billing_ser-012639db;i=Zz9_-xY0;e=1767225600123;g=m5gBbgWGllY",
    ),
]


@pytest.mark.parametrize(("service", "instance", "secret", "expiry", "expected"), VECTORS)
def test_spec_vectors_encode_exactly(
    service: str, instance: str, secret: str, expiry: int, expected: str
) -> None:
    assert token.encode(service, instance, expiry, secret) == expected
    assert token.encode(service, instance, expiry, secret.encode()) == expected


@pytest.mark.parametrize(("service", "instance", "secret", "expiry", "expected"), VECTORS)
def test_spec_vectors_verify(
    service: str, instance: str, secret: str, expiry: int, expected: str
) -> None:
    lease = token.verify(expected, service, secret)
    assert lease is not None
    assert (lease.instance, lease.expiry_ms) == (instance, expiry)
    assert lease.expiry == expiry / 1000
    assert token.verify(expected, service, secret + "x") is None
    assert token.verify(expected, "other", secret) is None


def test_service_tag_rules() -> None:
    assert token.service_tag("orders") == "orders"
    assert token.service_tag("a" * 20) == "a" * 20
    long = "a" * 21
    assert token.service_tag(long) == "a" * 11 + "-" + hashlib.sha1(long.encode()).hexdigest()[:8]
    # sanitising changed it, even though it is short
    assert token.service_tag("a b") == "a_b-" + hashlib.sha1(b"a b").hexdigest()[:8]
    # and the hash is over the ORIGINAL utf-8 name
    name = "zahlungsdienst-\u00fc"
    assert token.service_tag(name).endswith(hashlib.sha1(name.encode("utf-8")).hexdigest()[:8])
    assert token.service_tag(name).startswith("zahlungsdie-")


def test_sanitize() -> None:
    assert token.sanitize("aZ09:_-") == "aZ09:_-"
    assert token.sanitize("a;b=c%d é") == "a_b_c_d__"


def test_new_instance_is_8_base64url_chars() -> None:
    seen = {token.new_instance() for _ in range(200)}
    assert len(seen) == 200
    for inst in seen:
        assert len(inst) == 8
        assert token.sanitize(inst) == inst


@given(
    service=st.text(min_size=1, max_size=200),
    expiry=st.integers(min_value=0, max_value=9_999_999_999_999),
)
def test_any_service_fits_63_bytes_and_round_trips(service: str, expiry: int) -> None:
    secret = b"0123456789abcdef"
    tok = token.encode(service, token.new_instance(), expiry, secret)
    assert len(tok.encode("utf-8")) <= token.MAX_BYTES
    assert tok.isascii()
    lease = token.verify(tok, service, secret)
    assert lease is not None and lease.expiry_ms == expiry
    assert tok.startswith(f"s={token.service_tag(service)};")


def test_worst_case_is_exactly_63_bytes() -> None:
    tok = token.encode("x" * 20, "AAAAAAAA", 9_999_999_999_999, b"0123456789abcdef")
    assert len(tok) == 63


def test_too_long_instance_is_refused_not_truncated() -> None:
    with pytest.raises(ValueError, match="63"):
        token.encode("x" * 20, "A" * 9, 9_999_999_999_999, b"0123456789abcdef")


GOOD = VECTORS[0][4]


@pytest.mark.parametrize(
    "name",
    [
        GOOD.replace("e=1767225600000", "e=1767225600001"),  # expiry extended
        GOOD.replace("i=AbCdEf12", "i=AbCdEf13"),
        GOOD.replace("s=orders", "s=orderz"),
        GOOD[:-1] + "x",  # signature
        GOOD[:-1],  # truncated signature
        GOOD + "\n",
        GOOD + ";x=1",
        GOOD.replace("e=1767225600000", "e=01767225600000"),
        GOOD.replace("e=1767225600000", "e=1767225600000.5"),
        GOOD.replace("e=1767225600000", "e=-1"),
        GOOD.replace("e=1767225600000", "e=\u0661\u0662"),  # non-ASCII digits
        "",
        "psql",
        "s=orders;i=;e=1;g=x",
        "s=orders;i=a;e=1",
        ";;;;",
    ],
)
def test_tampered_or_malformed_is_not_ours(name: str) -> None:
    assert token.verify(name, "orders", "sixteen-byte-secret!") is None


@given(st.one_of(st.text(max_size=80), st.binary(max_size=80), st.none(), st.integers()))
def test_parse_and_verify_never_raise(junk: object) -> None:
    token.parse(junk)
    assert token.verify(junk, "orders", b"0123456789abcdef") is None


def test_parse_without_signature_check() -> None:
    lease = token.parse(GOOD.replace("g=xW0oiwAZHGw", "g=forged"))
    assert lease is not None and lease.service == "orders" and lease.signature == "forged"


def test_like_pattern_escapes_wildcards() -> None:
    assert token.like_pattern("orders") == "s=orders;%"
    assert token.like_pattern("my_svc") == "s=my\\_svc;%"
    assert token.like_pattern("50%off").startswith("s=50\\_off-")
