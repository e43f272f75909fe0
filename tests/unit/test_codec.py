"""One codec, derived from the dataclass fields: every recorded type round-trips through JSON.

The strategies below are themselves derived from the type hints, so a field
added to an event, a sample or a worker message is covered without touching
this file: nothing about the schema is spelled here.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, get_args, get_origin

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import HistoryFormatError, ProtocolError
from harness.fleet.protocol import (
    COMMAND_TYPES,
    MESSAGE_TYPES,
    decode_command,
    decode_message,
    encode,
)
from harness.history import (
    EVENT_TYPES,
    ActivityRow,
    FinalState,
    Sample,
    dumps,
    event_from_json,
    from_json,
    to_json,
)

JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=8))


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """A strategy for values of ``hint``, as the codec reads hints."""
    origin = get_origin(hint)
    if hint is Any:
        return JSON_SCALAR
    if origin in (types.UnionType, typing.Union):
        return st.one_of([strategy_for(a) for a in get_args(hint)])
    if hint is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from(get_args(hint))
    if origin in (Mapping, dict):
        args = get_args(hint)
        values = strategy_for(args[1]) if len(args) == 2 else JSON_SCALAR
        return st.dictionaries(st.text(max_size=6), values, max_size=3)
    if origin is tuple:
        return st.lists(strategy_for(get_args(hint)[0]), max_size=3).map(tuple)
    if dataclasses.is_dataclass(hint):
        return instances(typing.cast(type[Any], hint))
    return {
        str: st.text(max_size=12),
        int: st.integers(-(2**53), 2**53),
        float: st.floats(allow_nan=False, allow_infinity=False, width=64),
        bool: st.booleans(),
    }[hint]


def instances(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


RECORDED = (*EVENT_TYPES, ActivityRow, Sample, FinalState)


@pytest.mark.parametrize("cls", RECORDED, ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_recorded_type_round_trips(cls: type[Any], data: st.DataObject) -> None:
    value = data.draw(instances(cls))
    raw = json.loads(json.dumps(to_json(value)))
    assert from_json(cls, raw) == value
    if cls in EVENT_TYPES:
        assert event_from_json(json.loads(dumps(value))) == value


@pytest.mark.parametrize("cls", MESSAGE_TYPES + COMMAND_TYPES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_worker_message_round_trips(cls: type[Any], data: st.DataObject) -> None:
    value = data.draw(instances(cls))
    line = encode(value)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    decoded = decode_message(line) if cls in MESSAGE_TYPES else decode_command(line)
    assert decoded == value


def test_each_field_is_named_once_in_the_json() -> None:
    """The JSON keys are the dataclass fields (one renamed through metadata)."""
    for cls in RECORDED:
        names = {f.metadata.get("json", f.name) for f in dataclasses.fields(cls)}
        assert len(names) == len(dataclasses.fields(cls))
    err = {"sqlstate": None, "class": "E", "message": "m"}
    ok = {"type": "ok", "op": "a", "process": 1, "worker": None, "f": "read", "value": {}}
    event = event_from_json({**ok, "time": 1, "wall": 2, "error": err})
    assert to_json(event)["error"] == err


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "fault", "f": "melt", "worker": None, "time": 1, "wall": 2}, "one of"),
        ({"type": "reap", "worker": None, "pid": 1, "result": "maimed"}, "one of"),
        ({"type": "worker", "f": "spawn", "worker": "w", "os_pid": 1.5}, "should be int"),
        ({"type": "backend", "worker": "w", "backend_pid": True}, "is a bool"),
    ],
)
def test_literal_and_scalar_fields_are_enforced(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(HistoryFormatError, match=message):
        event_from_json({"time": 1, "wall": 2, **raw})


@pytest.mark.parametrize(
    "line",
    [b"not json", b"[1]", b'{"kind": "shout"}', b'{"kind": "paused", "worker": "w"}'],
)
def test_a_line_that_is_no_message_is_a_protocol_error(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_message(line)
