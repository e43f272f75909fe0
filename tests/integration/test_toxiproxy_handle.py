"""``harness.infra.toxiproxy``: choosing, starting, waiting for and releasing a server,
and reading what each proxy moved (its byte counts)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.errors import ProxyServerUnavailable
from harness.infra.toxiproxy import ByteCounts, Direction, ToxiproxyServer, parse_byte_counts


def test_unanswering_url_fails_loudly_without_hanging() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with (
            pytest.raises(ProxyServerUnavailable, match="did not answer"),
            ToxiproxyServer(env={"TOXIPROXY_URL": url}, start_timeout=1.0),
        ):
            pass
        assert time.monotonic() - start < 10


def test_bad_server_path_fails_loudly(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with (
        pytest.raises(ProxyServerUnavailable, match="not an executable"),
        ToxiproxyServer(env={"TOXIPROXY_SERVER": missing}),
    ):
        pass


def test_server_that_exits_is_reported_with_its_status(tmp_path: Path) -> None:
    fake = tmp_path / "toxiproxy-server"
    fake.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    with (
        pytest.raises(ProxyServerUnavailable, match=r"status 3.*cannot start"),
        ToxiproxyServer(env={"TOXIPROXY_SERVER": str(fake)}),
    ):
        pass


def test_started_server_is_reaped_on_error() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TOXIPROXY_URL", "TOXIPROXY_SERVER")}
    server = ToxiproxyServer(env=env, kind="faultproxy")

    def fail_inside() -> None:
        with server:
            assert server.process is not None
            assert server.process.poll() is None
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    assert server.process is not None
    assert server.process.poll() is not None


# -- byte counts (the harness's check on itself) --------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                sock.sendall(data)


@pytest.fixture
def echo_address() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _counts_when(
    server: ToxiproxyServer, name: str, done: Callable[[dict[Direction, ByteCounts]], bool]
) -> dict[Direction, ByteCounts]:
    """The proxy's counts once ``done`` holds for them (they are added as connections end)."""
    deadline = time.monotonic() + 10
    pause = 0.005
    while True:
        counts = server.byte_counts()
        assert counts is not None
        mine = dict(counts.get(name, {}))
        if done(mine):
            return mine
        if time.monotonic() > deadline:
            pytest.fail(f"byte counts of {name} never settled: {mine}")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def test_byte_counts_match_the_bytes_moved(toxiproxy: ToxiproxyServer, echo_address: str) -> None:
    if toxiproxy.byte_counts() is None:
        pytest.skip(f"{toxiproxy!r} exposes no /metrics (started without -proxy-metrics)")
    proxy = toxiproxy.create_proxy(f"counted_{uuid.uuid4().hex[:10]}", echo_address)
    sizes = (1, 70_000, 1_000_000)
    for size in sizes:
        with socket.create_connection((proxy.host, proxy.port), timeout=10) as sock:
            sock.sendall(b"c" * size)
            got = 0
            while got < size:
                chunk = sock.recv(size - got)
                assert chunk, f"echo ended after {got} of {size} bytes"
                got += len(chunk)
    total = sum(sizes)
    want = ByteCounts(received=total, sent=total)
    counts = _counts_when(
        toxiproxy, proxy.name, lambda c: c.get("upstream") == want and c.get("downstream") == want
    )
    assert counts == {"upstream": want, "downstream": want}


def test_byte_counts_show_what_a_toxic_kept_back(
    toxiproxy: ToxiproxyServer, echo_address: str
) -> None:
    if toxiproxy.byte_counts() is None:
        pytest.skip(f"{toxiproxy!r} exposes no /metrics (started without -proxy-metrics)")
    proxy = toxiproxy.create_proxy(f"cut_{uuid.uuid4().hex[:10]}", echo_address)
    proxy.add_toxic("limit_data", stream="upstream", bytes=100)
    with socket.create_connection((proxy.host, proxy.port), timeout=10) as sock:
        sock.sendall(b"x" * 1000)
        echoed = bytearray()
        while chunk := sock.recv(65536):
            echoed += chunk
    assert len(echoed) <= 100
    echo = ByteCounts(received=len(echoed), sent=len(echoed))
    counts = _counts_when(
        toxiproxy,
        proxy.name,
        lambda c: (
            c.get("upstream", ByteCounts()).sent == 100
            and c["upstream"].received >= 100
            and c.get("downstream") == echo
        ),
    )
    assert counts["upstream"].received >= counts["upstream"].sent == 100  # read, then cut
    assert counts["downstream"] == echo


def test_parse_byte_counts_reads_go_numbers_and_adds_series() -> None:
    text = (
        "# HELP toxiproxy_proxy_received_bytes_total \n"
        "# TYPE toxiproxy_proxy_received_bytes_total counter\n"
        'toxiproxy_proxy_received_bytes_total{direction="upstream",listener="127.0.0.1:1",'
        'proxy="a",upstream="x:1"} 1.234567e+06\n'
        'toxiproxy_proxy_received_bytes_total{direction="upstream",listener="127.0.0.1:2",'
        'proxy="a",upstream="x:1"} 3\n'
        'toxiproxy_proxy_sent_bytes_total{direction="downstream",listener="127.0.0.1:1",'
        'proxy="a",upstream="say \\"hi\\""} 1e+06\n'
        'go_goroutines{proxy="a"} 12\n'
    )
    assert parse_byte_counts(text) == {
        "a": {
            "upstream": ByteCounts(received=1_234_570, sent=0),
            "downstream": ByteCounts(received=0, sent=1_000_000),
        }
    }
    assert parse_byte_counts("") == {}


def test_server_without_metrics_flag_is_started_without_it_and_counts_nothing(
    tmp_path: Path,
) -> None:
    """A toxiproxy-server older than 2.4.0 refuses ``-proxy-metrics`` the way Go's flag
    package does; the handle starts it again without the flag, and has no counts."""
    fake = tmp_path / "toxiproxy-server"
    fake.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do\n'
        '  if [ "$arg" = "-proxy-metrics" ]; then\n'
        '    echo "flag provided but not defined: -proxy-metrics" >&2; exit 2\n'
        "  fi\n"
        "done\n"
        f'exec "{sys.executable}" -m harness.faultproxy "$@"\n'
    )
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "TOXIPROXY_URL"}
    with ToxiproxyServer(env={**env, "TOXIPROXY_SERVER": str(fake)}) as server:
        assert server.kind == "toxiproxy-server"
        assert server.byte_counts() is None


def test_the_started_server_sees_sigterm(toxiproxy_server: ToxiproxyServer) -> None:
    """It is started while the harness holds SIGINT/SIGTERM (so it exists only once
    recorded); the child must not inherit that mask, or nothing but SIGKILL stops it."""
    if toxiproxy_server.process is None:
        pytest.skip("the proxy server was not started here (TOXIPROXY_URL)")
    status = Path(f"/proc/{toxiproxy_server.process.pid}/status").read_text()
    blocked = int(next(ln for ln in status.splitlines() if ln.startswith("SigBlk:")).split()[1], 16)
    for signum in (signal.SIGINT, signal.SIGTERM):
        assert not blocked & (1 << (signum - 1)), f"{signum.name} is blocked in the server"
