"""harness.chaos: fault schedules, how they are run on real components, and judged.

- ``steps``        the schedule language: pure data (imports no psycopg, no fleet)
- ``timings``      the compressed lease timings (pure data)
- ``interpreter``  applies steps to a live fleet, one handler per step type
- ``zoo``          the nine deliberately broken clients
- ``judge``        a judged run, its story, and the failure Hypothesis shrinks
- ``env``          shared servers, fresh fleets per example, settle, judge
- ``strategies``   Hypothesis strategies for schedules, and the detectors per bug
- ``machine``      a Hypothesis state machine over a live fleet
- ``profiles``     the Hypothesis profiles (dev, ci, nightly, replay)

This package imports nothing at import time, on purpose: a worker process loads
``harness.chaos.zoo`` by path, and must not pull in the fleet with it.
"""
