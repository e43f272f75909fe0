"""Generated neighbours: every shape is drawn, and none is a lease the reaper may kill."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import find, given, settings
from hypothesis import strategies as st

from harness.chaos.neighbours import SIGNATURE_SHAPES, application_name
from harness.chaos.steps import Neighbour, NeighbourShape
from harness.chaos.strategies import SHAPES, neighbours
from harness.chaos.timings import SECRET, SERVICE
from harness.lease import token

NOW_MS = 1_796_000_000_000
TAG = token.service_tag(SERVICE)
NO_DB = settings(database=None, max_examples=2000)  # find() would save what it found


def _ours(name: str) -> bool:
    return token.verify(name, SERVICE, SECRET) is not None


def _has(**wanted: str) -> Callable[[Neighbour], bool]:
    return lambda n: all(getattr(n, k) == v for k, v in wanted.items())


def test_every_shape_is_drawn() -> None:
    for shape in SHAPES:
        found = find(neighbours(), _has(shape=shape), settings=NO_DB)
        assert found.shape == shape


def test_every_role_and_both_expiries_are_drawn() -> None:
    for role in ("app", "plain_role", "signal_role", "superuser"):
        assert find(neighbours(), _has(role=role), settings=NO_DB).role == role
    assert find(neighbours(), lambda n: n.expired, settings=NO_DB).expired
    assert not find(neighbours(), lambda n: not n.expired, settings=NO_DB).expired


@given(neighbours())
def test_no_drawn_neighbour_is_the_services_own_killable_backend(n: Neighbour) -> None:
    name = application_name(n, NOW_MS)
    assert _ours(name) == (n.shape == "genuine"), name
    if n.shape == "genuine":
        # a genuine lease is never one the spec lets the reaper kill
        assert not n.expired or n.role == "superuser"


@given(neighbours(sorted(SIGNATURE_SHAPES)))
def test_signature_shapes_parse_as_this_services_lease(n: Neighbour) -> None:
    lease = token.parse(application_name(n, NOW_MS))
    assert lease is not None
    assert lease.service == TAG


def _one(shape: NeighbourShape, **kw: object) -> str:
    return application_name(Neighbour(shape, "app", True, **kw), NOW_MS)  # type: ignore[arg-type]


def test_each_shape_builds_what_its_name_says() -> None:
    genuine = _one("genuine")
    assert _ours(genuine)
    payload, _, signature = genuine.rpartition(";g=")
    assert _one("plain", text="psql") == "psql"
    assert _one("wrong_signature", text="AAAAAAAAAAA") == f"{payload};g=AAAAAAAAAAA"
    assert _one("truncated", cut=20) == genuine[:20]
    assert _one("truncated", cut=99) == genuine[:-1], "a cut never keeps the whole token"
    assert _one("empty_signature") == f"{payload};g="
    assert _one("padded_signature", text="==") == f"{genuine}=="
    assert _one("non_base64url", text="ab+/cd") == f"{payload};g=ab+/cd"
    other = _one("other_service", text="thaw%")
    assert other.startswith("s=thaw%;")
    lease = token.parse(other)
    assert lease is not None
    assert token.sign(lease.payload, SECRET.encode()) == lease.signature
    assert token.verify(_one("other_secret"), SERVICE, SECRET) is None
    assert token.parse(_one("other_secret")) is not None
    assert signature


@given(st.sampled_from(SHAPES))
def test_an_unexpired_neighbour_expires_an_hour_ahead(shape: NeighbourShape) -> None:
    lease = token.parse(application_name(Neighbour(shape, "app", False), NOW_MS))
    if lease is not None and lease.service == TAG:
        assert lease.expiry_ms == NOW_MS + 3_600_000
