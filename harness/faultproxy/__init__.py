"""faultproxy: a Toxiproxy-compatible fault proxy server, for where no ``toxiproxy-server`` is.

Run it as ``python -m harness.faultproxy -host 127.0.0.1 -port 8474 [-config FILE]``.
It speaks the Toxiproxy 2.x HTTP API as described in ``TOXIPROXY_API.md`` so
that ``toxiproxy-python`` (or any Toxiproxy client) drives it unchanged, and
swapping in the real server changes nothing in a scenario.

Where it deliberately differs from the real server (``README.md`` beside this
file says the same, with the reasons at more length):

- **Rejected with 400** (``bad request body: ...``), on create and on update,
  because the real server would crash or spin: a ``bandwidth`` toxic with
  ``rate`` <= 0 (the real one stalls the connection forever at 0 and panics
  below; disable the proxy or use a ``timeout`` toxic to cut traffic instead),
  and a ``slicer`` with ``average_size`` <= 0 or ``size_variation`` < 0.
- A ``slicer`` keeps each cut strictly inside its piece, so no
  ``size_variation`` can make it panic; pieces are otherwise as the real ones.
- A ``timeout`` toxic swallows the end of the stream too (the real server passes
  it on at once): a connection through it closes only when its timer fires or,
  with ``timeout`` 0, when the toxic is removed, as TOXIPROXY_API.md says; so a
  blackholed worker's backend stays a zombie after the worker dies.
- A change to the toxics restarts only the toxic updated, and toxicity is drawn
  again only when it changes (the real server restarts, and draws again for, a
  toxic on every update of it and when a toxic is added right after it or the
  one after it is removed; a restarted ``latency`` lets its held chunk go at once).
- ``/version`` answers ``2.12.0+faultproxy``: the API level it follows, marked
  so the harness can tell the two servers apart.
- At start it prints plain lines on stderr with the addresses actually bound
  (``-port 0``: the port chosen), and for ``-config`` the number of proxies that
  exist afterwards (the real server logs JSON on stdout, the address as given,
  and one count per populate entry).
- A start that cannot succeed (``-config`` unreadable or not populated, the API
  address not bound, a bad flag) is one line on stderr and exit status 2; the
  real server logs the first two and runs on without them.
- ``/metrics`` is text only (no gzip, no protobuf) and ``-runtime-metrics`` adds
  no series; ``sent_bytes_total`` counts what was handed to the socket even when
  a later write failed (the real server then adds nothing for that direction).
- ``-seed`` seeds the toxics' draws (as 2.8.0 did; 2.12.0 ignores it);
  ``-spin-us`` is faultproxy's own. No log line per client, no HTTP timeouts.

Speed: without toxics a direction is a straight splice in ``data_received``
(see ``_link``); the event loop spins for up to 50 µs before sleeping
(``-spin-us``, see ``_loop``), which roughly halves the latency added per round
trip on a small machine; and glibc's allocator is set at start so that a read
never maps memory (``_alloc``). ``bench/bench_proxy.py`` measures the result.

Layout (each module has one job): ``_http`` speaks HTTP, ``_api`` routes and
answers, ``_proxies`` holds the proxies by name, ``_proxy`` is one listener,
``_link`` one client/upstream pair and its fast path, ``_pipe`` the toxic chain
of one direction, ``_toxicset`` a proxy's toxics, ``_toxics`` the toxic types and
request parsing, ``_behaviours`` what each toxic does, ``_chunks`` what flows
through a chain, ``_metrics`` the byte counters and their Prometheus text,
``_addr`` Go-style ``host:port`` handling, ``_decode`` Go-style JSON decoding,
``_errors`` the API's error messages, ``_flags`` the command line, ``_loop`` the
event loop, ``_alloc`` the allocator settings, ``_server`` the process.
"""

VERSION = "2.12.0+faultproxy"

__all__ = ["VERSION"]
