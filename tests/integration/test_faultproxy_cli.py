"""``python -m harness.faultproxy`` as a process: flags, ``-config``, exit statuses."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
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
    assert done.returncode == 0
    assert "faultproxy" in done.stdout


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


class Started:
    """A faultproxy process whose stderr lines are collected as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, pattern: str) -> re.Match[str]:
        """The first line matching ``pattern``; fail loudly at WAIT or if the process ends."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {WAIT}s: {self.lines}")
            if line is None:
                pytest.fail(f"faultproxy ended without a line matching {pattern!r}: {self.lines}")
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(WAIT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(WAIT)
            if self.process.stderr is not None:
                self.process.stderr.close()


API_LINE = r"version (\S+), API listening on http://(\S+):(\d+)$"


def test_port_zero_prints_the_port_bound() -> None:
    started = Started("-host", "127.0.0.1", "-port", "0")
    try:
        found = started.wait_line(API_LINE)
        version, host, port = found.group(1), found.group(2), int(found.group(3))
        assert host == "127.0.0.1"
        assert port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=WAIT) as r:
            assert json.load(r)["version"] == version
    finally:
        assert started.stop() == 0


def test_localhost_is_one_address_like_go() -> None:
    """``-host localhost`` binds one address, IPv4 first, as Go's net.Listen does."""
    started = Started("-host", "localhost", "-port", "0")
    try:
        host = started.wait_line(API_LINE).group(2)
        assert host == "127.0.0.1"
    finally:
        assert started.stop() == 0


def test_config_says_what_it_started(tmp_path: Path) -> None:
    upstream = f"127.0.0.1:{free_port()}"
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps(
            [
                {"name": "one", "upstream": upstream, "listen": "127.0.0.1:0"},
                {"name": "two", "upstream": upstream, "listen": "127.0.0.1:0", "enabled": False},
            ]
        )
    )
    started = Started("-host", "127.0.0.1", "-port", "0", "-config", str(config))
    try:
        one = started.wait_line(r"proxy one listening on (127\.0\.0\.1:(\d+)), upstream (\S+)$")
        assert int(one.group(2)) > 0
        assert one.group(3) == upstream
        started.wait_line(r"proxy two disabled")
        started.wait_line(rf"populated 2 proxies from {re.escape(str(config))}$")
        port = int(started.wait_line(API_LINE).group(3))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/proxies", timeout=WAIT) as r:
            assert json.load(r)["one"]["listen"] == one.group(1)
    finally:
        assert started.stop() == 0


def test_config_with_a_name_twice_counts_the_proxies_that_exist(tmp_path: Path) -> None:
    upstream = f"127.0.0.1:{free_port()}"
    config = tmp_path / "proxies.json"
    entry = {"name": "twice", "upstream": upstream, "listen": "127.0.0.1:0"}
    config.write_text(json.dumps([entry, {**entry, "upstream": "127.0.0.1:9"}]))
    started = Started("-host", "127.0.0.1", "-port", "0", "-config", str(config))
    try:
        started.wait_line(r"proxy twice listening on \S+, upstream 127\.0\.0\.1:9$")
        started.wait_line(r"populated 1 proxy from \S+ \(2 entries: ")
        port = int(started.wait_line(API_LINE).group(3))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/proxies", timeout=WAIT) as r:
            proxies = json.load(r)
        assert list(proxies) == ["twice"]
        assert proxies["twice"]["upstream"] == "127.0.0.1:9"
    finally:
        assert started.stop() == 0


@pytest.mark.parametrize(
    ("flags", "status"),
    [([], 404), (["-proxy-metrics"], 200), (["-runtime-metrics"], 200)],
)
def test_metrics_route_exists_only_with_a_metrics_flag(flags: list[str], status: int) -> None:
    with serving(*flags) as url:
        request = urllib.request.Request(f"{url}/metrics")
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as r:
                got, body = r.status, r.read()
        except urllib.error.HTTPError as err:
            got, body = err.code, err.read()
    assert got == status
    if status == 200:
        assert body == b""  # nothing has been counted yet (and no Go runtime to report)
