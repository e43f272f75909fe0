"""A run's identity, asked of the real servers: what summary.json and report.html name."""

from __future__ import annotations

import re

from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer
from harness.report import run_identity
from harness.report.identity import package_version


def test_identity_names_the_real_components(
    pg: PostgresServer, toxiproxy_server: ToxiproxyServer
) -> None:
    ident = run_identity(pg, toxiproxy_server)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", ident["utc_date"])
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", ident["git_commit"]), ident["git_commit"]
    assert ident["python"].startswith("CPython 3.")
    assert ident["postgresql"].startswith("PostgreSQL 1"), ident["postgresql"]
    kind, _, version = ident["toxiproxy_server"].partition(" ")
    assert kind == toxiproxy_server.kind
    assert version == toxiproxy_server.version != ""
    assert ident["toxiproxy_python"] == package_version("toxiproxy-python") != "not installed"
    assert not any("password" in str(v).lower() or "dsn" in str(v).lower() for v in ident.values())


def test_identity_without_servers_says_so() -> None:
    ident = run_identity()
    assert ident["postgresql"] == "not started"
    assert ident["toxiproxy_server"] == "not started"
