"""The application_name of a generated neighbour (:class:`~harness.chaos.steps.Neighbour`).

Pure: a step and the wall clock in, the name a neighbour connects with out (built
with the checker's own token code, :mod:`harness.check.wire`, never with the code
under test). Every
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
from harness.chaos.timings import OTHER_SECRET, SECRET, SERVICE_TAG
from harness.check import wire

INSTANCE = "N3ighb0r"
HOUR_MS = 3_600_000

SIGNATURE_SHAPES: frozenset[NeighbourShape] = frozenset(
    {"wrong_signature", "padded_signature", "non_base64url", "other_secret"}
)
"""Shapes that parse as this service's lease: only the signature check tells them apart
(what a reaper that skips it kills)."""


def application_name(step: Neighbour, now_ms: int) -> str:
    expiry = now_ms - HOUR_MS if step.expired else now_ms + HOUR_MS
    payload = f"s={SERVICE_TAG};i={INSTANCE};e={expiry}"
    signed = wire.encode(SERVICE_TAG, INSTANCE, expiry, SECRET.encode())
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
        return wire.encode(step.text, INSTANCE, expiry, SECRET.encode())
    if shape == "other_secret":
        return wire.encode(SERVICE_TAG, INSTANCE, expiry, OTHER_SECRET.encode())
    if shape == "genuine":
        return signed
    raise ValueError(f"unknown neighbour shape {shape!r}")
