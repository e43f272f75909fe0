"""The lease token as LEASE_SPEC.md defines it, written again for the checker alone.

``s=<service>;i=<instance>;e=<expiry ms>;g=<signature>``, at most 63 bytes; the
signature is the first 8 bytes of HMAC-SHA256(secret, ``s=..;i=..;e=..``) in
base64url without padding; a service name of at most 20 characters from
``[A-Za-z0-9:_-]`` appears as it is.

Why a second reading of the spec: the checker judges the bundled lease client
(``harness.lease``), and a mistake in its token code that the checker shared
would agree with itself — a wrongly tagged or wrongly signed token would look
right to both (measured: a mutant of ``service_tag`` survived every chaos suite
while the checker used ``harness.lease.token``). This module imports nothing of
``harness.lease``; it covers what the harness's own runs use (ASCII service
names; a name the spec hashes is not judged here: :func:`tag` returns None).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_BYTES = 63
_PLAIN_SERVICE = re.compile(r"[A-Za-z0-9:_-]{1,20}")
_TOKEN = re.compile(r"s=([^;]+);i=([^;]+);e=([^;]+);g=([^;]+)")
_WELL_FORMED = re.compile(
    r"s=([A-Za-z0-9:_-]{1,20});i=([A-Za-z0-9:_-]{1,20});e=([0-9]{1,16});g=([A-Za-z0-9_-]{11})"
)


@dataclass(frozen=True, slots=True)
class Token:
    service: str
    instance: str
    expiry_ms: int
    signature: str
    payload: str


def parse(application_name: str | None) -> Token | None:
    """The token's parts (the signature unchecked); None when it is no token."""
    m = _TOKEN.fullmatch(application_name or "")
    if m is None or not m.group(3).isascii() or not m.group(3).isdigit():
        return None
    service, instance, expiry, signature = m.groups()
    payload = m.string[: m.string.rindex(";g=")]
    return Token(service, instance, int(expiry), signature, payload)


def tag(service: str) -> str | None:
    """How ``service`` appears in a token, for a name the spec keeps as it is."""
    return service if _PLAIN_SERVICE.fullmatch(service) else None


def signature(payload: str, secret: bytes) -> str:
    mac = hmac.new(secret, payload.encode("utf-8"), hashlib.sha256).digest()[:8]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def genuine(application_name: str | None, service_tag: str, secret: bytes) -> bool:
    """The token is ``service_tag``'s and correctly signed with ``secret``."""
    t = parse(application_name)
    if t is None or t.service != service_tag:
        return False
    return hmac.compare_digest(signature(t.payload, secret), t.signature)


def encode(service_tag: str, instance: str, expiry_ms: int, secret: bytes) -> str:
    """A token by the spec (what the harness's own neighbours and peers carry)."""
    payload = f"s={service_tag};i={instance};e={expiry_ms}"
    return f"{payload};g={signature(payload, secret)}"


def problem(application_name: str, service_tag: str, verify: Callable[[str], bool]) -> str | None:
    """What is wrong with a token a client of ``service_tag`` put on the server, by
    the spec, ``verify`` judging its signature (None: nothing)."""
    m = _WELL_FORMED.fullmatch(application_name)
    if m is None:
        return "not in the spec's format s=<service>;i=<instance>;e=<ms>;g=<11 base64url>"
    if len(application_name.encode()) > MAX_BYTES:
        return f"longer than {MAX_BYTES} bytes"
    if m.group(1) != service_tag:
        return f"its service is {m.group(1)!r}, the spec's tag is {service_tag!r}"
    if not verify(application_name):
        return "its signature is not HMAC-SHA256(secret, payload)[:8] in base64url"
    return None
