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


class _Bad(Exception):
    """A value does not fit its hint; the message says how ("should be int, got 'x'")."""


Conv = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    key: str
    hint: Any
    required: bool
    default: Any
    decode: Conv
    encode: Conv | None
    """None: the value is JSON as it is (a scalar, or a mapping of JSON values)."""
    missing: Any = _MISSING
    """What a missing required field decodes to (None for X | None, {} for a mapping)."""


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
        hint = hints[f.name]
        missing: Any = _MISSING
        if _admits_none(hint):
            missing = None
        elif get_origin(hint) in (Mapping, dict):
            missing = {}
        key = str(f.metadata.get("json", f.name))
        out.append(
            _Field(
                f.name,
                key,
                hint,
                default is _MISSING,
                default,
                _decoder(hint),
                _encoder(hint),
                missing,
            )
        )
    # the discriminator first, so a line says what it is
    return tuple(sorted(out, key=lambda x: x.key not in DISCRIMINATORS))


def _admits_none(hint: Any) -> bool:
    return get_origin(hint) in (types.UnionType, typing.Union) and type(None) in get_args(hint)


def _without_none(hint: Any) -> Any:
    """``X`` of ``X | None``; ``Any`` for a wider union; the hint itself otherwise."""
    if get_origin(hint) not in (types.UnionType, typing.Union):
        return hint
    inner = [o for o in get_args(hint) if o is not type(None)]
    return inner[0] if len(inner) == 1 else Any


# --------------------------------------------------------------------------- encoding


def _encoder(hint: Any) -> Conv | None:
    """How to turn a value of ``hint`` into JSON, or None when it already is JSON."""
    hint = _without_none(hint)
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return lambda v: None if v is None else to_json(v)
    if origin is tuple:
        item = _encoder(get_args(hint)[0])
        if item is None:
            return lambda v: None if v is None else list(v)
        return lambda v: None if v is None else [item(x) for x in v]
    if origin in (Mapping, dict) or hint is dict:
        args = get_args(hint)
        inner = _encoder(args[1]) if len(args) == 2 else None
        if inner is None:
            return lambda v: None if v is None else {str(k): x for k, x in v.items()}
        return lambda v: None if v is None else {str(k): inner(x) for k, x in v.items()}
    return None


def to_json(obj: Any) -> dict[str, Any]:
    """The JSON object for a recorded dataclass instance. An optional field that is
    ``None`` by default and ``None`` now is left out (an invoke has no ``error``)."""
    out: dict[str, Any] = {}
    for f in _fields(type(obj)):
        v = getattr(obj, f.name)
        if v is None and not f.required and f.default is None:
            continue
        out[f.key] = v if f.encode is None else f.encode(v)
    return out


_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def dumps(obj: Any) -> str:
    """One JSON line, newline included (NaN and infinities refused)."""
    return _ENCODE(to_json(obj)) + "\n"


# --------------------------------------------------------------------------- decoding


def from_json(cls: type[T], raw: Any, *, where: str | None = None) -> T:
    """An instance of ``cls`` from its JSON object; :class:`HistoryFormatError` if it
    does not fit the fields' types."""
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise HistoryFormatError(f"{where or cls.__name__} should be a JSON object, got {raw!r}")
    kwargs: dict[str, Any] = {}
    for f in _fields(cls):
        if f.key not in raw:
            if not f.required:
                continue
            if f.missing is _MISSING:
                raise HistoryFormatError(f"missing field {f.key!r} in {where or cls.__name__}")
            kwargs[f.name] = f.missing
            continue
        try:
            kwargs[f.name] = f.decode(raw[f.key])
        except _Bad as bad:
            raise HistoryFormatError(f"field {f.key!r} of {where or cls.__name__} {bad}") from None
    return cls(**kwargs)


def _scalar_str(v: Any) -> Any:
    if type(v) is str:
        return v
    raise _Bad(_should("str", v))


def _scalar_int(v: Any) -> Any:
    if type(v) is int:
        return v
    raise _Bad("is a bool, not int" if type(v) is bool else _should("int", v))


def _scalar_float(v: Any) -> Any:
    if type(v) is float or type(v) is int:
        return float(v)
    raise _Bad("is a bool, not float" if type(v) is bool else _should("float", v))


def _scalar_bool(v: Any) -> Any:
    if type(v) is bool:
        return v
    raise _Bad(_should("bool", v))


def _should(name: str, v: Any) -> str:
    return f"should be {name}, got {v!r}"


def _decoder(hint: Any) -> Conv:  # noqa: C901, PLR0911 — one case per kind of hint
    """How to read a JSON value of ``hint``, built once per field; it raises :class:`_Bad`."""
    if hint is Any:
        return lambda v: v
    if _admits_none(hint):
        inner = _decoder(_without_none(hint))
        return lambda v: None if v is None else inner(v)
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return lambda v: v
    if origin is typing.Literal:
        allowed = frozenset((type(a), a) for a in get_args(hint))
        said = ", ".join(repr(a) for a in get_args(hint))

        def literal(v: Any) -> Any:
            try:
                if (type(v), v) in allowed:
                    return v
            except TypeError:  # an unhashable value is no literal
                pass
            raise _Bad(f"should be one of {said}, got {v!r}")

        return literal
    if origin in (Mapping, dict) or hint is dict:
        args = get_args(hint)
        value = _decoder(args[1]) if len(args) == 2 else None

        def mapping(v: Any) -> Any:
            if type(v) is not dict:
                raise _Bad(f"should be an object, got {v!r}")
            if value is None:
                return {str(k): x for k, x in v.items()}
            return {str(k): value(x) for k, x in v.items()}

        return mapping
    if origin is tuple:
        item = _decoder(get_args(hint)[0])

        def items(v: Any) -> Any:
            if type(v) is not list:
                raise _Bad(f"should be a list, got {v!r}")
            return tuple(item(x) for x in v)

        return items
    if dataclasses.is_dataclass(hint):
        cls = cast(type[Any], hint)

        def nested(v: Any) -> Any:
            try:
                return from_json(cls, v)
            except HistoryFormatError as exc:
                raise _Bad(f"is wrong: {exc}") from None

        return nested
    scalar = {str: _scalar_str, int: _scalar_int, float: _scalar_float, bool: _scalar_bool}
    if hint in scalar:
        return scalar[hint]

    def other(v: Any) -> Any:
        if isinstance(hint, type) and isinstance(v, hint):
            return v
        raise _Bad(_should(getattr(hint, "__name__", str(hint)), v))

    return other


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
