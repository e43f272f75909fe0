"""The chaos environment shared by the detection tests: one server pair per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer
from harness.schedule import ChaosEnv


@pytest.fixture(scope="module")
def chaos(pg: PostgresServer, toxiproxy_server: ToxiproxyServer) -> Iterator[ChaosEnv]:
    yield ChaosEnv(pg, toxiproxy_server)
