"""The drivers a fleet can run: what a user's handler does about its connections.

A *driver* is the code a serverless handler would contain, set up once at cold
start and called once per invocation (the protocol: ``harness/drivers/PROTOCOL.md``).
:class:`DriverSpec` says how a worker runs one: in a forkserver child over a pipe
(Python; the fast path) or as a program of its own over stdin/stdout (any language).
:data:`DRIVERS` names the ones the harness ships; :func:`driver_spec` also accepts
``python:module:Class`` and ``node-module:<path or package>`` for a user's own.

Pure data: nothing here starts a process or imports a driver.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import UsageError
from harness.fleet.protocol import DEFAULT_CLIENT, DriverApi

NODE_DIR = Path(__file__).resolve().parents[1] / "drivers" / "node"
"""The Node runtime (``worker.js``), the shipped Node drivers and their ``node_modules``."""

SERVICE_APPLICATION = "thawproof-svc"
"""The ``application_name`` of every connection of a driver without leases: one name for
the whole service (serverless-postgres kills only connections that carry its own)."""

Transport = Literal["pipe", "subprocess"]


@dataclass(frozen=True)
class DriverSpec:
    """How a worker runs one driver, and what the environment must provide for it."""

    name: str
    description: str
    transport: Transport = "pipe"
    client_class: str = DEFAULT_CLIENT
    """``pipe``: the Python class, ``module:Class``."""
    api: DriverApi = "lease"
    command: tuple[str, ...] = ()
    """``subprocess``: the program and its arguments."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """The driver's own options, handed to it at cold start."""
    leases: bool = False
    """Its connections carry signed leases in ``application_name`` (P1's lease clause and
    P5's signature check apply)."""
    via_pgbouncer: bool = False
    """Workers reach the server through a PgBouncer in transaction mode."""
    role_settings: Mapping[str, str] = field(default_factory=dict)
    """``ALTER ROLE <app role> SET`` these for the run (reset afterwards)."""
    idempotency: bool = False
    """It has an idempotency-key path (``write_once`` uses it; otherwise a plain write)."""

    @property
    def application_name(self) -> str:
        return "" if self.leases else SERVICE_APPLICATION

    def missing(self) -> str | None:
        """Why this driver cannot run on this machine, or None."""
        if self.transport == "subprocess" and self.command[:1] == ("node",):
            if shutil.which("node") is None:
                return "node is not installed"
            if not (NODE_DIR / "node_modules" / "pg").is_dir():
                return f"{NODE_DIR}/node_modules is missing: run `make node-drivers`"
        if self.via_pgbouncer:
            from harness.infra.pgbouncer import find_pgbouncer

            if find_pgbouncer() is None:
                return "pgbouncer is not installed: run scripts/ensure-pgbouncer.sh"
        return None


def node_driver(name: str, description: str, script: str, **options: Any) -> DriverSpec:
    """A driver run by the Node runtime, ``script`` being a driver file or package."""
    return DriverSpec(
        name=name,
        description=description,
        transport="subprocess",
        api="driver",
        command=("node", str(NODE_DIR / "worker.js"), script),
        options=options,
    )


LEASE = DriverSpec(
    "lease",
    "the bundled lease client and reaper (harness.lease): signed leases, fencing, a guarded reaper",
    leases=True,
    idempotency=True,
)

SERVER_TIMEOUTS = {"idle_session_timeout": "1500", "idle_in_transaction_session_timeout": "1500"}
"""server_timeout's role settings (ms): about the lease TTL plus the minimum idle time of
the compressed timings, so the server ends a zombie about when a reaper would."""

DRIVERS: dict[str, DriverSpec] = {
    d.name: d
    for d in (
        LEASE,
        DriverSpec(
            "plain",
            "one psycopg.connect at module scope; reconnect after an error",
            client_class="harness.drivers.plain:PlainDriver",
            api="driver",
        ),
        DriverSpec(
            "pool",
            "psycopg_pool.ConnectionPool at module scope (max_size=1, max_idle, check)",
            client_class="harness.drivers.pool:PoolDriver",
            api="driver",
            options={"max_idle": 1.0},
        ),
        DriverSpec(
            "server_timeout",
            "plain, with idle_session_timeout and idle_in_transaction_session_timeout set"
            " for the application role",
            client_class="harness.drivers.plain:PlainDriver",
            api="driver",
            role_settings=SERVER_TIMEOUTS,
        ),
        DriverSpec(
            "pgbouncer",
            "plain through PgBouncer in transaction mode",
            client_class="harness.drivers.plain:PlainDriver",
            api="driver",
            options={"prepare_threshold": None},
            via_pgbouncer=True,
        ),
        DriverSpec(
            "lease-pgbouncer",
            "the bundled lease client through the same PgBouncer (transaction mode)",
            leases=True,
            idempotency=True,
            via_pgbouncer=True,
        ),
        node_driver(
            "node-pg",
            "node-postgres: Pool({max: 1, idleTimeoutMillis}) at module scope, pool.on('error')",
            "./drivers/pg_pool.js",
            idleTimeoutMillis=1000,
        ),
        node_driver(
            "serverless-postgres",
            "serverless-postgres 2.1.2 as its README shows; clean() after every invocation",
            "./drivers/serverless_postgres.js",
        ),
    )
}


def driver_spec(name: str) -> DriverSpec:
    """The named driver; ``python:module:Class`` or ``node-module:<path or package>`` for
    a user's own. :class:`UsageError` (one line) for anything else."""
    if name in DRIVERS:
        return DRIVERS[name]
    kind, sep, rest = name.partition(":")
    if sep and rest and kind == "python":
        if ":" not in rest:
            raise UsageError(f"driver {name!r}: expected python:package.module:Class")
        return DriverSpec(name, f"the Python driver {rest}", client_class=rest, api="driver")
    if sep and rest and kind == "node-module":
        return node_driver(
            name,
            f"the pg-compatible Node client exported by {rest}",
            "./drivers/module_client.js",
            module=rest,
        )
    known = ", ".join([*DRIVERS, "python:<module:Class>", "node-module:<path|package>"])
    raise UsageError(f"unknown driver {name!r}; known: {known}")


__all__ = ["DRIVERS", "NODE_DIR", "SERVICE_APPLICATION", "DriverSpec", "driver_spec"]
