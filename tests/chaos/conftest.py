"""The chaos environment for the stateful tests: shared servers, fresh fleets per example."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.fleet.procs import assert_no_leftover_processes
from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer
from harness.schedule import ChaosEnv


@pytest.fixture(scope="module")
def chaos(pg: PostgresServer, toxiproxy_server: ToxiproxyServer) -> Iterator[ChaosEnv]:
    yield ChaosEnv(pg, toxiproxy_server)
    assert_no_leftover_processes()
