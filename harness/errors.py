"""Errors of the harness (not of the lease client, which has its own).

HarnessError
├── SetupError          the run could not be set up (exit status 2)
│   ├── PostgresBinariesNotFound
│   └── ProxyServerUnavailable
├── ToxiproxyApiError   a Toxiproxy server refused a request (status and message)
│   ├── ToxiproxyNotFound   404: no such proxy or toxic
│   └── ToxiproxyConflict   409: that proxy or toxic already exists
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


class ToxiproxyApiError(HarnessError):
    """A Toxiproxy server answered a request with an error: the request was wrong."""

    def __init__(self, status: int, message: str, request: str) -> None:
        super().__init__(f"{request}: {status} {message}")
        self.status = status
        self.message = message
        self.request = request


class ToxiproxyNotFound(ToxiproxyApiError):
    """404: the proxy or toxic named does not exist."""


class ToxiproxyConflict(ToxiproxyApiError):
    """409: a proxy or toxic of that name already exists."""


class UsageError(HarnessError):
    """The user asked for something that cannot be done (bad option, unknown scenario)."""
