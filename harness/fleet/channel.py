"""How the controller talks to one worker process: JSON lines over a channel.

Two transports, one interface (:class:`Channel`):

- :class:`PipeChannel`: a Python worker forked by multiprocessing's forkserver,
  the lines sent as whole messages over a duplex ``multiprocessing`` pipe (the
  fast path: a cold start of about 17 ms);
- :class:`SubprocessChannel`: any other program (Node, Go, ...), started with
  ``subprocess``; the lines go to its stdin and come from its stdout, its stderr
  goes to a file for a person to read.

Both promise the same: :meth:`Channel.recv` blocks for the next line and returns
None once the process is gone and everything it wrote before dying was read;
:meth:`Channel.wait` reaps the process and gives its exit status (negative: the
signal). The process's pid is what the fleet signals (SIGSTOP, SIGCONT, SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO, Protocol

MAX_LINE = 1 << 20
"""A worker's line longer than this is cut (and then fails to decode): a driver that
prints without end cannot make the controller hold it all."""


class Channel(Protocol):
    """One worker process and its line-oriented link to the controller."""

    @property
    def pid(self) -> int: ...

    def send(self, line: bytes) -> None:
        """Send one line (newline included); ``OSError``/``ValueError`` if it is gone."""

    def recv(self) -> bytes | None:
        """The next line, or None once the process ended and its lines were all read."""

    def wait(self) -> int | None:
        """Reap the process (it has ended, or is ending); its exit status."""

    def close(self) -> None:
        """Close the controller's ends (idempotent)."""


class PipeChannel:
    """A forkserver child speaking over a multiprocessing pipe."""

    def __init__(self, conn: Connection, process: BaseProcess) -> None:
        assert process.pid is not None
        self._conn, self._process, self._pid = conn, process, process.pid
        self._gone = False
        # one selector for the channel's life (multiprocessing.connection.wait builds
        # and fills a new one per call: tens of microseconds of every round trip)
        self._ready = selectors.DefaultSelector()
        self._ready.register(conn.fileno(), selectors.EVENT_READ, "line")
        self._ready.register(process.sentinel, selectors.EVENT_READ, "ended")

    @property
    def pid(self) -> int:
        return self._pid

    def send(self, line: bytes) -> None:
        self._conn.send_bytes(line)

    def recv(self) -> bytes | None:
        if self._gone:
            return None
        while not (ready := {key.data for key, _ in self._ready.select()}):
            pass  # a select() interrupted by a signal returns nothing: ask again
        if "line" in ready:  # lines the process sent before it ended come first
            try:
                return self._conn.recv_bytes()
            except (EOFError, OSError):
                pass
        self._gone = True
        return None

    def wait(self) -> int | None:
        self._process.join()
        return self._process.exitcode

    def close(self) -> None:
        self._ready.close()
        self._conn.close()


class SubprocessChannel:
    """Any program: JSON lines on its stdin and stdout.

    It is started while the fleet holds SIGINT and SIGTERM (``signals_held``: it exists
    only once recorded), and a child inherits that mask: it does not see those signals,
    which is what a worker wants (Ctrl-C is the controller's); the fleet ends it with
    SIGKILL, and SIGSTOP/SIGCONT cannot be blocked."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stderr_path: Path | None = None,
        nice: int = 0,
    ) -> None:
        self._stderr: IO[bytes] | None = None
        if stderr_path is not None:
            stderr_path.parent.mkdir(parents=True, exist_ok=True)
            self._stderr = stderr_path.open("ab")
        try:
            # ``nice`` execs the program (same pid); a preexec_fn would not be safe in
            # the controller, which has threads
            prefix = ["nice", "-n", str(nice)] if nice > 0 else []
            self._proc = subprocess.Popen(
                [*prefix, *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=None if env is None else dict(env),
                cwd=cwd,
                close_fds=True,
            )
        except BaseException:
            if self._stderr is not None:
                self._stderr.close()
            raise
        self._send_lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def send(self, line: bytes) -> None:
        stdin = self._proc.stdin
        if stdin is None or stdin.closed:
            raise ValueError("the worker's stdin is closed")
        with self._send_lock:
            stdin.write(line)
            stdin.flush()

    def recv(self) -> bytes | None:
        stdout = self._proc.stdout
        if stdout is None:
            return None
        try:
            line = stdout.readline(MAX_LINE)
        except (OSError, ValueError):
            return None
        if not line:
            return None
        return line.rstrip(b"\n")

    def wait(self) -> int | None:
        return self._proc.wait()

    def close(self) -> None:
        for f in (self._proc.stdin, self._proc.stdout, self._stderr):
            if f is not None:
                with contextlib.suppress(OSError, ValueError):
                    f.close()


__all__ = ["MAX_LINE", "Channel", "PipeChannel", "SubprocessChannel"]
