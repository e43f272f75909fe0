"""``python -m harness.faultproxy`` as a process: flags, ``-config``, exit statuses."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.infra.ports import free_port

WAIT = 15.0
COMMAND = [sys.executable, "-m", "harness.faultproxy"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=WAIT)


@contextmanager
def serving(*args: str) -> Iterator[str]:
    """A faultproxy process on a free port, ready (``/version`` answers), stopped after."""
    port = free_port()
    process = subprocess.Popen(
        [*COMMAND, "-host", "127.0.0.1", "-port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                with urllib.request.urlopen(f"{url}/version", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"faultproxy did not answer within {WAIT}s")
                time.sleep(0.02)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(WAIT) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()


@pytest.mark.parametrize(
    "args",
    [["-nope"], ["-port"], ["-port", "abc"], ["-port", "99999"], ["stray"]],
)
def test_bad_command_line_is_one_line_and_status_2(args: list[str]) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_version_flag() -> None:
    done = run_cli("-version")
    assert done.returncode == 0 and "faultproxy" in done.stdout


def test_api_port_in_use_is_status_2() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        done = run_cli("-host", "127.0.0.1", "-port", str(holder.getsockname()[1]))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_config_populates_at_start(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps([{"name": "from_config", "upstream": "127.0.0.1:9", "listen": "127.0.0.1:0"}])
    )
    with serving("-config", str(config)) as url, urllib.request.urlopen(f"{url}/proxies") as r:
        proxies = json.load(r)
    assert proxies["from_config"]["enabled"] is True


@pytest.mark.parametrize("content", [None, "{broken", '[{"name": "x"}]'])
def test_bad_config_is_status_2(tmp_path: Path, content: str | None) -> None:
    config = tmp_path / "proxies.json"
    if content is not None:
        config.write_text(content)
    done = run_cli("-host", "127.0.0.1", "-port", str(free_port()), "-config", str(config))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
