"""The faultproxy process: the API server, the optional populate file, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
from pathlib import Path

from ._api import Api
from ._errors import ApiError
from ._flags import Options
from ._http import serve
from ._proxies import ProxyCollection, parse_populate


class StartupError(Exception):
    """The server could not start; the message is the one line to print."""


async def _populate_from(collection: ProxyCollection, path: str) -> int:
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
    return len(proxies)


async def run(opts: Options) -> None:
    """Serve until SIGINT or SIGTERM; every proxy is stopped on the way out."""
    random.seed(opts.seed)
    collection = ProxyCollection()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        if opts.config:
            count = await _populate_from(collection, opts.config)
            print(f"faultproxy: populated {count} proxies from {opts.config}", file=sys.stderr)
        try:
            server = await serve(Api(collection), opts.host, opts.port)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {opts.host}:{opts.port}: {exc.strerror or exc}"
            ) from None
        async with server:
            print(
                f"faultproxy: API listening on http://{opts.host}:{opts.port}",
                file=sys.stderr,
                flush=True,
            )
            await stop.wait()
    finally:
        collection.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
