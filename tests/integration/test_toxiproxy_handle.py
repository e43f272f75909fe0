"""``harness.infra.toxiproxy``: choosing, starting, waiting for and releasing a server."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from harness.errors import ProxyServerUnavailable
from harness.infra.toxiproxy import ToxiproxyServer


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
    with pytest.raises(RuntimeError, match="boom"), server:
        assert server.process is not None and server.process.poll() is None
        raise RuntimeError("boom")
    assert server.process is not None and server.process.poll() is not None
