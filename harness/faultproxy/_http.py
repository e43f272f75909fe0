"""A small HTTP/1.1 server on asyncio streams: enough for the Toxiproxy API.

Keep-alive, ``Content-Length`` and chunked request bodies. Headers are the
handler's: the API adds ``X-Toxiproxy-Request-Id`` to the answers of its routes
(see ``_api``), in the shape the real server's ids have (:func:`request_id`).
Malformed requests get a plain 400 and the connection is closed, as Go's server
does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

MAX_LINE = 64 * 1024
MAX_HEADERS = 100
MAX_BODY = 16 * 1024 * 1024


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    pass


_MACHINE = hashlib.md5(socket.gethostname().encode(), usedforsecurity=False).digest()[:3]
_COUNTER = itertools.count(int.from_bytes(secrets.token_bytes(3), "big"))


def request_id() -> str:
    """A new id shaped like the real server's (an ``xid``: 20 base32hex characters).

    Twelve bytes: the time in seconds, a machine id, the process id and a counter,
    so ids sort by time as the real ones do.
    """
    raw = (
        int(time.time()).to_bytes(4, "big")
        + _MACHINE
        + (os.getpid() & 0xFFFF).to_bytes(2, "big")
        + (next(_COUNTER) & 0xFFFFFF).to_bytes(3, "big")
    )
    return base64.b32hexencode(raw).decode("ascii").rstrip("=").lower()


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise BadRequest("line too long") from None
    return line.rstrip(b"\r\n")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = (await _read_line(reader)).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise BadRequest("bad chunk size") from None
        if size == 0:
            while await _read_line(reader):
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise BadRequest("body too large")
        body += await reader.readexactly(size)
        await _read_line(reader)


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None = None
) -> Request | None:
    """The next request, or ``None`` at a clean end of the connection.

    A client that sent ``Expect: 100-continue`` is told to go on before its body is read.
    """
    try:
        line = await _read_line(reader)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("incomplete request line") from None
        return None
    while line == b"":
        line = await _read_line(reader)
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise BadRequest("malformed request line")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        raw = await _read_line(reader)
        if raw == b"":
            break
        name, sep, value = raw.partition(b":")
        if not sep or not name.strip():
            raise BadRequest("malformed header")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    else:
        raise BadRequest("too many headers")
    headers[":version"] = parts[2].decode("ascii", "replace")
    if writer is not None and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequest("bad content-length") from None
        if length < 0 or length > MAX_BODY:
            raise BadRequest("bad content-length")
        body = await reader.readexactly(length) if length else b""
    return Request(parts[0].decode("ascii", "replace"), parts[1].decode("latin-1"), headers, body)


def render(response: Response) -> bytes:
    reason = HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    headers = dict(response.headers)
    if response.content_type is not None:
        headers["Content-Type"] = response.content_type
    headers["Date"] = formatdate(usegmt=True)
    if response.status != 204:
        headers["Content-Length"] = str(len(response.body))
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (response.body if response.status != 204 else b"")


def _keep_alive(request: Request) -> bool:
    connection = request.headers.get("connection", "").lower()
    if request.headers.get(":version") == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


async def _serve_connection(
    handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            try:
                request = await read_request(reader, writer)
            except (BadRequest, asyncio.IncompleteReadError, UnicodeError):
                writer.write(
                    render(
                        Response(
                            400,
                            b"400 Bad Request",
                            "text/plain; charset=utf-8",
                            {"Connection": "close"},
                        )
                    )
                )
                await writer.drain()
                return
            if request is None:
                return
            response = await handler(request)
            keep = _keep_alive(request)
            if not keep:
                response.headers["Connection"] = "close"
            writer.write(render(response))
            await writer.drain()
            if not keep:
                return
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(handler: Handler, sock: socket.socket) -> asyncio.Server:
    """Start answering HTTP on the listening socket ``sock`` with ``handler``."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(handler, reader, writer)

    return await asyncio.start_server(on_connection, sock=sock, limit=MAX_LINE)
