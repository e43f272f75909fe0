"""Connection limits of the servers users are on, as presets, and the capacity rule.

Each preset says the server's ``max_connections`` and how many of them are
reserved for superusers (or the provider's own roles); what is left is what an
application role may use. Sources, as the providers publish them (2026):

- self-hosted PostgreSQL: the default ``max_connections = 100``, 3 reserved
  (``superuser_reserved_connections``);
- Supabase: the direct-connection limit per compute size (Nano/Micro 60 ...
  12XL/16XL 500); the platform's own services use the reserved slots (3 here);
- Neon: ``max_connections`` per compute size (0.25 CU 104 ... 9+ CU 4000),
  7 reserved for the Neon superuser;
- AWS RDS / Aurora PostgreSQL: ``LEAST(DBInstanceClassMemory / 9531392, 5000)``
  with about 5 reserved (3 superuser + 2 ``rds_superuser_reserved_connections``).
  :func:`rds_max_connections` computes it from the instance's nominal memory;
  AWS subtracts an OS reserve from ``DBInstanceClassMemory``, so the real value
  is a little lower than the preset's.

The rule the serverless guides give: connections in use = concurrently
executing invocations x pool size per invocation; it must fit under what the
role may use (:func:`capacity`).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError

RDS_BYTES_PER_CONNECTION = 9_531_392
RDS_CAP = 5000
GIB = 1024**3


def rds_max_connections(memory_bytes: int) -> int:
    """``LEAST(DBInstanceClassMemory / 9531392, 5000)`` (integer division, as RDS does)."""
    return min(memory_bytes // RDS_BYTES_PER_CONNECTION, RDS_CAP)


@dataclass(frozen=True)
class Preset:
    name: str
    provider: str
    max_connections: int
    reserved: int
    """Slots the application role can never use (superusers, the provider's roles)."""
    note: str = ""

    @property
    def usable(self) -> int:
        """What an application role may hold at most (before other roles take theirs)."""
        return self.max_connections - self.reserved


def _rds(cls: str, gib: int) -> Preset:
    return Preset(
        f"rds-{cls}",
        "AWS RDS/Aurora",
        rds_max_connections(gib * GIB),
        5,
        f"{gib} GiB: LEAST({gib} GiB / 9531392, 5000), nominal memory",
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("self-hosted", "PostgreSQL default", 100, 3),
        *(
            Preset(f"supabase-{size}", "Supabase", n, 3)
            for size, n in (
                ("nano", 60),
                ("micro", 60),
                ("small", 90),
                ("medium", 120),
                ("large", 160),
                ("xl", 240),
                ("2xl", 380),
                ("4xl", 480),
                ("8xl", 490),
                ("12xl", 500),
                ("16xl", 500),
            )
        ),
        *(
            Preset(f"neon-{cu}cu", "Neon", n, 7)
            for cu, n in (
                ("0.25", 104),
                ("0.5", 209),
                ("1", 419),
                ("2", 839),
                ("4", 1678),
                ("8", 3357),
                ("9", 4000),
            )
        ),
        _rds("db.t3.micro", 1),
        _rds("db.t3.small", 2),
        _rds("db.t3.medium", 4),
        _rds("db.r6g.large", 16),
        _rds("db.r6g.xlarge", 32),
        _rds("db.r6g.2xlarge", 64),
    )
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


@dataclass(frozen=True)
class Capacity:
    concurrency: int
    pool: int
    preset: Preset

    @property
    def needed(self) -> int:
        """Connections in use at the peak: concurrent invocations x pool size each."""
        return self.concurrency * self.pool

    @property
    def fits(self) -> bool:
        return self.needed <= self.preset.usable

    def explain(self) -> str:
        p = self.preset
        verdict = "fits" if self.fits else "does NOT fit"
        line = (
            f"{self.concurrency} concurrent invocations x pool {self.pool} = {self.needed}"
            f" connections; {p.name} ({p.provider}) allows {p.max_connections}, {p.reserved}"
            f" reserved, so {p.usable} for the application: {verdict}"
        )
        if self.fits:
            return line + f" ({p.usable - self.needed} to spare)"
        over = self.needed - p.usable
        most = p.usable // self.pool
        return (
            line + f" ({over} over: expect 53300 'too many clients' refusals; at most"
            f" {most} concurrent invocations at this pool size, or put a pooler in front)"
        )


def capacity(concurrency: int, pool: int, preset_name: str) -> Capacity:
    if concurrency < 1 or pool < 1:
        raise UsageError("concurrency and pool must be at least 1")
    return Capacity(concurrency, pool, preset(preset_name))
