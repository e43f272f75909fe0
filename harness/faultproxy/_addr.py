"""``host:port`` strings as Go's ``net`` package reads them, and binding a listener.

Error texts follow Go's, since the real server answers them verbatim with a
500 (e.g. ``listen tcp 127.0.0.1:3310: bind: address already in use``).
"""

from __future__ import annotations

import errno
import os
import socket

from ._errors import ApiError, internal


def split_host_port(address: str) -> tuple[str, int]:
    """``(host, port)`` from ``host:port`` / ``[v6]:port``; ``ValueError`` with Go's wording.

    The empty string is every interface on a random port, as for ``net.Listen``.
    """
    if address == "":
        return "", 0
    if address.startswith("["):
        close = address.find("]")
        if close < 0:
            raise ValueError(f"address {address}: missing ']' in address")
        host, rest = address[1:close], address[close + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"address {address}: missing port in address")
        port_text = rest[1:]
    else:
        if ":" not in address:
            raise ValueError(f"address {address}: missing port in address")
        host, _, port_text = address.rpartition(":")
        if ":" in host:
            raise ValueError(f"address {address}: too many colons in address")
    return host, _port(port_text, address)


def _port(text: str, address: str) -> int:
    if text == "":
        return 0
    if text.isdigit():
        port = int(text)
        if port > 65535:
            raise ValueError(f"address {address}: invalid port")
        return port
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise ValueError(f"lookup tcp/{text}: unknown port") from None


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _resolve(host: str) -> tuple[socket.AddressFamily, str]:
    """The address Go's ``net.Listen`` would pick for ``host``: IPv4 first."""
    if host == "":
        return (socket.AF_INET6, "::") if socket.has_ipv6 else (socket.AF_INET, "0.0.0.0")
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise ValueError(f"lookup {host}: no such host") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


def _strerror(exc: OSError) -> str:
    code = exc.errno if exc.errno is not None else errno.EIO
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def resolve_listen(listen: str) -> str:
    """``listen`` with its host resolved as a bind would resolve it (for comparisons)."""
    try:
        host, port = split_host_port(listen)
        _, ip = _resolve(host)
    except ValueError:
        return listen
    return join_host_port(ip, port)


def bind_listener(listen: str) -> tuple[socket.socket, str]:
    """A listening, non-blocking socket for ``listen`` and its actual address; 500 on failure."""
    try:
        host, port = split_host_port(listen)
        family, ip = _resolve(host)
    except ValueError as exc:
        raise internal(f"listen tcp: {exc}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and ip == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((ip, port))
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise _bind_error(join_host_port(ip, port), exc) from None
    bound = sock.getsockname()
    return sock, join_host_port(str(bound[0]), int(bound[1]))


def _bind_error(where: str, exc: OSError) -> ApiError:
    return internal(f"listen tcp {where}: bind: {_strerror(exc)}")
