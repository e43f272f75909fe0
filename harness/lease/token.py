"""The signed lease carried in ``application_name``, wire-compatible with pg-aequor 0.1.4.

Format: ``s=<service>;i=<instance>;e=<expiry ms>;g=<signature>``, at most 63 bytes
(PostgreSQL truncates ``application_name`` there). The signature is the first 8
bytes of HMAC-SHA256(secret, ``s=..;i=..;e=..``) in base64url without padding.

Promises: :func:`encode` produces exactly what pg-aequor produces for the same
inputs (see the vectors in the tests); :func:`parse` and :func:`verify` never raise
on any input: whatever is malformed, foreign, tampered or wrongly signed is simply
"not ours" (``None``). Signatures are compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

MAX_BYTES = 63
"""PostgreSQL keeps at most NAMEDATALEN - 1 = 63 bytes of application_name."""

OVERHEAD = 43
"""Bytes of a token that are not the service: ``s=`` ``;i=``+8 ``;e=``+13 ``;g=``+11."""

MAX_SERVICE = MAX_BYTES - OVERHEAD  # 20

_UNSAFE = re.compile(r"[^A-Za-z0-9:_-]")
# pg-aequor's ^s=([^;]+);i=([^;]+);e=([^;]+);g=([^;]+)$, used with fullmatch so that a
# trailing newline (which Python's $ would accept) is not ours either.
_TOKEN = re.compile(r"s=([^;]+);i=([^;]+);e=([^;]+);g=([^;]+)")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Lease:
    """A parsed lease. ``payload`` is the signed part, as it appeared on the wire."""

    service: str
    instance: str
    expiry_ms: int
    signature: str
    payload: str

    @property
    def expiry(self) -> float:
        """Expiry in Unix seconds."""
        return self.expiry_ms / 1000.0


def sanitize(text: str) -> str:
    """Replace every character outside ``[A-Za-z0-9:_-]`` by ``_``."""
    return _UNSAFE.sub("_", text)


def service_tag(service: str) -> str:
    """The service as it appears in a token: sanitised, shortened with SHA-1 if needed.

    A name of at most 20 characters that sanitising leaves unchanged is kept;
    any other becomes the first 11 characters of its sanitised form, ``-``, and the
    first 8 hex digits of SHA-1 of the original name (UTF-8).
    """
    clean = sanitize(service)
    if len(clean) <= MAX_SERVICE and clean == service:
        return clean
    digest = hashlib.sha1(service.encode("utf-8")).hexdigest()[:8]
    return f"{clean[:11]}-{digest}"


def new_instance() -> str:
    """6 random bytes, base64url without padding: 8 characters."""
    return _b64(secrets.token_bytes(6))


def sign(payload: str, secret: bytes) -> str:
    """First 8 bytes of HMAC-SHA256(secret, payload), base64url without padding."""
    mac = hmac.new(secret, payload.encode("utf-8"), hashlib.sha256).digest()
    return _b64(mac[:8])


def encode(service: str, instance: str, expiry_ms: int, secret: bytes | str) -> str:
    """Build the token for ``service`` (the raw name; it is tagged here).

    Raises ``ValueError`` only for inputs that cannot make a valid token
    (negative expiry, or an instance so long the token would pass 63 bytes).
    """
    if expiry_ms < 0:
        raise ValueError("expiry_ms must be >= 0")
    payload = f"s={service_tag(service)};i={sanitize(instance)};e={int(expiry_ms)}"
    token = f"{payload};g={sign(payload, _secret_bytes(secret))}"
    if len(token.encode("utf-8")) > MAX_BYTES:
        raise ValueError(f"lease token would be {len(token)} bytes, more than {MAX_BYTES}")
    return token


def parse(application_name: object) -> Lease | None:
    """Split a token into its parts without checking the signature; ``None`` if malformed."""
    if not isinstance(application_name, str):
        return None
    m = _TOKEN.fullmatch(application_name)
    if m is None:
        return None
    service, instance, expiry, signature = m.groups()
    if not _DIGITS.fullmatch(expiry):
        return None
    payload = application_name[: application_name.rindex(";g=")]
    return Lease(service, instance, int(expiry), signature, payload)


def verify(application_name: object, service: str, secret: bytes | str) -> Lease | None:
    """The lease if it is ``service``'s and correctly signed with ``secret``, else ``None``.

    Expiry is not judged here: an expired but genuine lease is returned.
    """
    lease = parse(application_name)
    if lease is None or lease.service != service_tag(service):
        return None
    expected = sign(lease.payload, _secret_bytes(secret))
    if not hmac.compare_digest(expected.encode("ascii"), lease.signature.encode("utf-8")):
        return None
    return lease


def like_pattern(service: str) -> str:
    """``s=<tag>;%`` for ``LIKE ... ESCAPE '\\'``, with ``%``, ``_`` and ``\\`` escaped."""
    tag = service_tag(service)
    escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"s={escaped};%"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _secret_bytes(secret: bytes | str) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
