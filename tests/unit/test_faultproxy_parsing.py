"""faultproxy's pure pieces: request decoding, toxic parsing, routing, flags, addresses."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.faultproxy._addr import split_host_port
from harness.faultproxy._api import Api, route
from harness.faultproxy._behaviours import slice_points
from harness.faultproxy._decode import first_value
from harness.faultproxy._errors import ApiError
from harness.faultproxy._flags import FlagError, parse
from harness.faultproxy._http import Response
from harness.faultproxy._toxics import parse_create, parse_update


def error_of(call: object, *args: object) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.status, caught.value.message


# -- JSON bodies ------------------------------------------------------------------------


def test_first_value_ignores_trailing_bytes() -> None:
    assert first_value(b' {"a": 1} trailing junk') == {"a": 1}


@pytest.mark.parametrize("body", [b"", b"   \n", b"{", b"NaN", b"\xff"])
def test_bad_bodies_are_400(body: bytes) -> None:
    status, message = error_of(first_value, body)
    assert status == 400
    assert message.startswith("bad request body: ")


def test_empty_body_is_eof() -> None:
    assert error_of(first_value, b"") == (400, "bad request body: EOF")


# -- toxics -----------------------------------------------------------------------------


def test_create_defaults() -> None:
    toxic = parse_create(b'{"type": "latency"}').build()
    assert toxic.to_json() == {
        "attributes": {"latency": 0, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }


def test_keys_match_case_insensitively_and_stream_keeps_its_spelling() -> None:
    toxic = parse_create(b'{"Type": "noop", "STREAM": "UpStream", "toxicity": 0.5}').build()
    assert (toxic.name, toxic.direction, toxic.stream, toxic.toxicity) == (
        "noop_UpStream",
        "upstream",
        "UpStream",
        0.5,
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"type": "latency", "stream": ""}', "stream was invalid"),
        (b'{"type": "nope", "stream": "x"}', "stream was invalid"),
        (b'{"type": "nope"}', "invalid toxic type"),
        (b'{"stream": "upstream"}', "invalid toxic type"),
        (b'{"type": 5}', "bad request body"),
        (b'{"type": "noop", "attributes": [1]}', "bad request body"),
    ],
)
def test_create_checks_in_order(body: bytes, expected: str) -> None:
    status, message = error_of(parse_create, body)
    assert status == 400
    assert message.startswith(expected)


@pytest.mark.parametrize("value", ["1.5", "1.0", "1e3", "true", '"5"', "[]", "9223372036854775808"])
def test_attributes_must_be_int64(value: str) -> None:
    request = parse_create(f'{{"type": "latency", "attributes": {{"latency": {value}}}}}'.encode())
    status, message = error_of(request.build)
    assert status == 400
    assert message.startswith("bad request body: json: cannot unmarshal")


def test_unknown_attributes_ignored_missing_zero() -> None:
    toxic = parse_create(b'{"type": "slicer", "attributes": {"average_size": 3, "x": 1}}').build()
    assert toxic.attributes == {"average_size": 3, "size_variation": 0, "delay": 0}


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "bandwidth", "attributes": {"rate": 0}}',
        b'{"type": "bandwidth"}',
        b'{"type": "slicer", "attributes": {"average_size": 0}}',
        b'{"type": "slicer", "attributes": {"average_size": 5, "size_variation": -1}}',
    ],
)
def test_documented_rejections(body: bytes) -> None:
    status, message = error_of(parse_create(body).build)
    assert status == 400
    assert message.startswith("bad request body: ")


def test_update_merges_attributes_and_keeps_toxicity() -> None:
    toxic = parse_create(b'{"type": "latency", "attributes": {"latency": 5, "jitter": 2}}').build()
    attrs, toxicity = parse_update(toxic, b'{"attributes": {"jitter": 7}, "type": "timeout"}')
    assert attrs == {"latency": 5, "jitter": 7}
    assert toxicity == 1.0
    attrs, toxicity = parse_update(toxic, b'{"toxicity": 0.25}')
    assert attrs == {"latency": 5, "jitter": 2}
    assert toxicity == 0.25


# -- slicer -----------------------------------------------------------------------------


@given(
    length=st.integers(1, 5000),
    average=st.integers(1, 300),
    variation=st.integers(0, 600),
    seed=st.integers(0, 2**32),
)
def test_slice_points_partition_the_chunk(
    length: int, average: int, variation: int, seed: int
) -> None:
    points = slice_points(length, average, variation, random.Random(seed))
    assert points == sorted(set(points))
    assert points[-1] == length
    assert points[0] > 0
    sizes = [b - a for a, b in zip([0, *points], points, strict=False)]
    assert all(size <= max(average + variation, 1) for size in sizes)


# -- routing ----------------------------------------------------------------------------


def test_routes() -> None:
    found = route("GET", "/proxies/a%2Fb/toxics/t")
    assert not isinstance(found, Response)
    endpoint, params = found
    assert endpoint is Api.toxic_show
    assert params == {"proxy": "a/b", "toxic": "t"}
    assert route("PATCH", "/proxies/x")[0] is Api.proxy_update  # type: ignore[index]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/proxies/", 404),
        ("GET", "/proxies//toxics", 404),
        ("DELETE", "/proxies", 405),
        ("GET", "/populate", 405),
        ("HEAD", "/version", 405),
    ],
)
def test_route_misses(method: str, path: str, status: int) -> None:
    found = route(method, path)
    assert isinstance(found, Response)
    assert found.status == status


# -- command line and addresses --------------------------------------------------------


def test_flags_defaults_and_forms() -> None:
    opts = parse([])
    assert (opts.host, opts.port, opts.config) == ("localhost", 8474, "")
    opts = parse(["-host=127.0.0.1", "--port", "9000", "-config", "c.json", "-proxy-metrics"])
    assert (opts.host, opts.port, opts.config) == ("127.0.0.1", 9000, "c.json")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-nope"], "flag provided but not defined: -nope"),
        (["-port"], "flag needs an argument: -port"),
        (["-port", "http"], 'invalid value "http" for flag -port: parse error'),
        (["-port", "70000"], 'invalid value "70000" for flag -port: out of range 0..65535'),
        (["extra"], "unexpected argument: extra"),
    ],
)
def test_bad_flags(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError, match=message):
        parse(argv)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:5432", ("127.0.0.1", 5432)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:80", ("::1", 80)),
        (":7000", ("", 7000)),
        ("", ("", 0)),
    ],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("nohost", "missing port in address"),
        ("::1:80", "too many colons"),
        ("h:99999", "invalid port"),
    ],
)
def test_split_host_port_errors(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_host_port(address)
