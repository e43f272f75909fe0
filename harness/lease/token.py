"""The signed lease carried in ``application_name``, wire-compatible with pg-aequor 0.1.4.

Format: ``s=<service>;i=<instance>;e=<expiry ms>;g=<signature>``, at most 63 bytes
(PostgreSQL truncates ``application_name`` there). The signature is the first 8
bytes of HMAC-SHA256(secret, ``s=..;i=..;e=..``) in base64url without padding.

Promises: :func:`encode` produces exactly what pg-aequor produces for the same
inputs, for every service name (see the vectors in the tests, made by running
pg-aequor's own code). pg-aequor is JavaScript, so its strings are UTF-16: its
sanitising replaces code units (an emoji becomes ``__``), ``.length`` counts code
units, and Node hashes and signs the UTF-8 of the string with lone surrogates as
U+FFFD; this module does the same on Python strings. :func:`parse` and
:func:`verify` never raise on any input: whatever is malformed, foreign, tampered or
wrongly signed is simply "not ours" (``None``). Signatures are compared in constant
time.

One deliberate difference: pg-aequor reads the expiry with ``parseInt`` (so a
correctly signed ``e=12abc`` is 12 to it); here an expiry that is not all ASCII digits
is not ours (LEASE_SPEC.md). Neither client mints such a token.
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
_SURROGATE = re.compile("[\ud800-\udfff]")
_DEFAULT_SERVICE = "sls_pg"
"""pg-aequor's name for an empty service (``serviceName || 'sls_pg'``)."""
_DEFAULT_INSTANCE = "inst"
"""pg-aequor's instance for an empty one (``instanceId || 'inst'``)."""
_INSTANCE_LEN = 8
_FIXED = OVERHEAD - _INSTANCE_LEN  # 35: everything but the service and the instance
_HASH_LEN = 8
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


def _underscores(m: re.Match[str]) -> str:
    # One "_" per UTF-16 code unit: a character outside the BMP is two of them in JS.
    return "__" if ord(m.group()) > 0xFFFF else "_"


def sanitize(text: str) -> str:
    """Replace every character outside ``[A-Za-z0-9:_-]`` by ``_``, one ``_`` per UTF-16
    code unit, as pg-aequor's ``String(s).replace(/[^a-zA-Z0-9:_-]/g, '_')`` does (that
    regex has no ``u`` flag): an emoji becomes ``__``, a lone surrogate ``_``.

    The result is ASCII, so its ``len`` is also its JavaScript ``.length``."""
    return _UNSAFE.sub(_underscores, text)


def js_utf8(text: str) -> bytes:
    """``text`` as Node's ``Buffer.from(text, 'utf8')`` encodes it (what pg-aequor hashes
    and signs): surrogate pairs, even spelt as two code points, become the character
    they encode; a lone surrogate becomes U+FFFD. Never raises."""
    if _SURROGATE.search(text) is None:
        return text.encode("utf-8")
    # Through UTF-16: pairs recombine, every unpaired unit is one U+FFFD.
    units = text.encode("utf-16-le", "surrogatepass")
    return units.decode("utf-16-le", "replace").encode("utf-8")


def service_tag(service: str, instance_length: int = _INSTANCE_LEN) -> str:
    """The service as it appears in a token: pg-aequor's ``_normalizeServiceName``.

    The service may take ``max(1, 63 - 35 - instance_length)`` characters (20 for the
    8-character instances both clients make). A name that fits and that sanitising
    leaves unchanged is kept; any other becomes the first ``limit - 9`` (11)
    characters of its sanitised form, ``-``, and the first 8 hex digits of SHA-1 of the
    original name (UTF-8 as Node encodes it, :func:`js_utf8`). An empty name is
    pg-aequor's ``sls_pg``. Lengths count UTF-16 code units, like JavaScript's
    ``.length``.
    """
    original = service or _DEFAULT_SERVICE
    clean = sanitize(original)
    limit = max(1, MAX_BYTES - _FIXED - instance_length)
    if clean == original and len(clean) <= limit:
        return clean
    digest = hashlib.sha1(js_utf8(original)).hexdigest()[:_HASH_LEN]
    if limit <= _HASH_LEN:
        return digest[:limit]
    return f"{clean[: limit - _HASH_LEN - 1]}-{digest}"


def new_instance() -> str:
    """6 random bytes, base64url without padding: 8 characters."""
    return _b64(secrets.token_bytes(6))


def sign(payload: str, secret: bytes) -> str:
    """First 8 bytes of HMAC-SHA256(secret, payload), base64url without padding."""
    mac = hmac.new(secret, js_utf8(payload), hashlib.sha256).digest()
    return _b64(mac[:8])


def encode(service: str, instance: str, expiry_ms: int, secret: bytes | str) -> str:
    """Build the token for ``service`` (the raw name; it is tagged here).

    Raises ``ValueError`` only for inputs that cannot make a valid token
    (negative expiry, or an instance so long the token would pass 63 bytes).
    """
    if expiry_ms < 0:
        raise ValueError("expiry_ms must be >= 0")
    inst = sanitize(instance or _DEFAULT_INSTANCE)
    payload = f"s={service_tag(service, len(inst))};i={inst};e={int(expiry_ms)}"
    token = f"{payload};g={sign(payload, _secret_bytes(secret))}"
    if len(token) > MAX_BYTES:  # ASCII: characters are bytes
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
    if not hmac.compare_digest(expected.encode("ascii"), js_utf8(lease.signature)):
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
    # Node's createHmac(alg, string) keys with the string's UTF-8 (js_utf8).
    return js_utf8(secret) if isinstance(secret, str) else bytes(secret)
