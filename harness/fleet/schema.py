"""The workload tables: created once per fleet, emptied between examples, read at the end.

- ``ledger(op_id, worker, amount)`` has NO unique constraint on purpose: a
  duplicated write must show up as two rows, not as an error.
- ``counter`` has one row; every ``write`` adds the number of ledger rows it
  inserted, so P3 can check ``counter == ledger rows``.
- ``hot`` has one row per worker slot, updated by ``long_tx`` (row locks held
  across a freeze).
- The lease client's ``execute_once`` dedup table, from ``harness.lease.dedup``.

Everything runs on a direct connection to PostgreSQL (never through a proxy), as
the app role, so the tables belong to the role the workers use.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from harness.history import FinalState
from harness.lease import dedup

WRITE_SQL = (
    "WITH ins AS (INSERT INTO ledger(op_id, worker, amount) VALUES (%s, %s, %s) RETURNING 1)"
    " UPDATE counter SET n = n + (SELECT count(*) FROM ins) WHERE id = 1 RETURNING n"
)
"""One statement, so one autocommit transaction: the row and the counter move together."""

READ_SQL = "SELECT count(*) FROM ledger"
SLOW_READ_SQL = "SELECT pg_sleep(%s)"
HOT_SQL = "UPDATE hot SET n = n + 1 WHERE id = %s"
HOT_READ_SQL = "SELECT n FROM hot WHERE id = %s"
BURST_SQL = "SELECT 1"
REJECTED_SQL = "INSERT INTO ledger (op_id, worker, amount) VALUES (NULL, %s, 0)"
"""A write the server always rejects (op_id is NOT NULL: 23502), nothing applied."""


def dollar_sql() -> dict[str, str]:
    """The workload's statements with ``$1``... placeholders, for drivers in other
    languages (node-postgres and most others): the SQL is spelled only here."""
    out: dict[str, str] = {}
    for name, text in (
        ("write", WRITE_SQL),
        ("read", READ_SQL),
        ("slow_read", SLOW_READ_SQL),
        ("hot", HOT_SQL),
        ("burst", BURST_SQL),
        ("rejected", REJECTED_SQL),
    ):
        parts = text.split("%s")
        out[name] = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
    return out


_TABLES = (
    "CREATE TABLE IF NOT EXISTS ledger (op_id text NOT NULL, worker text, amount int)",
    "CREATE TABLE IF NOT EXISTS counter (id int PRIMARY KEY, n bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS hot (id int PRIMARY KEY, n bigint NOT NULL)",
)


def dedup_ddl(table: str) -> sql.Composed:
    """The statement that creates the lease client's ``execute_once`` table."""
    return dedup.ddl(table)


def setup(dsn: str, *, slots: int, dedup_table: str) -> None:
    """Create the tables (idempotent) and bring them to their initial state."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for stmt in _TABLES:
            conn.execute(stmt)
        conn.execute(dedup_ddl(dedup_table))
    reset(dsn, slots=slots, dedup_table=dedup_table)


def reset(dsn: str, *, slots: int, dedup_table: str) -> None:
    """Empty the ledger and the dedup table, zero the counter, one ``hot`` row per slot."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute(
            sql.SQL("TRUNCATE ledger, hot, {}").format(sql.Identifier(*dedup_table.split(".")))
        )
        conn.execute(
            "INSERT INTO counter(id, n) VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET n = 0"
        )
        conn.execute("INSERT INTO hot(id, n) SELECT g, 0 FROM generate_series(1, %s) g", (slots,))


def final_state(dsn: str) -> FinalState:
    """Ledger rows per op_id, the counter and the ledger's row count, read in one snapshot."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rows = conn.execute("SELECT op_id, count(*)::int FROM ledger GROUP BY op_id").fetchall()
        counts: dict[str, int] = {str(k): int(v) for k, v in rows}
        row = conn.execute("SELECT n FROM counter WHERE id = 1").fetchone()
        total = conn.execute("SELECT count(*)::int FROM ledger").fetchone()
    return FinalState(
        ledger_counts=counts,
        counter=int(row[0]) if row else 0,
        ledger_rows=int(total[0]) if total else 0,
    )


class Workload:
    """The workload's tables of one fleet.

    Created as the app role (so the workers own them); reset and read through
    ``reader_dsn`` — a superuser's where the server has one, so the harness's own
    connection still gets in when the service has used every slot it may."""

    def __init__(
        self, dsn: str, *, slots: int, dedup_table: str, reader_dsn: str | None = None
    ) -> None:
        self.dsn, self.slots, self.dedup_table = dsn, slots, dedup_table
        self.reader_dsn = reader_dsn or dsn

    def setup(self) -> None:
        setup(self.dsn, slots=self.slots, dedup_table=self.dedup_table)

    def reset(self) -> None:
        """Empty the ledger and the dedup table, zero the counter and the ``hot`` rows."""
        reset(self.reader_dsn, slots=self.slots, dedup_table=self.dedup_table)

    def final_state(self) -> FinalState:
        """Ledger rows per op_id, the counter and the ledger's row total (one snapshot)."""
        return final_state(self.reader_dsn)
