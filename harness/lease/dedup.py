"""The ``execute_once`` dedup table, and how a result is stored in it.

DDL (``dedup_table`` defaults to ``lease_dedup``)::

    CREATE TABLE IF NOT EXISTS lease_dedup (
        key        text PRIMARY KEY,
        result     jsonb,
        created_at timestamptz NOT NULL DEFAULT now()
    )

One attempt of ``execute_once(key, sql)`` is one transaction: claim the key
(``INSERT .. ON CONFLICT DO NOTHING``: if another attempt holds it uncommitted, this
waits for it), then either read the stored result (the key was already there: the
write happened before) or run the write and store its result. Either all of it
commits or none does, so a retry after a lost acknowledgement finds the key and
returns the original result instead of writing again. Old keys may be deleted by
age (``created_at``) once no retry can still be in flight.

Results are stored as JSON; values JSON cannot carry exactly (Decimal, dates and
times, UUID, bytes, non-finite floats, nested dicts) are tagged so they come back as
the same Python types.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import uuid
from typing import Any

from psycopg import sql

DDL = """CREATE TABLE IF NOT EXISTS {table} (
    key        text PRIMARY KEY,
    result     jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
)"""


def ident(table: str) -> sql.Composable:
    """``schema.table`` or ``table`` as a quoted identifier."""
    return sql.Identifier(*table.split("."))


def ddl(table: str) -> sql.Composed:
    return sql.SQL(DDL).format(table=ident(table))


def claim(table: str) -> sql.Composed:
    return sql.SQL(
        "INSERT INTO {t} (key, result) VALUES (%s, NULL) "
        "ON CONFLICT (key) DO NOTHING RETURNING true"
    ).format(t=ident(table))


def lookup(table: str) -> sql.Composed:
    return sql.SQL("SELECT result FROM {t} WHERE key = %s").format(t=ident(table))


def store(table: str) -> sql.Composed:
    return sql.SQL("UPDATE {t} SET result = %s WHERE key = %s").format(t=ident(table))


_TAG = "$t"


def encode_rows(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [[_enc(v) for v in row] for row in rows]


def decode_rows(stored: Any) -> list[tuple[Any, ...]]:
    if not isinstance(stored, list):
        return []
    return [tuple(_dec(v) for v in row) for row in stored]


# (type, tag, encode, decode): the first type that matches a value encodes it; order
# matters (datetime before date, a bool is an int and is kept as itself).
_TAGGED: tuple[tuple[type | tuple[type, ...], str, Any, Any], ...] = (
    (decimal.Decimal, "decimal", str, decimal.Decimal),
    (dt.datetime, "datetime", dt.datetime.isoformat, dt.datetime.fromisoformat),
    (dt.date, "date", dt.date.isoformat, dt.date.fromisoformat),
    (dt.time, "time", dt.time.isoformat, dt.time.fromisoformat),
    (
        dt.timedelta,
        "timedelta",
        lambda v: [v.days, v.seconds, v.microseconds],
        lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    ),
    (uuid.UUID, "uuid", str, uuid.UUID),
    (
        (bytes, bytearray, memoryview),
        "bytes",
        lambda v: base64.b64encode(bytes(v)).decode("ascii"),
        base64.b64decode,
    ),
)
_DECODERS: dict[str, Any] = {tag: dec for _, tag, _, dec in _TAGGED} | {
    "float": float,
    "str": str,
}


def _enc(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else {_TAG: "float", "v": repr(v)}
    for kind, tag, enc, _ in _TAGGED:
        if isinstance(v, kind):
            return {_TAG: tag, "v": enc(v)}
    if isinstance(v, list | tuple):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        return {_TAG: "dict", "v": {str(k): _enc(x) for k, x in v.items()}}
    return {_TAG: "str", "v": str(v)}


def _dec(v: Any) -> Any:
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if not isinstance(v, dict) or _TAG not in v:
        return v
    tag, val = v[_TAG], v["v"]
    if tag == "dict":
        return {k: _dec(x) for k, x in val.items()}
    decode = _DECODERS.get(tag)
    return val if decode is None else decode(val)
