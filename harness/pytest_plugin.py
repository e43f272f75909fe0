"""thawproof's pytest plugin (entry point ``pytest11: thawproof``), for users' own suites.

Installed with the package, it gives a test suite real components and the
scenarios, with nothing mocked:

- ``thawproof_pg`` (session): a throwaway PostgreSQL cluster (``THAWPROOF_DSN``
  to use a server of your own);
- ``thawproof_proxy`` (session): a Toxiproxy-compatible server (a real
  ``toxiproxy-server`` when one is on ``PATH`` or at ``TOXIPROXY_URL``, else
  faultproxy), trusted only once its byte canary passed;
- ``thawproof_fleet`` (function): ``make_fleet(client="pkg.mod:Class", workers=3)``
  gives a :class:`~harness.fleet.Fleet` of Lambda-like worker processes running your
  client, each behind its own proxy, closed after the test;
- ``thawproof_scenario`` (function): ``run("thaw_storm", client="pkg.mod:Class",
  **options)`` runs a named scenario against your client on the session's
  servers and returns its :class:`~harness.report.ScenarioResult` (``.ok``,
  ``.result``, ``.verdicts``); its report goes under the test's ``tmp_path``.

Your client class must keep :class:`harness.lease.LeaseClient`'s constructor
``(conninfo, config, *, hooks=None, rng=None)`` — subclass it and override the
seams you change (see ``harness/lease/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.chaos.timings import Timings
from harness.cli.commands import find_scenarios
from harness.cli.runner import run_on_servers
from harness.errors import UsageError
from harness.fleet import Fleet, FleetConfig
from harness.infra.canary import check_proxy
from harness.infra.postgres import PostgresServer, open_server
from harness.infra.toxiproxy import ToxiproxyServer
from harness.report import ScenarioResult

Runner = Callable[..., ScenarioResult]


@pytest.fixture(scope="session")
def thawproof_pg() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server."""
    with open_server(max_connections=60) as server:
        yield server


@pytest.fixture(scope="session")
def thawproof_proxy() -> Iterator[ToxiproxyServer]:
    """The session's Toxiproxy-compatible server, canary-checked."""
    with ToxiproxyServer() as server:
        check_proxy(server)
        yield server


@pytest.fixture
def thawproof_fleet(
    thawproof_pg: PostgresServer, thawproof_proxy: ToxiproxyServer, tmp_path: Path
) -> Iterator[Callable[..., Fleet]]:
    """``make_fleet(client="pkg.mod:Class", workers=3, **lease_overrides)``."""
    made: list[Fleet] = []

    def make_fleet(
        client: str = "harness.lease:LeaseClient", workers: int = 3, **lease: Any
    ) -> Fleet:
        config = FleetConfig(
            lease={**Timings().lease_kwargs(), **lease}, max_workers=workers, client_class=client
        )
        fleet = Fleet(thawproof_pg, thawproof_proxy, tmp_path / f"fleet-{len(made)}.jsonl", config)
        made.append(fleet)
        return fleet

    yield make_fleet
    for fleet in made:
        fleet.close()


@pytest.fixture
def thawproof_scenario(
    thawproof_pg: PostgresServer, thawproof_proxy: ToxiproxyServer, tmp_path: Path
) -> Runner:
    """``run(name, **options) -> ScenarioResult`` on the session's servers."""

    def run(name: str, **options: Any) -> ScenarioResult:
        scenarios = find_scenarios()
        if name not in scenarios:
            raise UsageError(f"unknown scenario {name!r}; known: {', '.join(scenarios)}")
        opts = {k: str(v) for k, v in options.items()}
        return run_on_servers(
            scenarios[name], thawproof_pg, thawproof_proxy, opts, reports=tmp_path / "reports"
        )

    return run
