"""harness.drivers: client drivers, the code a user's serverless handler would contain.

A worker runs one driver (``harness/fleet/drivers.py`` names them; the protocol a
driver in any language speaks is ``PROTOCOL.md`` beside this file, and
``README.md`` shows how to wrap your own client in a few lines).

- ``plain``  one psycopg connection opened at cold start; reconnect after an error
- ``pool``   psycopg_pool's ConnectionPool at module scope, as its documentation advises
- ``node/``  the Node runtime (``worker.js``) and the Node drivers

A Python driver is a class ``cls(conninfo, options, hooks)`` with ``execute``,
``transaction`` and ``close``; it imports nothing from the harness, so a user's
client is wrapped without learning the harness's internals.
"""
