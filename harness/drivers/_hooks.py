"""What a Python driver tells the worker, in the hooks' words (shared by the shipped drivers)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

Hooks = Mapping[str, Callable[[dict[str, Any]], None]]


def call(hooks: Hooks, name: str, **payload: Any) -> None:
    """Call hook ``name`` if the worker gave one; a hook never changes the driver's course."""
    hook = hooks.get(name)
    if hook is not None:
        with contextlib.suppress(Exception):
            hook(dict(payload))


def sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "diag", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
