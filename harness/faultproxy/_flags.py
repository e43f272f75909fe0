"""The command line, read like Go's ``flag`` package reads ``toxiproxy-server``'s.

``-name value``, ``-name=value`` and ``--name`` forms; parsing stops at ``--``
or the first non-flag argument, and leftover arguments are an error here.
``-spin-us`` is faultproxy's own (see ``_loop``). ``-proxy-metrics`` counts
bytes per proxy and direction on ``/metrics`` as the real server does (see
``_metrics``); ``-runtime-metrics`` makes ``/metrics`` exist, but faultproxy has
no Go runtime to report, so it adds no series of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ._loop import DEFAULT_SPIN_US

USAGE = (
    "usage: python -m harness.faultproxy [-host HOST] [-port PORT] [-config FILE] "
    "[-seed N] [-proxy-metrics] [-runtime-metrics] [-spin-us N] [-version]"
)


class FlagError(Exception):
    """Bad command line; the message is the one line to print."""


@dataclass
class Options:
    host: str = "localhost"
    port: int = 8474
    config: str = ""
    seed: int = 0
    spin_us: int = DEFAULT_SPIN_US
    proxy_metrics: bool = False
    runtime_metrics: bool = False
    version: bool = False
    help: bool = False


_VALUED = {"host", "port", "config", "seed", "spin-us"}
_BOOLEAN = {"version", "help", "h", "proxy-metrics", "runtime-metrics"}


def _bool(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise FlagError(f'invalid boolean value "{text}" for -{name}: parse error')


def _int(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise FlagError(f'invalid value "{text}" for flag -{name}: parse error') from None
    if not low <= value <= high:
        raise FlagError(f'invalid value "{text}" for flag -{name}: out of range {low}..{high}')
    return value


_BOOLEAN_FIELDS = {
    "help": "help",
    "h": "help",
    "version": "version",
    "proxy-metrics": "proxy_metrics",
    "runtime-metrics": "runtime_metrics",
}


def _set_valued(opts: Options, name: str, value: str) -> None:
    if name == "host":
        opts.host = value
    elif name == "port":
        opts.port = _int(name, value, 0, 65535)
    elif name == "config":
        opts.config = value
    elif name == "spin-us":
        opts.spin_us = _int(name, value, 0, 1_000_000)
    else:
        opts.seed = _int(name, value, -(2**63), 2**63 - 1)


def parse(argv: list[str]) -> Options:
    opts = Options(seed=time.time_ns())
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            args.insert(0, arg)
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if arg.startswith("---") or not name:
            raise FlagError(f"bad flag syntax: {arg}")
        if name in _BOOLEAN:
            setattr(opts, _BOOLEAN_FIELDS[name], _bool(name, value) if eq else True)
            continue
        if name not in _VALUED:
            raise FlagError(f"flag provided but not defined: -{name}")
        if not eq:
            if not args:
                raise FlagError(f"flag needs an argument: -{name}")
            value = args.pop(0)
        _set_valued(opts, name, value)
    if args:
        raise FlagError(f"unexpected argument: {args[0]}")
    return opts
