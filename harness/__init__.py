"""thawproof: a chaos harness for PostgreSQL clients in serverless workers.

Layering, bottom to top (a layer imports only from layers below it; the
import-linter contracts in ``pyproject.toml`` enforce it, ``make lint`` runs them):

- ``harness.lease``       the lease client and reaper, the system under test;
                          imports nothing else from ``harness``.
- ``harness.errors``,     one error tree for the whole harness; one way to wait
  ``harness.wait``        for an event with a deadline that names what it awaited.
- ``harness.infra``,      real components: PostgreSQL servers, the handle on a
  ``harness.faultproxy``  Toxiproxy server, and our Toxiproxy-compatible server.
- ``harness.history``     what happened: typed events, their codec, the writer, validation.
- ``harness.fleet``,      Lambda-like worker processes and the nemesis;
  ``harness.observe``,    what the server saw (``pg_stat_activity``, its log);
  ``harness.check``       the properties, pure functions of a recorded run.
- ``harness.chaos``,      schedules as data, their interpreter, the environment,
  ``harness.report``      Hypothesis; what a person reads after a run.
- ``harness.cli``         running a named scenario end to end.
- ``scenarios``, ``bench`` and ``tests`` on top.
"""

__version__ = "0.1.0"
