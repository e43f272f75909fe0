"""Decode request bodies the way Go's ``encoding/json`` does in the real server.

What is mirrored: only the first JSON value is read (trailing bytes are
ignored), an empty body is ``EOF``, keys match struct fields
case-insensitively (the last matching key wins), ``null`` leaves a field at its
default, and an integer field takes only an integer literal (``1.5``, ``1e3``
and ``1.0`` are errors, as ``strconv.ParseInt`` would have it). Every failure
is a 400 ``bad request body: <detail>``.
"""

from __future__ import annotations

import json
from typing import Any

from ._errors import ApiError, bad_request

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class _FloatLiteral(float):
    """A JSON number with a fraction or exponent; keeps its text for error messages."""

    text: str

    def __new__(cls, text: str) -> _FloatLiteral:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


_DECODER = json.JSONDecoder(parse_float=_FloatLiteral, parse_constant=_no_constants)


def first_value(body: bytes) -> Any:
    """The first JSON value in ``body``; what follows it is ignored, as by ``json.Decoder``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"invalid UTF-8 in body: {exc.reason}") from None
    stripped = text.lstrip(" \t\r\n")
    if not stripped:
        raise bad_request("EOF")
    try:
        value, _ = _DECODER.raw_decode(stripped)
    except ValueError as exc:
        raise bad_request(_json_error(exc)) from None
    return value


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        if exc.pos >= len(exc.doc):
            return "unexpected EOF"
        return f"{exc.msg} (offset {exc.pos})"
    return str(exc)


def json_type(value: Any) -> str:
    """The JSON type name Go puts in ``cannot unmarshal <type>``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def fields(value: Any, go_type: str) -> dict[str, Any]:
    """An object's members keyed by lower-cased name (last wins); ``null`` is an empty object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(
            f"json: cannot unmarshal {json_type(value)} into Go value of type {go_type}"
        )
    return {key.lower(): member for key, member in value.items()}


def _mismatch(value: Any, where: str, go_type: str) -> ApiError:
    literal = f" {value.text}" if isinstance(value, _FloatLiteral) else ""
    return bad_request(
        f"json: cannot unmarshal {json_type(value)}{literal} into Go struct field {where} "
        f"of type {go_type}"
    )


def string(members: dict[str, Any], key: str, default: str, where: str) -> str:
    value = members.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _mismatch(value, where, "string")
    return value


def boolean(members: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = members.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _mismatch(value, where, "bool")
    return value


def integer(members: dict[str, Any], key: str, default: int, where: str) -> int:
    value = members.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _mismatch(value, where, "int64")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise bad_request(
            f"json: cannot unmarshal number {value} into Go struct field {where} of type int64"
        )
    return value


def number(members: dict[str, Any], key: str, default: float, where: str) -> float:
    value = members.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(value, where, "float32")
    return float(value)
