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


# Produced by RUNNING pg-aequor 0.1.4's own code (github.com/dimaq12/pg-aequor at tag
# v0.1.4, commit b8230b0; lib/lease.js) with Node 20: for each row,
#   new LeaseManager(service, instance, secret).generateAppName(expiry)
# with the inputs passed as JSON (so lone surrogates reach JavaScript as lone code
# units). Only inputs and outputs are kept here, no pg-aequor code. The names cover
# what the UTF-16 semantics of JavaScript make different: characters outside the BMP
# (emoji, math letters, CJK extension B, U+10FFFF; one "_" per UTF-16 code unit, so an
# emoji is "__"), a surrogate pair written as two Python code points (the same string
# to JavaScript), lone and reversed surrogates (U+FFFD in the SHA-1 and HMAC input),
# combining marks, names at and past the 20-unit limit, names sanitising changes, an
# empty name ("sls_pg") and instance ("inst"), instances of other lengths (the
# service's room is 63 - 35 - len(instance); at 8 units or less it is the bare hash),
# and secrets outside ASCII.
AEQUOR_VECTORS = [
    (
        "orders-\U0001f680",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600000,
        "s=orders-__-b8867db0;i=AbCdEf12;e=1767225600000;g=FtuTWS0JOfw",
    ),
    (
        "\U0001f984",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600000,
        "s=__-5df82936;i=AbCdEf12;e=1767225600000;g=6j7fSgXU0j8",
    ),
    (
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 team",
        "Zz9_-xY0",
        "sixteen-byte-secret!",
        1767225600001,
        "s=_________te-cfd5e5b2;i=Zz9_-xY0;e=1767225600001;g=uj3Cqcniq48",
    ),
    (
        "pay\U0001f4b3ments-eu-west",
        "Zz9_-xY0",
        "sixteen-byte-secret!",
        1767225600002,
        "s=pay__ments--09185bf0;i=Zz9_-xY0;e=1767225600002;g=1JUM5zNiZMs",
    ),
    (
        "\U0001d400lpha",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600003,
        "s=__lpha-36d3e7f5;i=AbCdEf12;e=1767225600003;g=1SUmx6svYRk",
    ),
    (
        "\U00020000\U00020001",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600004,
        "s=____-bfe45b96;i=AbCdEf12;e=1767225600004;g=scGPtHvAnvU",
    ),
    (
        "\U0010ffff",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600005,
        "s=__-445c38f9;i=AbCdEf12;e=1767225600005;g=xXSTq8gFkl8",
    ),
    (
        "\ud83d\ude80 split",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600006,
        "s=___split-21f48113;i=AbCdEf12;e=1767225600006;g=8gjRkKXABI4",
    ),
    (
        "lone\ud800high",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600007,
        "s=lone_high-6cf24baa;i=AbCdEf12;e=1767225600007;g=I9SqxqsMvFo",
    ),
    (
        "lone\udc00low",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600008,
        "s=lone_low-777d7e04;i=AbCdEf12;e=1767225600008;g=X8fEgowkQas",
    ),
    (
        "\ude80\ud83d reversed",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600009,
        "s=___reversed-3fa378c8;i=AbCdEf12;e=1767225600009;g=DgGLEtqiuJ8",
    ),
    (
        "cafe\u0301",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600010,
        "s=cafe_-36f5c02b;i=AbCdEf12;e=1767225600010;g=5_hvmPzG3lU",
    ),
    (
        "caf\xe9",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600011,
        "s=caf_-f424452a;i=AbCdEf12;e=1767225600011;g=bZlPayo000I",
    ),
    (
        "aaaaaaaaaaaaaaaaaaaa",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600012,
        "s=aaaaaaaaaaaaaaaaaaaa;i=AbCdEf12;e=1767225600012;g=hIyjNLTVKGY",
    ),
    (
        "aaaaaaaaaaaaaaaaaaaaa",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600013,
        "s=aaaaaaaaaaa-035a4ee5;i=AbCdEf12;e=1767225600013;g=SzOR7AAi0h4",
    ),
    (
        "x" * 200,
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600014,
        "s=xxxxxxxxxxx-94218caa;i=AbCdEf12;e=1767225600014;g=fYzsmzMuJzg",
    ),
    (
        "my service",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600015,
        "s=my_service-5f64ef0b;i=AbCdEf12;e=1767225600015;g=_NBZGhB4NC4",
    ),
    (
        "a;b=c",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600016,
        "s=a_b_c-00204ce0;i=AbCdEf12;e=1767225600016;g=8fdpMYCQ_wU",
    ),
    (
        "50%off",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600017,
        "s=50_off-b8028d30;i=AbCdEf12;e=1767225600017;g=r-eJbT0CzdA",
    ),
    (
        "my_svc:v2-blue",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600018,
        "s=my_svc:v2-blue;i=AbCdEf12;e=1767225600018;g=ch2O5KUwGYg",
    ),
    (
        "",
        "AbCdEf12",
        "sixteen-byte-secret!",
        1767225600019,
        "s=sls_pg;i=AbCdEf12;e=1767225600019;g=6ucCA-xpvIw",
    ),
    (
        "test-svc",
        "inst-1",
        "test-secret-123456",
        1767225600020,
        "s=test-svc;i=inst-1;e=1767225600020;g=lImZNuMdLm8",
    ),
    (
        "twenty-two-chars-name!",
        "inst-1",
        "test-secret-123456",
        1767225600021,
        "s=twenty-two-ch-74825894;i=inst-1;e=1767225600021;g=zuVx_XfrKnM",
    ),
    (
        "twenty-two-chars-names",
        "inst-1",
        "test-secret-123456",
        1767225600022,
        "s=twenty-two-chars-names;i=inst-1;e=1767225600022;g=nP5wm9fmZXw",
    ),
    (
        "orders",
        "",
        "sixteen-byte-secret!",
        1767225600023,
        "s=orders;i=inst;e=1767225600023;g=ibUi22P2RYQ",
    ),
    (
        "orders",
        "in\U0001f680st",
        "sixteen-byte-secret!",
        1767225600024,
        "s=orders;i=in__st;e=1767225600024;g=-cSfWadHal0",
    ),
    (
        "orders",
        "i" * 20,
        "sixteen-byte-secret!",
        1767225600025,
        "s=orders;i=iiiiiiiiiiiiiiiiiiii;e=1767225600025;g=o-f0fklGmv4",
    ),
    (
        "orders-service",
        "i" * 20,
        "sixteen-byte-secret!",
        1767225600029,
        "s=d24b3c2a;i=iiiiiiiiiiiiiiiiiiii;e=1767225600029;g=EMu54aPGH9c",
    ),
    (
        "orders-service",
        "i" * 24,
        "sixteen-byte-secret!",
        1767225600030,
        "s=d24b;i=iiiiiiiiiiiiiiiiiiiiiiii;e=1767225600030;g=6x0nLFWZpXQ",
    ),
    (
        "orders",
        "AbCdEf12",
        "secret with emoji \U0001f511!",
        1767225600027,
        "s=orders;i=AbCdEf12;e=1767225600027;g=6Kv8gq7qjG4",
    ),
    (
        "orders",
        "AbCdEf12",
        "secret lone \ud800 surrogate",
        1767225600028,
        "s=orders;i=AbCdEf12;e=1767225600028;g=KWncVWjoqDU",
    ),
]

