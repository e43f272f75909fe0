"""Bytes a client sends before the proxy has reached the upstream: none is lost, none reordered.

The proxy dials the upstream once per accepted client, so a client that speaks
at once (a PostgreSQL startup packet, a pipelined burst) has bytes in flight
before the upstream exists. The real server reads a client only after its dial
succeeded; faultproxy must forward the same bytes in the same order on every
CPython it supports (3.11.2 ignores a ``pause_reading`` made in
``connection_made``, 3.11.7 honours it), and pass on an end of stream that came
meanwhile.

The dial is made slow for real: the upstream's accept queue (``listen(0)``) is
taken by a filler connection, so the kernel drops the proxy's SYN and the dial
stays in ``SYN_SENT`` until the filler is accepted and the SYN is retransmitted
(about a second later). The test waits for that ``SYN_SENT`` socket in
``/proc/net/tcp``, so it knows the dial is pending while the bytes are in flight.
Server-agnostic: the same holds for a real ``toxiproxy-server`` on this host.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.infra.toxiproxy import Proxy, ToxiproxyServer

WAIT = 15.0  # the SYN retransmissions come after 1, 3, 7 s: the first one is enough
SYN_SENT = "02"


def pattern(n: int) -> bytes:
    """``n`` bytes in which any loss or reordering shows (a counter, 4 bytes a step)."""
    whole = b"".join(i.to_bytes(4, "big") for i in range(n // 4 + 1))
    return whole[:n]


def _dials_pending_to(port: int) -> int:
    """Sockets on this host in SYN_SENT towards 127.0.0.1:``port``."""
    want = f"0100007F:{port:04X}"
    found = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == want and fields[3] == SYN_SENT:
            found += 1
    return found


class SlowUpstream:
    """A listener that cannot complete a dial until :meth:`release` is called."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        # takes the accept queue's one place: the next SYN is dropped
        self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_dialling(self) -> None:
        """Fail loudly unless a dial to this upstream is pending (``SYN_SENT``) within WAIT."""
        deadline = time.monotonic() + WAIT
        pause = 0.001
        while _dials_pending_to(self.port) == 0:
            if time.monotonic() > deadline:
                pytest.fail(f"no dial to {self.address} seen in SYN_SENT within {WAIT}s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def release(self) -> socket.socket:
        """Free the queue, then accept the proxy's connection (after its SYN is retransmitted)."""
        taken, _ = self.listener.accept()
        taken.close()
        self._filler.close()
        conn, _ = self.listener.accept()
        conn.settimeout(WAIT)
        return conn

    def close(self) -> None:
        self._filler.close()
        self.listener.close()


@pytest.fixture
def upstream() -> Iterator[SlowUpstream]:
    slow = SlowUpstream()
    try:
        yield slow
    finally:
        slow.close()


@pytest.fixture
def slow_proxy(toxiproxy: ToxiproxyServer, upstream: SlowUpstream) -> Proxy:
    if toxiproxy.kind == "external":
        pytest.skip(
            "the pending dial is observed in this host's /proc/net/tcp; a server at "
            "TOXIPROXY_URL may dial from another network namespace"
        )
    return toxiproxy.create_proxy(f"dial_{time.monotonic_ns()}", upstream.address)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Up to ``n`` bytes: fewer if the stream ends or stays silent for WAIT."""
    out = bytearray()
    try:
        while len(out) < n:
            chunk = sock.recv(min(n - len(out), 1 << 20))
            if not chunk:
                break
            out += chunk
    except TimeoutError:
        pass
    return bytes(out)


def read_to_eof(sock: socket.socket) -> bytes:
    out = bytearray()
    try:
        while chunk := sock.recv(1 << 20):
            out += chunk
    except TimeoutError:
        pytest.fail(f"no end of stream within {WAIT}s after {len(out)} bytes")
    return bytes(out)


def test_bytes_sent_on_connect_arrive_in_order(slow_proxy: Proxy, upstream: SlowUpstream) -> None:
    payload = pattern(100_000)
    with socket.create_connection((slow_proxy.host, slow_proxy.port), timeout=WAIT) as client:
        client.sendall(payload)
        upstream.wait_dialling()
        with upstream.release() as server:
            assert recv_exactly(server, len(payload)) == payload
            server.sendall(b"answer")  # and the link works both ways afterwards
            assert recv_exactly(client, 6) == b"answer"


def test_end_of_stream_before_the_dial_is_passed_on_after_the_bytes(
    slow_proxy: Proxy, upstream: SlowUpstream
) -> None:
    payload = pattern(50_000)
    with socket.create_connection((slow_proxy.host, slow_proxy.port), timeout=WAIT) as client:
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        upstream.wait_dialling()
        with upstream.release() as server:
            assert read_to_eof(server) == payload


def test_client_gone_before_the_dial_still_delivers_its_bytes(
    slow_proxy: Proxy, upstream: SlowUpstream
) -> None:
    payload = pattern(20_000)
    with socket.create_connection((slow_proxy.host, slow_proxy.port), timeout=WAIT) as client:
        client.sendall(payload)
    upstream.wait_dialling()
    with upstream.release() as server:
        assert read_to_eof(server) == payload


def test_more_than_any_buffer_before_the_dial_arrives_in_order(
    slow_proxy: Proxy, upstream: SlowUpstream
) -> None:
    """32 MiB: more than the kernel's socket buffers and the proxy's own bound together,
    so the sender is held back (flow control) until the upstream exists."""
    payload = pattern(32 * 1024 * 1024)
    errors: list[BaseException] = []
    with socket.create_connection((slow_proxy.host, slow_proxy.port), timeout=WAIT) as client:

        def send() -> None:
            try:
                client.sendall(payload)
            except BaseException as exc:
                errors.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        upstream.wait_dialling()
        with upstream.release() as server:
            got = recv_exactly(server, len(payload))
            sender.join(WAIT)
            assert not errors, errors
            assert len(got) == len(payload)
            assert got == payload
