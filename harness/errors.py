"""Errors of the harness (not of the lease client, which has its own).

    HarnessError
    ├── SetupError          the run could not be set up (exit status 2)
    │   ├── PostgresBinariesNotFound
    │   └── ProxyServerUnavailable
    └── UsageError          bad input from the user (exit status 2)
"""


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class SetupError(HarnessError):
    """A real component could not be started or reached; the run cannot be judged."""


class PostgresBinariesNotFound(SetupError):
    """initdb / pg_ctl / postgres were not found where the harness looks."""


class ProxyServerUnavailable(SetupError):
    """No Toxiproxy-compatible server could be started or reached."""


class UsageError(HarnessError):
    """The user asked for something that cannot be done (bad option, unknown scenario)."""
