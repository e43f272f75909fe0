"""The application_name of a generated neighbour (:class:`~harness.chaos.steps.Neighbour`).

Pure: a step and the wall clock in, the name a neighbour connects with out. Every
shape is one a scan or a parser could trip on; none is a lease this service's
reaper may kill (``genuine`` only ever unexpired, or on a superuser):

- ``plain``: any text (PostgreSQL keeps 63 bytes and shows non-ASCII as ``?``);
- ``wrong_signature``: this service's payload with another signature;
- ``truncated``: a correctly signed token, cut short;
- ``empty_signature``: ``...;g=`` and nothing after;
- ``padded_signature``: the right signature with padding after it;
- ``non_base64url``: a signature with characters outside base64url;
- ``other_service``: another service's name (LIKE metacharacters, shared prefixes),
  correctly signed with this service's secret;
- ``other_secret``: this service's payload signed with another secret;
- ``genuine``: this service's lease, correctly signed.
"""

from __future__ import annotations

from harness.chaos.steps import Neighbour, NeighbourShape
from harness.chaos.timings import OTHER_SECRET, SECRET, SERVICE
from harness.lease import token

INSTANCE = "N3ighb0r"
HOUR_MS = 3_600_000

SIGNATURE_SHAPES: frozenset[NeighbourShape] = frozenset(
    {"wrong_signature", "padded_signature", "non_base64url", "other_secret"}
)
"""Shapes that parse as this service's lease: only the signature check tells them apart
(what a reaper that skips it kills)."""


def application_name(step: Neighbour, now_ms: int) -> str:
    expiry = now_ms - HOUR_MS if step.expired else now_ms + HOUR_MS
    tag = token.service_tag(SERVICE)
    payload = f"s={tag};i={INSTANCE};e={expiry}"
    signed = token.encode(SERVICE, INSTANCE, expiry, SECRET)
    shape = step.shape
    if shape == "plain":
        return step.text
    if shape in ("wrong_signature", "non_base64url"):
        return f"{payload};g={step.text}"
    if shape == "truncated":
        return signed[: max(0, min(len(signed) - 1, step.cut))]
    if shape == "empty_signature":
        return f"{payload};g="
    if shape == "padded_signature":
        return f"{signed}{step.text}"
    if shape == "other_service":
        other = f"s={step.text};i={INSTANCE};e={expiry}"
        return f"{other};g={token.sign(other, SECRET.encode())}"
    if shape == "other_secret":
        return token.encode(SERVICE, INSTANCE, expiry, OTHER_SECRET)
    if shape == "genuine":
        return signed
    raise ValueError(f"unknown neighbour shape {shape!r}")
