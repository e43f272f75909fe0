"""The server log's terminations, attributed, on a log PostgreSQL 15 really wrote.

``tests/fixtures/logs/pg15_terminations.log`` was recorded from a LocalCluster
(PostgreSQL 15.18) with ``log_statement = 'all'`` for the application role: a
``pg_terminate_backend`` of backend ``victim`` by backend ``killer``, an
idle-session timeout, an idle-in-transaction timeout and an immediate restart.
"""

from __future__ import annotations

from pathlib import Path

from harness.observe.serverlog import connection_events, parse_log, terminations

ADMIN = "terminating connection due to administrator command"
LOG = (Path(__file__).parents[1] / "fixtures" / "logs" / "pg15_terminations.log").read_text()


def test_each_cause_is_read_with_the_victims_name() -> None:
    found = terminations(LOG)
    assert [(t.cause, t.application_name) for t in found] == [
        ("terminate_backend", "victim"),
        ("idle_session_timeout", "idler"),
        ("idle_in_transaction_timeout", "txidler"),
    ]


def test_a_kill_is_attributed_to_the_statement_that_named_the_victim() -> None:
    kill = terminations(LOG)[0]
    assert kill.killer_application_name == "killer"
    assert kill.killer_pid is not None
    assert kill.killer_pid != kill.pid
    assert kill.statement is not None
    assert "pg_terminate_backend" in kill.statement
    assert f"{{{kill.pid}}}" in kill.statement  # the parameters line, joined


def test_timeouts_have_no_killer_and_a_restart_is_no_termination() -> None:
    found = terminations(LOG)
    assert all(t.killer_pid is None for t in found[1:])
    assert any("immediate shutdown" in ln.message for ln in parse_log(LOG))
    assert len(found) == 3


def test_since_and_the_clock_offset_apply() -> None:
    first = terminations(LOG)[0]
    later = terminations(LOG, since_wall=first.wall + 0.001, monotonic_offset=100.0)
    assert all(t.wall > first.wall for t in later)
    assert all(abs(t.time - (t.wall - 100.0)) < 1e-9 for t in later)


def test_without_logged_statements_the_killer_is_unknown() -> None:
    quiet = "\n".join(ln for ln in LOG.splitlines() if "pg_terminate_backend" not in ln)
    kill = terminations(quiet)[0]
    assert kill.cause == "terminate_backend"
    assert kill.killer_pid is None


def test_the_latest_kill_statement_wins_when_none_names_the_victim() -> None:
    kill_sql = "LOG:  statement: SELECT pg_terminate_backend"
    a = f"2026-01-01 00:00:00.100 UTC [11] app@db app=ka {kill_sql}(pid) FROM x"
    b = f"2026-01-01 00:00:00.200 UTC [12] app@db app=kb {kill_sql}(pid) FROM y"
    v = f"2026-01-01 00:00:00.201 UTC [13] app@db app=v FATAL:  {ADMIN}"
    old = f"2025-12-31 23:59:50.000 UTC [14] app@db app=k0 {kill_sql}(13)"
    (kill,) = terminations("\n".join([old, a, b, v]))
    assert kill.killer_application_name == "kb"


def test_a_multi_line_kill_statement_is_read_whole() -> None:
    """serverless-postgres's kill statement spans lines; the log goes on with tabs."""
    lines = [
        "2026-01-01 00:00:00.100 UTC [11] app@db app=svc LOG:  execute <unnamed>: ",
        "\t        SELECT pg_terminate_backend(pid)",
        "\t        FROM pg_stat_activity",
        "\t        WHERE pid = ANY ($1)",
        "2026-01-01 00:00:00.100 UTC [11] app@db app=svc DETAIL:  parameters: $1 = '{13,14}'",
        f"2026-01-01 00:00:00.101 UTC [13] app@db app=svc FATAL:  {ADMIN}",
    ]
    (kill,) = terminations("\n".join(lines))
    assert kill.killer_pid == 11
    assert kill.statement is not None
    assert "FROM pg_stat_activity" in kill.statement
    assert "{13,14}" in kill.statement


def test_a_kill_aimed_at_another_pid_is_not_the_killer() -> None:
    """Measured: an operator's kill (from an admin session, not logged) came a moment
    after a reaper's kill of another zombie, and was blamed on the reaper."""
    reaper = (
        "2026-01-01 00:00:00.100 UTC [11] app@db app=reaper LOG:  statement: SAVEPOINT"
        " lease_kill; SELECT pg_terminate_backend(a.pid) AS lease_killed FROM"
        " pg_stat_activity a WHERE a.pid = 12 AND a.state = 'idle'"
    )
    stmt = "LOG:  statement: SELECT pg_terminate_backend"
    direct = f"2026-01-01 00:00:00.110 UTC [15] app@db app=k {stmt}(14)"
    v = f"2026-01-01 00:00:00.201 UTC [13] app@db app=v FATAL:  {ADMIN}"
    (kill,) = terminations("\n".join([reaper, direct, v]))
    assert kill.killer_pid is None
    aimed = f"2026-01-01 00:00:00.150 UTC [16] app@db app=k2 {stmt}(13)"
    (kill,) = terminations("\n".join([reaper, aimed, v]))
    assert kill.killer_application_name == "k2"


def test_every_authorized_connection_is_read_with_its_application_name() -> None:
    found = connection_events(LOG)
    assert [(c.user, c.database, c.application_name) for c in found] == [
        ("thawproof_admin", "postgres", None),
        ("thawproof_admin", "postgres", None),
        ("thawproof_app", "thawproof", "victim"),
        ("thawproof_app", "thawproof", "killer"),
        ("thawproof_app", "thawproof", "idler"),
        ("thawproof_app", "thawproof", "txidler"),
    ]
    assert all(c.pid > 0 and c.time == c.wall for c in found)
    late = connection_events(LOG, since_wall=found[2].wall, monotonic_offset=100.0)
    assert late[0].application_name == "victim"
    assert late[0].time == late[0].wall - 100.0
