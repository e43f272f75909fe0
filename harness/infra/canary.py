"""The proxy canary: before a run trusts a Toxiproxy server, it checks that it forwards bytes.

A chaos run blames the client for what it sees through the proxy, so the proxy
must be beyond suspicion. :func:`check_proxy` sends a known stream through a
fresh proxy to a local echo server — the first bytes right after the connect,
while the proxy may still be dialling its upstream, where a proxy is most
likely to lose them — and checks, against the client's own counts, that:

- every byte came back, in order;
- the server's own byte counters (``/metrics``, where it has them) agree with
  what the client sent and received.

Anything else is a :class:`~harness.errors.HarnessFault`: the run stops
unjudged (exit 2) with that reason, and the client is never blamed for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import socket
import threading

from harness.errors import HarnessFault, WaitTimeout
from harness.infra.toxiproxy import ToxiproxyServer
from harness.wait import poll

SIZE = 512 * 1024
FIRST = 1024
"""Bytes sent at once after the connect, before anything else."""
TIMEOUT = 10.0


class _Echo(threading.Thread):
    """Echoes one connection on 127.0.0.1, then stops."""

    def __init__(self) -> None:
        super().__init__(name="proxy-canary-echo", daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                while data := conn.recv(65536):
                    conn.sendall(data)
        except OSError as exc:
            self.error = exc
        finally:
            self.listener.close()


def _exchange(host: str, port: int, payload: bytes) -> bytes:
    got = bytearray()
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.sendall(payload[:FIRST])  # at once: the proxy may still be dialling
        reader = threading.Thread(target=_drain, args=(s, got, len(payload)), daemon=True)
        reader.start()
        s.sendall(payload[FIRST:])
        reader.join(TIMEOUT)
        s.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while data := s.recv(65536):
                got.extend(data)
    return bytes(got)


def _drain(s: socket.socket, into: bytearray, want: int) -> None:
    with contextlib.suppress(OSError):
        while len(into) < want and (data := s.recv(65536)):
            into.extend(data)


def check_proxy(server: ToxiproxyServer, *, size: int = SIZE) -> str:
    """Raise :class:`HarnessFault` unless ``server`` forwards a stream intact and counts
    it right; a sentence saying what was checked."""
    payload = secrets.token_bytes(size)
    echo = _Echo()
    echo.start()
    name = f"thawproof-canary-{secrets.token_hex(4)}"
    proxy = server.create_proxy(name, ("127.0.0.1", echo.port))
    try:
        got = _exchange(proxy.host, proxy.port, payload)
        echo.join(TIMEOUT)
        if got != payload:
            raise HarnessFault(_lost(server, size, got, payload))
        counted = _counted(server, name, size)
    finally:
        with contextlib.suppress(Exception):
            proxy.delete()
    return f"proxy canary: {size} bytes through {server.kind} intact" + (
        ", its byte counters agree" if counted else " (it keeps no byte counters)"
    )


def _lost(server: ToxiproxyServer, size: int, got: bytes, payload: bytes) -> str:
    same = next((i for i, (a, b) in enumerate(zip(got, payload, strict=False)) if a != b), None)
    where = (
        f"the first {len(got)} of {size} bytes came back"
        if same is None
        else f"byte {same} differs (of {len(got)} received)"
    )
    digest = hashlib.sha256(got).hexdigest()[:12]
    return (
        f"the proxy server ({server.kind} {server.version}) did not forward a stream"
        f" intact: {where}, sha256 {digest}; no verdict on a client can be trusted"
        " through it"
    )


def _counted(server: ToxiproxyServer, name: str, size: int) -> bool:
    """The server's counters for the canary agree with the client's; False if it has none."""
    if server.byte_counts() is None:
        return False

    def final() -> dict[str, tuple[int, int]] | None:
        counts = (server.byte_counts() or {}).get(name)
        if not counts or "upstream" not in counts or "downstream" not in counts:
            return None  # counted when the connection ends: not yet
        return {d: (c.received, c.sent) for d, c in counts.items()}

    try:
        seen = poll(final, timeout=TIMEOUT, what=f"the proxy's byte counts for {name}")
    except WaitTimeout as exc:
        raise HarnessFault(f"the proxy server never counted the canary's bytes: {exc}") from exc
    want = {"upstream": (size, size), "downstream": (size, size)}
    if seen != want:
        raise HarnessFault(
            f"the proxy server's byte counts for the canary disagree with the client's:"
            f" counted {seen}, the client sent and received {size} each way"
        )
    return True
