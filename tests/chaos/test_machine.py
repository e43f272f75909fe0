"""The stateful machine passes on the correct client (``ci`` profile: a fixed seed)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from harness.chaos.env import ChaosEnv
from harness.chaos.machine import machine_for
from harness.chaos.profiles import apply_ci_seed
from harness.fleet.procs import assert_no_leftover_processes

pytestmark = pytest.mark.slow


def test_correct_client_survives_generated_fault_sequences(chaos: ChaosEnv) -> None:
    machine = apply_ci_seed(machine_for(chaos))
    run_state_machine_as_test(machine, settings=settings(settings.default, stateful_step_count=5))
    assert_no_leftover_processes()