# pg-aequor throws "BUG: application_name too long (66 > 63)" for these; so must we.
AEQUOR_REFUSED = [("orders", "i" * 30, "sixteen-byte-secret!", 1767225600026)]

# Whether a pg-aequor 0.1.4 client of that service (8-character instance, as its
# AequorClient always makes) accepts the row's token: its reaper's
# LIKE 's=<its tag>;%' prefix plus LeaseManager.parseAndVerify, run in Node. Rows
# minted with another instance length carry another tag for long names.
AEQUOR_FOREIGN_TAG = {
    "s=twenty-two-ch-74825894;i=inst-1;e=1767225600021;g=zuVx_XfrKnM",
    "s=twenty-two-chars-names;i=inst-1;e=1767225600022;g=nP5wm9fmZXw",
    "s=d24b3c2a;i=iiiiiiiiiiiiiiiiiiii;e=1767225600029;g=EMu54aPGH9c",
    "s=d24b;i=iiiiiiiiiiiiiiiiiiiiiiii;e=1767225600030;g=6x0nLFWZpXQ",
}


@pytest.mark.parametrize(("service", "instance", "secret", "expiry", "expected"), AEQUOR_VECTORS)
def test_aequor_vectors_encode_exactly(
    service: str, instance: str, secret: str, expiry: int, expected: str
) -> None:
    assert token.encode(service, instance, expiry, secret) == expected
    assert token.encode(service, instance, expiry, token.js_utf8(secret)) == expected


@pytest.mark.parametrize(("service", "instance", "secret", "expiry", "expected"), AEQUOR_VECTORS)
def test_aequor_vectors_verify_as_aequor_does(
    service: str, instance: str, secret: str, expiry: int, expected: str
) -> None:
    lease = token.verify(expected, service, secret)
    if expected in AEQUOR_FOREIGN_TAG:
        assert lease is None
        return
    assert lease is not None
    assert (lease.instance, lease.expiry_ms) == (token.sanitize(instance or "inst"), expiry)
    assert token.verify(expected, service, secret + "x") is None


@pytest.mark.parametrize(("service", "instance", "secret", "expiry"), AEQUOR_REFUSED)
def test_aequor_refusals_are_refused(service: str, instance: str, secret: str, expiry: int) -> None:
    with pytest.raises(ValueError, match="63"):
        token.encode(service, instance, expiry, secret)


