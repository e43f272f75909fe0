"""Toxic types, their attributes, and parsing toxic requests (create and update).

Checks run in the real server's order: body, stream, type, name conflict (the
caller's, between :func:`parse_create` and :meth:`NewToxic.build`), attributes.

Rejected with 400 where the real server would crash or spin (documented
choice, see the package docstring): ``bandwidth`` with ``rate`` <= 0, and
``slicer`` with ``average_size`` <= 0 or ``size_variation`` < 0.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from . import _behaviours as behave
from . import _decode as decode
from ._errors import bad_request, invalid_stream, invalid_toxic_type

UPSTREAM = "upstream"
DOWNSTREAM = "downstream"

Behaviour = Callable[[behave.Stage], Coroutine[Any, Any, None]]


def _any(attrs: dict[str, int]) -> str | None:
    return None


def _check_bandwidth(attrs: dict[str, int]) -> str | None:
    if attrs["rate"] <= 0:
        return "bandwidth rate must be greater than 0 (KB/s); use a disabled proxy to cut traffic"
    return None


def _check_slicer(attrs: dict[str, int]) -> str | None:
    if attrs["average_size"] <= 0:
        return "slicer average_size must be greater than 0"
    if attrs["size_variation"] < 0:
        return "slicer size_variation must not be negative"
    return None


@dataclass(frozen=True)
class Kind:
    """A toxic type: its attribute names (in JSON order) and its behaviour."""

    name: str
    attributes: tuple[str, ...]
    run: Behaviour
    check: Callable[[dict[str, int]], str | None] = _any
    closes_on_removal: bool = False


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("noop", (), behave.noop),
        Kind("latency", ("latency", "jitter"), behave.latency),
        Kind("bandwidth", ("rate",), behave.bandwidth, _check_bandwidth),
        Kind("slow_close", ("delay",), behave.slow_close),
        Kind("timeout", ("timeout",), behave.timeout, closes_on_removal=True),
        Kind("reset_peer", ("timeout",), behave.reset_peer),
        Kind("slicer", ("average_size", "size_variation", "delay"), behave.slicer, _check_slicer),
        Kind("limit_data", ("bytes",), behave.limit_data),
    )
}


def _go_number(value: float) -> int | float:
    """Go prints a whole float32 without a fraction (``1``, not ``1.0``)."""
    return int(value) if value.is_integer() else value


@dataclass
class Toxic:
    """One named toxic of a proxy, in one direction."""

    name: str
    kind: Kind
    stream: str
    direction: str
    toxicity: float
    attributes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.kind.name,
            "stream": self.stream,
            "toxicity": _go_number(self.toxicity),
        }


def _parse_attributes(kind: Kind, raw: Any, base: dict[str, int]) -> dict[str, int]:
    members = decode.fields(raw, f"toxics.{kind.name}")
    attrs = dict(base)
    for attr in kind.attributes:
        attrs[attr] = decode.integer(
            members, attr, base.get(attr, 0), f"{kind.name}.attributes.{attr}"
        )
    problem = kind.check(attrs)
    if problem is not None:
        raise bad_request(problem)
    return attrs


@dataclass
class NewToxic:
    """A create request that passed the body, stream and type checks."""

    name: str
    kind: Kind
    stream: str
    direction: str
    toxicity: float
    raw_attributes: Any

    def build(self) -> Toxic:
        """Parse the attributes (the last check) and make the toxic."""
        attrs = _parse_attributes(self.kind, self.raw_attributes, {})
        return Toxic(self.name, self.kind, self.stream, self.direction, self.toxicity, attrs)


def parse_create(body: bytes) -> NewToxic:
    """Check body, stream and type of a ``POST /proxies/{p}/toxics`` body."""
    members = decode.fields(decode.first_value(body), "toxics.ToxicWrapper")
    where = "ToxicWrapper"
    name = decode.string(members, "name", "", f"{where}.name")
    type_name = decode.string(members, "type", "", f"{where}.type")
    stream = decode.string(members, "stream", DOWNSTREAM, f"{where}.stream")
    toxicity = decode.number(members, "toxicity", 1.0, f"{where}.toxicity")
    raw_attributes = members.get("attributes")
    if raw_attributes is not None and not isinstance(raw_attributes, dict):
        decode.fields(raw_attributes, f"{where}.attributes")
    direction = stream.lower()
    if direction not in (UPSTREAM, DOWNSTREAM):
        raise invalid_stream()
    if not name:
        name = f"{type_name}_{stream}"
    kind = KINDS.get(type_name)
    if kind is None:
        raise invalid_toxic_type()
    return NewToxic(name, kind, stream, direction, toxicity, raw_attributes)


def parse_update(toxic: Toxic, body: bytes) -> tuple[dict[str, int], float]:
    """New attributes (merged into the current ones) and toxicity from an update body."""
    members = decode.fields(decode.first_value(body), "toxics.ToxicWrapper")
    toxicity = decode.number(members, "toxicity", toxic.toxicity, "ToxicWrapper.toxicity")
    attrs = _parse_attributes(toxic.kind, members.get("attributes"), toxic.attributes)
    return attrs, toxicity
