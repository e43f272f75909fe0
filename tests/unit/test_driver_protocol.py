"""The driver protocol's wire form: the init line, $n SQL, bad lines, the driver registry."""

from __future__ import annotations

import pytest

from harness.errors import ProtocolError, UsageError
from harness.fleet import schema
from harness.fleet.drivers import DRIVERS, SERVICE_APPLICATION, driver_spec
from harness.fleet.protocol import (
    Completed,
    Init,
    Invoked,
    Ready,
    decode_command,
    decode_message,
    encode,
)


def test_init_round_trips_with_the_spec_and_the_sql() -> None:
    init = Init(spec={"name": "w1", "slot": 1}, sql=schema.dollar_sql())
    assert decode_command(encode(init)) == init


def test_dollar_sql_numbers_every_placeholder_and_keeps_the_statement() -> None:
    sql = schema.dollar_sql()
    assert "%s" not in "".join(sql.values())
    assert sql["write"].count("$1") == 1
    assert "$3" in sql["write"]
    assert "$4" not in sql["write"]
    assert sql["write"].replace("$1", "%s").replace("$2", "%s").replace("$3", "%s") == (
        schema.WRITE_SQL
    )
    assert sql["slow_read"] == "SELECT pg_sleep($1)"


def test_a_node_workers_lines_decode_as_the_python_workers_do() -> None:
    """What worker.js writes (lease_valid null, a class key in the error)."""
    inv = decode_message(
        '{"kind":"invoke","op":"o1","f":"write","value":{"op_id":"o1"},"lease_valid":null,'
        '"backend_pid":12,"worker":"w1","time":1.5,"wall":2.5}'
    )
    assert isinstance(inv, Invoked)
    assert inv.lease_valid is None
    assert inv.backend_pid == 12
    done = decode_message(
        '{"kind":"complete","op":"o1","type":"info","error":{"sqlstate":null,"class":"Error",'
        '"message":"Connection terminated unexpectedly"},"backend_pid":null,"worker":"w1",'
        '"time":2.0,"wall":3.0}'
    )
    assert isinstance(done, Completed)
    assert done.type == "info"
    assert done.error is not None
    assert done.error.cls == "Error"
    ready = decode_message(
        '{"kind":"ready","os_pid":9,"driver":"node-pg","worker":"w1","time":1,"wall":2}'
    )
    assert isinstance(ready, Ready)
    assert ready.driver == "node-pg"


@pytest.mark.parametrize(
    "line",
    [
        b"connected to the database\n",  # a stray console.log
        b'{"kind":"complete","op":"o1"}',  # fields missing
        b'{"kind":"complete","op":"o1","type":"maybe","worker":"w","time":1,"wall":1}',
        b'{"kind":"launch"}',
        b"[1, 2]",
        b"\xff\xfe",
    ],
)
def test_a_line_that_is_no_message_is_a_protocol_error(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_message(line)


def test_drivers_without_leases_share_one_application_name() -> None:
    for d in DRIVERS.values():
        assert d.application_name == ("" if d.leases else SERVICE_APPLICATION)
    assert DRIVERS["lease"].leases
    assert DRIVERS["lease-pgbouncer"].via_pgbouncer


def test_user_drivers_are_named_by_class_path_or_module() -> None:
    py = driver_spec("python:mydriver:MyDriver")
    assert py.transport == "pipe"
    assert py.client_class == "mydriver:MyDriver"
    assert py.api == "driver"
    node = driver_spec("node-module:serverless-postgres")
    assert node.transport == "subprocess"
    assert node.options["module"] == "serverless-postgres"
    with pytest.raises(UsageError, match="unknown driver"):
        driver_spec("mysql")
    with pytest.raises(UsageError, match=r"python:package\.module:Class"):
        driver_spec("python:nocolon")
