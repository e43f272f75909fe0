"""Keep a dying worker's TCP connections open, as a reclaimed VM would (it sends no FIN).

When a process is SIGKILLed its kernel closes its sockets and sends a FIN, so
the proxy (and through it PostgreSQL) learns at once that the client is gone.
A reclaimed Lambda sandbox is a VM torn down: nothing is sent. To model that,
the controller takes a duplicate of each of the worker's TCP sockets to its
proxy (``pidfd_getfd(2)``, Linux 5.6+) just before the kill, and holds it until
the fault is healed: the connection stays open with nobody behind it.

If the kernel refuses (no ``pidfd_getfd``, no ptrace permission) nothing is
held and the caller records that in the fault's value.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform

_SYS_PIDFD_GETFD = 438  # the same number on x86_64 and aarch64 (unified syscall table)


def _tcp_inodes_to_port(pid: int, remote_port: int) -> set[int]:
    """Inodes of ``pid``'s IPv4/IPv6 TCP sockets whose peer port is ``remote_port``."""
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 10:
                        continue
                    port = int(parts[2].rsplit(":", 1)[1], 16)
                    if port == remote_port:
                        inodes.add(int(parts[9]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return inodes


def socket_fds_to(pid: int, remote_port: int) -> list[int]:
    """``pid``'s file descriptors (numbers in ``pid``) of TCP sockets to ``remote_port``."""
    inodes = _tcp_inodes_to_port(pid, remote_port)
    out: list[int] = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return out
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            out.append(int(name))
    return out


def hold_sockets(pid: int, remote_port: int) -> list[int]:
    """Duplicates, in this process, of ``pid``'s TCP sockets to ``remote_port``; [] if the
    kernel does not allow it."""
    if platform.system() != "Linux":
        return []
    fds = socket_fds_to(pid, remote_port)
    if not fds:
        return []
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return []
    libc = ctypes.CDLL(None, use_errno=True)
    held: list[int] = []
    try:
        for fd in fds:
            got = int(libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0))
            if got >= 0:
                held.append(got)
    finally:
        os.close(pidfd)
    return held


def release(fds: list[int]) -> None:
    """Close held duplicates (the peer then sees the connection end)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()
