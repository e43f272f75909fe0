"""thawproof: a chaos harness for PostgreSQL clients in serverless workers.

Layering, bottom to top (a layer imports only from layers below it):

- ``harness.lease``       the lease client and reaper, the system under test;
                          imports nothing else from ``harness``.
- ``harness.infra``,      real components: PostgreSQL clusters, the handle on a
  ``harness.faultproxy``  Toxiproxy server, and our Toxiproxy-compatible server.
- ``harness.fleet``       Lambda-like worker processes on top of both.
- ``harness.history``, ``harness.observe``, ``harness.checks``,
  ``harness.strategies``  recording a run and judging it.
- ``scenarios``, ``tests``, ``bench`` on top.
"""

__version__ = "0.1.0"
