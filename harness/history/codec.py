"""JSON for every recorded dataclass, derived from its fields: each field is spelled once.

:func:`to_json` and :func:`from_json` walk a dataclass's type hints, so adding
a field to an event adds it to the file format and to its validation. What a
hint means on the way in:

- ``str``, ``int``, ``float`` (an int is accepted), ``bool`` (and a bool is
  never accepted where a number is expected);
- ``Literal[...]``: exactly one of its values;
- ``X | None``: null or an X (a missing one is null); a field with a default,
  or a mapping (missing: empty), may be missing;
- ``Mapping[str, V]`` and ``tuple[X, ...]``: a JSON object / array of such;
- a nested dataclass: an object, decoded the same way;
- ``field(metadata={"json": "class"})`` names the JSON key when the Python
  name cannot be it.

Events are told apart by their ``type`` (an op's ``type`` is invoke/ok/fail/info).
Anything that does not fit raises :class:`~harness.errors.HistoryFormatError`
naming the field.

Promise: ``from_json(type(x), to_json(x)) == x`` for every recorded value, and
:func:`load_history` reads back exactly what :class:`~harness.history.writer.HistoryWriter`
wrote; a torn last line, which a crash can leave, is dropped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast, get_args, get_origin

from harness.errors import HistoryFormatError
from harness.history.events import EVENT_TYPES, Event
from harness.history.recorded import Sample

T = TypeVar("T")
_MISSING = object()
DISCRIMINATORS = ("type", "kind")
"""Fields that say what a JSON object is (events: ``type``; fleet messages: ``kind``)."""


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    key: str
    hint: Any
    required: bool
    default: Any


_FIELDS: dict[type[Any], tuple[_Field, ...]] = {}


def _fields(cls: type[Any]) -> tuple[_Field, ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = _fields_of(cls)
    return found


def _fields_of(cls: type[Any]) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = _MISSING
        key = str(f.metadata.get("json", f.name))
        out.append(_Field(f.name, key, hints[f.name], default is _MISSING, default))
    # the discriminator first, so a line says what it is
    return tuple(sorted(out, key=lambda x: x.key not in DISCRIMINATORS))


# --------------------------------------------------------------------------- encoding


def to_json(obj: Any) -> dict[str, Any]:
    """The JSON object for a recorded dataclass instance. An optional field that is
    ``None`` by default and ``None`` now is left out (an invoke has no ``error``)."""
    out: dict[str, Any] = {}
    for f in _fields(type(obj)):
        v = getattr(obj, f.name)
        if v is None and not f.required and f.default is None:
            continue
        out[f.key] = _encode(v)
    return out


def _encode(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return to_json(v)
    if isinstance(v, Mapping):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_encode(x) for x in v]
    return v


def dumps(obj: Any) -> str:
    """One JSON line, newline included (NaN and infinities refused)."""
    return json.dumps(to_json(obj), separators=(",", ":"), allow_nan=False) + "\n"


# --------------------------------------------------------------------------- decoding


def from_json(cls: type[T], raw: Any, *, where: str | None = None) -> T:
    """An instance of ``cls`` from its JSON object; :class:`HistoryFormatError` if it
    does not fit the fields' types."""
    what = where or cls.__name__
    if not isinstance(raw, Mapping):
        raise HistoryFormatError(f"{what} should be a JSON object, got {raw!r}")
    kwargs: dict[str, Any] = {}
    for f in _fields(cls):
        if f.key not in raw:
            if not f.required:
                continue
            if _admits_none(f.hint):
                kwargs[f.name] = None
            elif get_origin(f.hint) in (Mapping, dict):
                kwargs[f.name] = {}
            else:
                raise HistoryFormatError(f"missing field {f.key!r} in {what}")
            continue
        kwargs[f.name] = _decode(f.hint, raw[f.key], f"field {f.key!r} of {what}")
    return cls(**kwargs)


def _admits_none(hint: Any) -> bool:
    return get_origin(hint) in (types.UnionType, typing.Union) and type(None) in get_args(hint)


