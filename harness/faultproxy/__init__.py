"""faultproxy: a Toxiproxy-compatible fault proxy server, for where no ``toxiproxy-server`` is.

Run it as ``python -m harness.faultproxy -host 127.0.0.1 -port 8474 [-config FILE]``.
It speaks the Toxiproxy 2.x HTTP API as described in ``TOXIPROXY_API.md`` so
that ``toxiproxy-python`` (or any Toxiproxy client) drives it unchanged, and
swapping in the real server changes nothing in a scenario.

Where it deliberately differs from the real server:

- **Rejected with 400** (``bad request body: ...``), on create and on update,
  because the real server would crash or spin: a ``bandwidth`` toxic with
  ``rate`` <= 0 (the real one stalls the connection forever at 0 and panics
  below; disable the proxy or use a ``timeout`` toxic to cut traffic instead),
  and a ``slicer`` with ``average_size`` <= 0 or ``size_variation`` < 0.
- A ``slicer`` keeps each cut strictly inside its piece, so no
  ``size_variation`` can make it panic; pieces are otherwise as the real ones.
- ``/version`` answers ``2.12.0+faultproxy``: the API level it follows, marked
  so the harness can tell the two servers apart.
- Populate answers, for an identical proxy it left alone, that proxy itself
  (the real server lists a fresh, unstarted copy of it).
- A ``timeout`` toxic swallows the end of the stream too (the real server passes
  it on at once): a connection through it closes only when its timer fires or,
  with ``timeout`` 0, when the toxic is removed, as TOXIPROXY_API.md says; so a
  blackholed worker's backend stays a zombie after the worker dies.
- ``-config`` with a file that cannot be read or populated is fatal (one line
  on stderr, exit status 2) rather than logged and ignored.
- An update or restart of a toxic resets only that toxic's behaviour (the real
  server restarts every toxic of the direction on every change).

Speed: without toxics a direction is a straight splice in ``data_received``
(see ``_link``), and the event loop spins for up to 50 µs before sleeping
(``-spin-us``, see ``_loop``), which roughly halves the latency added per
round trip on a small machine. ``bench/bench_proxy.py`` measures both.

Layout (each module has one job): ``_http`` speaks HTTP, ``_api`` routes and
answers, ``_proxies`` holds the proxies by name, ``_proxy`` is one listener,
``_link`` one client/upstream pair and its fast path, ``_pipe`` the toxic chain
of one direction, ``_toxicset`` a proxy's toxics, ``_toxics`` the toxic types and
request parsing, ``_behaviours`` what each toxic does, ``_addr`` Go-style
``host:port`` handling, ``_decode`` Go-style JSON decoding, ``_flags`` the
command line, ``_loop`` the event loop, ``_server`` the process.
"""

VERSION = "2.12.0+faultproxy"

__all__ = ["VERSION"]
