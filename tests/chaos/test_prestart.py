"""A cold-start wave whose sandboxes were started ahead (``prestart=yes``) arrives at once.

Without it, a wave's sandboxes are forked one by one as its invocations arrive, so on
two cores a wave of hundreds is spread over tens of seconds and never all in flight.
With it, every sandbox of the wave exists (process, proxy, client; no connection)
before the wave's first invocation, and the wave still opens its connections only
when invoked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.chaos.env import ChaosEnv, judge
from harness.chaos.steps import Age, ColdStartWave, Invoke
from harness.history import BackendEvent, OpEvent, WorkerEvent
from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer

pytestmark = pytest.mark.slow

WAVE = 8


@pytest.mark.parametrize("prestarted", [True, False])
def test_a_wave_started_ahead_has_every_sandbox_before_its_first_invocation(
    pg: PostgresServer, toxiproxy_server: ToxiproxyServer, tmp_path: Path, prestarted: bool
) -> None:
    env = ChaosEnv(pg, toxiproxy_server, cap=WAVE, keep=tmp_path)
    judged = judge(env, [ColdStartWave(WAVE, prestarted), Age(), Invoke("write")])
    events = judged.run.timeline.events
    wave = [e for e in events if isinstance(e, OpEvent) and e.f == "slow_read"]
    invokes = [e for e in wave if e.type == "invoke"]
    assert len(invokes) == WAVE
    first_invoke = min(e.time for e in invokes)
    spawned = {e.worker: e.time for e in events if isinstance(e, WorkerEvent) and e.f == "spawn"}
    before = {e.worker for e in invokes if spawned[e.worker or ""] < first_invoke}
    connected = [e for e in events if isinstance(e, BackendEvent) and e.time < first_invoke]
    if prestarted:
        assert len(before) == WAVE, (before, spawned, first_invoke)
        assert connected == [], (
            "a sandbox started ahead opened its connection before its invocation"
        )
    else:
        assert len(before) < WAVE  # the contrast: they start as the wave arrives