def _decode(hint: Any, v: Any, what: str) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return v
    if origin in (types.UnionType, typing.Union):
        options = get_args(hint)
        if v is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _decode(inner[0] if len(inner) == 1 else Any, v, what)
    if origin is typing.Literal:
        if v not in get_args(hint) or isinstance(v, bool):
            allowed = ", ".join(repr(a) for a in get_args(hint))
            raise HistoryFormatError(f"{what} should be one of {allowed}, got {v!r}")
        return v
    if origin in (Mapping, dict) or hint is dict:
        if not isinstance(v, dict):
            raise HistoryFormatError(f"{what} should be an object, got {v!r}")
        args = get_args(hint)
        value_hint = args[1] if len(args) == 2 else Any
        return {str(k): _decode(value_hint, x, what) for k, x in v.items()}
    if origin is tuple:
        if not isinstance(v, list):
            raise HistoryFormatError(f"{what} should be a list, got {v!r}")
        item = get_args(hint)[0]
        return tuple(_decode(item, x, what) for x in v)
    if dataclasses.is_dataclass(hint):
        return from_json(cast(type[Any], hint), v, where=what)
    return _scalar(hint, v, what)


def _scalar(hint: Any, v: Any, what: str) -> Any:
    if isinstance(v, bool) and hint is not bool:
        raise HistoryFormatError(f"{what} is a bool, not {hint.__name__}")
    if hint is float and isinstance(v, int | float):
        return float(v)
    if isinstance(hint, type) and isinstance(v, hint):
        return v
    name = getattr(hint, "__name__", str(hint))
    raise HistoryFormatError(f"{what} should be {name}, got {v!r}")


def registry(classes: Iterable[type[T]], field_name: str) -> dict[str, type[T]]:
    """Which class a JSON object is, by the value of its discriminator ``field_name``
    (each class's ``Literal`` values of that field)."""
    by_tag: dict[str, type[T]] = {}
    for cls in classes:
        for tag in get_args(typing.get_type_hints(cls)[field_name]):
            by_tag[tag] = cls
    return by_tag


@cache
def _event_classes() -> dict[str, type[Event]]:
    return registry(EVENT_TYPES, "type")


def event_from_json(raw: Any) -> Event:
    """One history object as its event; :class:`HistoryFormatError` naming what is wrong."""
    if not isinstance(raw, Mapping):
        raise HistoryFormatError(f"not a JSON object: {raw!r}")
    tag = raw.get("type")
    cls = _event_classes().get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise HistoryFormatError(f"unknown event type {tag!r}")
    return from_json(cls, raw, where=f"{tag} event")


# ------------------------------------------------------------------------ files


def parse_lines(
    lines: Iterable[str], decode: Callable[[Any], T], *, source: str = "<history>"
) -> list[T]:
    """Decode JSON lines; blank lines are skipped, anything else malformed raises."""
    out: list[T] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryFormatError(f"{source}:{n}: not JSON: {exc}") from exc
        try:
            out.append(decode(raw))
        except HistoryFormatError as exc:
            raise HistoryFormatError(f"{source}:{n}: {exc}") from exc
    return out


def _load(path: str | os.PathLike[str], decode: Callable[[Any], T], allow_torn: bool) -> list[T]:
    p = Path(path)
    if not p.exists():
        return []
    lines = p.read_text(encoding="utf-8").split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    out = parse_lines(lines, decode, source=str(path))
    if tail.strip():
        try:
            out.extend(parse_lines([tail], decode, source=str(path)))
        except HistoryFormatError:
            if not allow_torn:
                raise
    return out


def load_history(path: str | os.PathLike[str], *, allow_torn_tail: bool = True) -> list[Event]:
    """A history file's events, in file order. A last line without its newline is what
    a crash mid-write leaves; with ``allow_torn_tail`` it is dropped if it does not parse."""
    return _load(path, event_from_json, allow_torn_tail)


def load_samples(path: str | os.PathLike[str]) -> list[Sample]:
    """The samples of an ``activity.jsonl`` (a torn last line is dropped)."""
    return _load(path, lambda raw: from_json(Sample, raw, where="sample"), True)