def test_utf16_semantics() -> None:
    emoji = "\U0001f680"
    assert token.sanitize(emoji) == "__"
    assert token.sanitize("\ud83d\ude80") == "__"  # the same string to JavaScript
    assert token.sanitize("\ud800") == "_"
    assert token.sanitize("e\u0301") == "e_"
    assert token.js_utf8(emoji) == emoji.encode("utf-8")
    assert token.js_utf8("\ud83d\ude80") == emoji.encode("utf-8")
    assert token.js_utf8("a\ud800b\udc00") == "a\ufffdb\ufffd".encode()
    assert token.js_utf8("\ude80\ud83d") == "\ufffd\ufffd".encode()
    # 10 emoji: 10 code points but 20 UTF-16 units, and sanitising changed it anyway
    assert token.service_tag(emoji * 10) == "_" * 11 + "-" + token.service_tag(emoji * 10)[-8:]


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
    assert lease is not None
    assert lease.expiry_ms == expiry
    assert tok.startswith(f"s={token.service_tag(service)};")


def test_worst_case_is_exactly_63_bytes() -> None:
    tok = token.encode("x" * 20, "AAAAAAAA", 9_999_999_999_999, b"0123456789abcdef")
    assert len(tok) == 63


def test_longer_instance_shortens_the_service_as_aequor_does() -> None:
    # pg-aequor sizes the service's room by the instance: 63 - 35 - 9 = 19 here.
    tok = token.encode("x" * 20, "A" * 9, 9_999_999_999_999, b"0123456789abcdef")
    digest = hashlib.sha1(b"x" * 20).hexdigest()[:8]
    assert tok.startswith(f"s={'x' * 10}-{digest};i=AAAAAAAAA;")
    assert len(tok) == 63
    assert token.service_tag("x" * 20, 9) == f"{'x' * 10}-{digest}"


def test_too_long_instance_is_refused_not_truncated() -> None:
    with pytest.raises(ValueError, match="63"):
        token.encode("x" * 20, "A" * 30, 9_999_999_999_999, b"0123456789abcdef")


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
        GOOD.replace("g=", "g=\ud800"),  # a lone surrogate (must not raise either)
        "",
        "psql",
        "s=orders;i=;e=1;g=x",
        "s=orders;i=a;e=1",
        ";;;;",
    ],
)
def test_tampered_or_malformed_is_not_ours(name: str) -> None:
    assert token.verify(name, "orders", "sixteen-byte-secret!") is None


# Every code point, lone surrogates included (Hypothesis leaves them out by default).
ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=80)


@given(service=ANY_TEXT, instance=ANY_TEXT, secret=ANY_TEXT)
def test_any_text_encodes_to_ascii_or_refuses_and_verifies(
    service: str, instance: str, secret: str
) -> None:
    secret += "0123456789abcdef"
    try:
        tok = token.encode(service, instance, 1_767_225_600_000, secret)
    except ValueError:
        assert len(token.sanitize(instance)) > 27  # only a long instance can overflow
        return
    assert tok.isascii()
    assert len(tok) <= token.MAX_BYTES
    expected_room = token.MAX_BYTES - 35 - len(token.sanitize(instance or "inst"))
    if expected_room == 20:
        assert token.verify(tok, service, secret) is not None


@given(st.one_of(ANY_TEXT, st.binary(max_size=80), st.none(), st.integers()))
def test_parse_and_verify_never_raise(junk: object) -> None:
    token.parse(junk)
    assert token.verify(junk, "orders", b"0123456789abcdef") is None


@pytest.mark.parametrize(
    "expiry", ["1767225600000abc", " 1767225600000", "+1767225600000", "-5", "1e3", "0x10"]
)
def test_correctly_signed_but_not_an_integer_expiry_is_not_ours(expiry: str) -> None:
    """A deliberate difference: pg-aequor 0.1.4 reads the expiry with parseInt, which
    accepts all of these (checked in Node: "1e3" reads as 1, "0x10" as 0). Neither
    client ever mints one, so only a holder of the secret could; the spec says a
    non-integer expiry is not ours, and not reaping is the safe side."""
    payload = f"s=orders;i=AbCdEf12;e={expiry}"
    forged = f"{payload};g={token.sign(payload, b'sixteen-byte-secret!')}"
    assert token.verify(forged, "orders", "sixteen-byte-secret!") is None


def test_parse_without_signature_check() -> None:
    lease = token.parse(GOOD.replace("g=xW0oiwAZHGw", "g=forged"))
    assert lease is not None
    assert lease.service == "orders"
    assert lease.signature == "forged"


def test_like_pattern_escapes_wildcards() -> None:
    assert token.like_pattern("orders") == "s=orders;%"
    assert token.like_pattern("my_svc") == "s=my\\_svc;%"
    assert token.like_pattern("50%off").startswith("s=50\\_off-")
