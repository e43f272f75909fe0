"""The byte counters of ``toxiproxy-server -proxy-metrics``, and their Prometheus text.

What the real server (2.4.0 and later: collectors/proxy.go, link.go, metrics.go)
exposes on ``GET /metrics`` when started with ``-proxy-metrics``:

- two counters, ``toxiproxy_proxy_received_bytes_total`` (bytes read from a
  direction's source: the client for ``upstream``, the server for
  ``downstream``) and ``toxiproxy_proxy_sent_bytes_total`` (bytes written to its
  destination), labelled ``direction``, ``proxy``, ``listener`` (the proxy's
  address when the connection started) and ``upstream``;
- a connection's bytes are added when its direction ends (the real server adds
  them when its copy loop returns), so an open connection is not counted yet;
- series are never removed: a deleted proxy's counts stay.

The text is what client_golang's ``promhttp`` writes for them: families in name
order, each with an empty ``# HELP`` and a ``# TYPE ... counter`` line, series
in label-value order, labels in name order, values as Go's ``strconv`` ``'g'``
(``1e+06``); nothing at all before the first connection has ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

RECEIVED = "toxiproxy_proxy_received_bytes_total"
SENT = "toxiproxy_proxy_sent_bytes_total"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
"""As client_golang 1.21 (toxiproxy 2.12.0) sends it; 2.8.0 sends it without ``; escaping=...``."""

Series = tuple[str, str, str, str]
"""Label values in name order: direction, listener, proxy, upstream."""


def go_float(value: float) -> str:
    """``value`` as Go's ``strconv.FormatFloat(value, 'g', -1, 64)`` prints it (finite values).

    The shortest digits that round-trip (Python's ``repr`` finds the same ones),
    in exponent form when the decimal exponent is below -4 or 6 and above.
    """
    if value == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # value = 0.<digits> x 10^point
    minus = "-" if sign else ""
    power = point - 1
    if power < -4 or power >= 6:
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{head}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{minus}{digits}{'0' * (point - len(digits))}"
    return f"{minus}{digits[:point]}.{digits[point:]}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class ByteCounters:
    """Per series, the bytes received and sent by the connections that have ended."""

    received: dict[Series, int] = field(default_factory=dict)
    sent: dict[Series, int] = field(default_factory=dict)

    def add(
        self, direction: str, proxy: str, listener: str, upstream: str, received: int, sent: int
    ) -> None:
        """Add one ended direction of one connection (the real server adds zeros too)."""
        key = (direction, listener, proxy, upstream)
        self.received[key] = self.received.get(key, 0) + received
        self.sent[key] = self.sent.get(key, 0) + sent

    def render(self) -> bytes:
        """The exposition text, as ``promhttp`` writes these two counter families."""
        lines: list[str] = []
        for name, values in ((RECEIVED, self.received), (SENT, self.sent)):
            if not values:
                continue
            lines.append(f"# HELP {name} ")
            lines.append(f"# TYPE {name} counter")
            for key in sorted(values):
                direction, listener, proxy, upstream = (_escape(part) for part in key)
                lines.append(
                    f'{name}{{direction="{direction}",listener="{listener}",'
                    f'proxy="{proxy}",upstream="{upstream}"}} {go_float(values[key])}'
                )
        return "".join(line + "\n" for line in lines).encode()
