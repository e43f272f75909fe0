"""Neighbours of every generated shape, on a live fleet: the reaper leaves each alone.

One neighbour of each shape (and each role) is connected, idle, expired where the
shape allows; the fleet lingers and runs reaper passes. The correct client must
keep P5 and P6; a reaper that skips the signature check must be caught killing
the shapes that only the signature tells apart.
"""

from __future__ import annotations

from harness.chaos.env import ChaosEnv
from harness.chaos.neighbours import SIGNATURE_SHAPES
from harness.chaos.steps import Burst, Linger, Neighbour, Reap, Step
from harness.chaos.strategies import SHAPES
from harness.chaos.zoo import ZOO
from harness.history import ForeignEvent

EVERY_SHAPE: tuple[Neighbour, ...] = (
    Neighbour("plain", "app", True, text="s=thawproof;not a lease é"),
    Neighbour("wrong_signature", "plain_role", True, text="AAAAAAAAAAA"),
    Neighbour("truncated", "signal_role", True, cut=40),
    Neighbour("empty_signature", "app", True),
    Neighbour("padded_signature", "signal_role", True, text="=="),
    Neighbour("non_base64url", "app", True, text="ab+/cd!efgh"),
    Neighbour("other_service", "app", True, text="thaw%"),
    Neighbour("other_secret", "plain_role", True),
    Neighbour("genuine", "superuser", True),
    Neighbour("genuine", "app", False),
)


def _schedule(neighbours: tuple[Neighbour, ...]) -> list[Step]:
    return [Burst(2), *neighbours, Linger(), Reap(0), Reap(1)]


def test_the_schedule_has_every_shape() -> None:
    assert {n.shape for n in EVERY_SHAPE} == set(SHAPES)


def test_the_correct_reaper_leaves_every_shape_alone(chaos: ChaosEnv) -> None:
    judged = chaos.run(_schedule(EVERY_SHAPE))
    assert judged.ok, judged.explain_failures()
    registered = [
        str(e.shape)
        for e in judged.run.events
        if isinstance(e, ForeignEvent) and e.f == "register" and e.kind == "neighbour"
    ]
    assert sorted(registered) == sorted(n.shape for n in EVERY_SHAPE)


def test_a_reaper_that_skips_the_signature_kills_the_lookalikes(chaos: ChaosEnv) -> None:
    bug = next(b for b in ZOO if b.name == "skips_signature")
    lookalikes = tuple(n for n in EVERY_SHAPE if n.shape in SIGNATURE_SHAPES)
    judged = chaos.run(_schedule(lookalikes), bug)
    assert "P5" in judged.failed, judged.narrative()
