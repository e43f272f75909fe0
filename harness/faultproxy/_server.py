"""The faultproxy process: the API server, the optional populate file, clean shutdown.

Once it serves, it says on stderr what the real server logs at start (each
proxy the ``-config`` file started, how many it populated, its version and the
API's address), with the addresses actually bound: with ``-port 0`` that is the
port the kernel chose, where the real server logs ``localhost:0``. A start that
fails says only why, in one line (see ``__main__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
from pathlib import Path

from . import VERSION
from ._addr import bind_listener, join_host_port
from ._api import Api
from ._errors import ApiError
from ._flags import Options
from ._http import serve
from ._metrics import ByteCounters
from ._proxies import ProxyCollection, parse_populate
from ._proxy import Proxy


class StartupError(Exception):
    """The server could not start; the message is the one line to print."""


def say(line: str) -> None:
    print(f"faultproxy: {line}", file=sys.stderr, flush=True)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


async def _populate_from(collection: ProxyCollection, path: str) -> list[Proxy]:
    """Populate from ``path`` as ``POST /populate`` would; any failure is a StartupError."""
    try:
        body = Path(path).read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        proxies, err = await collection.populate(parse_populate(body))
    except ApiError as exc:
        raise StartupError(f"config {path}: {exc.message}") from None
    if err is not None:
        raise StartupError(f"config {path}: {err.message}")
    return proxies


def _report_populated(collection: ProxyCollection, path: str, entries: list[Proxy]) -> None:
    """One line per proxy the file left in place, then how many exist (and entries, if more)."""
    names = list(dict.fromkeys(proxy.name for proxy in entries))
    for name in names:
        proxy = collection.proxies[name]
        state = f"listening on {proxy.listen}" if proxy.enabled else f"disabled ({proxy.listen})"
        say(f"proxy {name} {state}, upstream {proxy.upstream}")
    line = f"populated {_count(len(names), 'proxy', 'proxies')} from {path}"
    if len(entries) != len(names):
        given = _count(len(entries), "entry", "entries")
        line += f" ({given}: a name given more than once is one proxy)"
    say(line)


async def run(opts: Options) -> None:
    """Serve until SIGINT or SIGTERM; every proxy is stopped on the way out."""
    random.seed(opts.seed)
    collection = ProxyCollection(ByteCounters() if opts.proxy_metrics else None)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            sock, bound = bind_listener(join_host_port(opts.host, opts.port))
        except ApiError as exc:
            raise StartupError(f"cannot serve the API: {exc.message}") from None
        with contextlib.ExitStack() as unused:
            unused.callback(sock.close)
            if opts.config:
                entries = await _populate_from(collection, opts.config)
                _report_populated(collection, opts.config, entries)
            api = Api(collection, metrics=opts.proxy_metrics or opts.runtime_metrics)
            server = await serve(api, sock)
            unused.pop_all()
        async with server:
            say(f"version {VERSION}, API listening on http://{bound}")
            await stop.wait()
    finally:
        collection.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
