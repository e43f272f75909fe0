"""The harness's handle on a Toxiproxy server, driven through ``toxiproxy-python``.

Which server (first that applies):

1. a running one at ``TOXIPROXY_URL`` (nothing is started or stopped);
2. a real ``toxiproxy-server``: the path in ``TOXIPROXY_SERVER``, or one on ``PATH``;
3. ``python -m harness.faultproxy`` (the project's own compatible server).

A started server listens on a free 127.0.0.1 port, is ready once ``/version``
answers (polled under a deadline; :class:`~harness.errors.ProxyServerUnavailable`
otherwise, with the server's own output), and is terminated and reaped when
the ``with`` block ends, however it ends. It is started with ``-proxy-metrics``
(Toxiproxy 2.4.0 and later; an older ``toxiproxy-server`` that refuses the flag
is started without it), so that :meth:`ToxiproxyServer.byte_counts` can tell
what each proxy moved: the harness's check on itself, to tell its own failure
(bytes the proxy never passed on) from the client's.

``toxiproxy-python`` keeps the server's host and port in class attributes and
sends requests through the ``requests`` module with no timeout. Every call is
therefore made under one process-wide lock with the library bound, for that
call only, to this server: its host and port, and in place of ``requests`` a
shim that sends through this handle's own session with a timeout and turns
error answers into :class:`~harness.errors.ToxiproxyApiError`. So several
servers can be used from one process, and no request hangs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self
from urllib.parse import urlsplit

import requests
import toxiproxy
import toxiproxy.api as toxiproxy_api
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists
from toxiproxy.toxic import Toxic as LibraryToxic

from harness.errors import (
    ProxyServerUnavailable,
    ToxiproxyApiError,
    ToxiproxyConflict,
    ToxiproxyNotFound,
    UsageError,
)
from harness.infra.owned import owned, signals_held, unblock_in_child
from harness.infra.ports import free_port

REPO = Path(__file__).resolve().parents[2]
ServerKind = Literal["external", "toxiproxy-server", "faultproxy"]
Direction = Literal["upstream", "downstream"]
METRICS_FLAG = "-proxy-metrics"

_LIBRARY = threading.RLock()
_NAME = re.compile(r"^[A-Za-z0-9_.~-]+$")


# -- the library, bound to one server per call ------------------------------------


class _Requests:
    """Stands in for the ``requests`` module inside ``toxiproxy.api`` during one call."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    def get(self, url: str, params: Any = None, **kwargs: Any) -> requests.Response:
        return self._send("GET", url, params=params, **kwargs)

    def post(
        self, url: str, data: Any = None, json: Any = None, **kwargs: Any
    ) -> requests.Response:
        return self._send("POST", url, data=data, json=json, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> requests.Response:
        return self._send("DELETE", url, **kwargs)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        what = f"{method} {urlsplit(url).path}"
        try:
            response = self._session.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise ProxyServerUnavailable(
                f"{what}: Toxiproxy server at {url} did not answer within {self._timeout}s"
            ) from exc
        except requests.RequestException as exc:
            raise ProxyServerUnavailable(f"{what}: Toxiproxy server unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise _api_error(response, what)
        return response


def _api_error(response: requests.Response, what: str) -> ToxiproxyApiError:
    message = response.text.strip()
    with contextlib.suppress(ValueError, AttributeError):
        message = str(response.json()["error"])
    kind: type[ToxiproxyApiError] = ToxiproxyApiError
    if response.status_code == 404:
        kind = ToxiproxyNotFound
    elif response.status_code == 409:
        kind = ToxiproxyConflict
    return kind(response.status_code, message, what)


# -- what the handle returns ---------------------------------------------------------


@dataclass(frozen=True)
class Toxic:
    """A toxic as the server reports it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_library(cls, toxic: Any) -> Toxic:
        return cls(
            name=str(toxic.name),
            type=str(toxic.type),
            stream=str(toxic.stream),
            toxicity=float(toxic.toxicity),
            attributes={str(k): int(v) for k, v in dict(toxic.attributes or {}).items()},
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Toxic:
        return cls.from_library(LibraryToxic(**data))


@dataclass(frozen=True)
class ByteCounts:
    """What one proxy moved in one direction, over its connections that have ended.

    ``received``: bytes read from the direction's source (the client for
    ``upstream``, the upstream server for ``downstream``); ``sent``: bytes written
    to its destination. They differ when a toxic drops or cuts data.
    """

    received: int = 0
    sent: int = 0


_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\{(?P<labels>.*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[A-Za-z_][A-Za-z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')
_BYTE_METRICS = {
    "toxiproxy_proxy_received_bytes_total": "received",
    "toxiproxy_proxy_sent_bytes_total": "sent",
}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_byte_counts(text: str) -> dict[str, dict[Direction, ByteCounts]]:
    """Per proxy name and direction, the byte counters in a Prometheus text exposition.

    Series of one proxy under other ``listener`` / ``upstream`` labels (it was
    moved, or deleted and made again) are added together. Both directions are
    present for every proxy that appears.
    """
    totals: dict[str, dict[Direction, dict[str, int]]] = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None or found.group("name") not in _BYTE_METRICS:
            continue
        labels = {
            m.group("key"): _unescape(m.group("value"))
            for m in _LABEL.finditer(found.group("labels"))
        }
        direction = labels.get("direction")
        if direction not in ("upstream", "downstream") or "proxy" not in labels:
            continue
        per = totals.setdefault(labels["proxy"], {"upstream": {}, "downstream": {}})
        field_name = _BYTE_METRICS[found.group("name")]
        counts = per["upstream" if direction == "upstream" else "downstream"]
        counts[field_name] = counts.get(field_name, 0) + int(float(found.group("value")))
    return {
        name: {direction: ByteCounts(**counts) for direction, counts in per.items()}
        for name, per in totals.items()
    }


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class Proxy:
    """One proxy on a :class:`ToxiproxyServer` (e.g. one per worker)."""

    def __init__(self, server: ToxiproxyServer, library_proxy: Any) -> None:
        self.server = server
        self._proxy = library_proxy

    @property
    def name(self) -> str:
        return str(self._proxy.name)

    @property
    def listen(self) -> str:
        """The address the server reported, e.g. ``127.0.0.1:41523``."""
        return str(self._proxy.listen)

    @property
    def upstream(self) -> str:
        return str(self._proxy.upstream)

    @property
    def enabled(self) -> bool:
        return bool(self._proxy.enabled)

    @property
    def host(self) -> str:
        return _split_address(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_address(self.listen)[1]

    def __repr__(self) -> str:
        return f"Proxy({self.name!r}, listen={self.listen!r}, upstream={self.upstream!r})"

    def refresh(self) -> Proxy:
        """Re-read listen, upstream and enabled from the server."""
        self._proxy = self.server._get_library_proxy(self.name)
        return self

    def toxics(self) -> dict[str, Toxic]:
        with self.server.bound():
            found = self._proxy.toxics()
        return {name: Toxic.from_library(toxic) for name, toxic in found.items()}

    def add_toxic(
        self,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: int,
    ) -> Toxic:
        """Add a toxic (name defaults to ``<type>_<stream>``) and return it as the server has it."""
        toxic_name = name or f"{type}_{stream}"
        with self.server.bound():
            self._proxy.add_toxic(
                type=type,
                name=toxic_name,
                stream=stream,
                toxicity=toxicity,
                attributes=dict(attributes),
            )
        return self.toxic(toxic_name)

    def toxic(self, name: str) -> Toxic:
        with self.server.bound():
            found = APIConsumer.get(f"/proxies/{self.name}/toxics/{name}").json()
        return Toxic.from_json(found)

    def update_toxic(self, name: str, *, toxicity: float | None = None, **attributes: int) -> Toxic:
        """Change some attributes (the others keep their values) and/or the toxicity."""
        body: dict[str, Any] = {"attributes": dict(attributes)}
        if toxicity is not None:
            body["toxicity"] = toxicity
        with self.server.bound():
            found = APIConsumer.post(f"/proxies/{self.name}/toxics/{name}", json=body).json()
        return Toxic.from_json(found)

    def remove_toxic(self, name: str) -> None:
        with self.server.bound():
            self._proxy.destroy_toxic(name)

    def disable(self) -> None:
        """Stop listening and close every connection through this proxy, at once."""
        with self.server.bound():
            self._proxy.disable()

    def enable(self) -> None:
        with self.server.bound():
            self._proxy.enable()
        self.refresh()

    @contextlib.contextmanager
    def down(self) -> Iterator[Proxy]:
        """The proxy disabled for the block, enabled again however the block ends."""
        self.disable()
        try:
            yield self
        finally:
            self.enable()

    def delete(self) -> None:
        with self.server.bound():
            self._proxy.destroy()


# -- the server --------------------------------------------------------------------


def _choose(env: Mapping[str, str], kind: ServerKind | None) -> tuple[ServerKind, str]:
    """The kind of server to use and its URL or executable (``kind`` forces one)."""
    if kind == "faultproxy":
        return "faultproxy", sys.executable
    if kind == "toxiproxy-server":
        found = env.get("TOXIPROXY_SERVER") or shutil.which(
            "toxiproxy-server", path=env.get("PATH")
        )
        if not found:
            raise ProxyServerUnavailable("no toxiproxy-server: set TOXIPROXY_SERVER or PATH")
        env = {"TOXIPROXY_SERVER": found}
    url = env.get("TOXIPROXY_URL")
    if url:
        return "external", url
    binary = env.get("TOXIPROXY_SERVER")
    if binary:
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise ProxyServerUnavailable(f"TOXIPROXY_SERVER={binary} is not an executable file")
        return "toxiproxy-server", binary
    found = shutil.which("toxiproxy-server", path=env.get("PATH"))
    if found:
        return "toxiproxy-server", found
    return "faultproxy", sys.executable


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


class ToxiproxyServer:
    """A Toxiproxy server for the duration of a ``with`` block (see the module docstring).

    ``kind`` forces a choice: ``"faultproxy"`` or ``"toxiproxy-server"`` (both
    started here; ``"external"`` is only ever chosen through ``TOXIPROXY_URL``).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        kind: ServerKind | None = None,
        start_timeout: float = 15.0,
        request_timeout: float = 10.0,
    ) -> None:
        self._env = dict(os.environ if env is None else env)
        self._wanted = kind
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        self.kind: ServerKind = "external"
        self.host = ""
        self.port = 0
        self.version = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._stack = contextlib.ExitStack()
        self._session = requests.Session()
        self._requests = _Requests(self._session, request_timeout)

    # -- lifetime --------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            self._stack.callback(self._session.close)
            kind, target = _choose(self._env, self._wanted)
            self.kind = kind
            if kind == "external":
                parts = urlsplit(target if "//" in target else f"http://{target}")
                if not parts.hostname or not parts.port:
                    raise UsageError(f"TOXIPROXY_URL={target} is not http://host:port")
                self.host, self.port = parts.hostname, parts.port
                self._wait_ready(None, None)
            else:
                self._start(kind, target)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _command(self, kind: ServerKind, target: str, port: int, metrics: bool) -> list[str]:
        flags = ["-host", "127.0.0.1", "-port", str(port)]
        if metrics:
            flags.append(METRICS_FLAG)
        if kind == "toxiproxy-server":
            return [target, *flags]
        return [target, "-m", "harness.faultproxy", *flags]

    def _start(self, kind: ServerKind, target: str, attempts: int = 3) -> None:
        """Start the server on a free port; try another port if it lost the race for one,
        and once without ``-proxy-metrics`` if the server does not know the flag."""
        env = dict(self._env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        metrics = True
        attempt = 0
        while True:
            attempt += 1
            log: IO[bytes] = self._stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
            self.host, self.port = "127.0.0.1", free_port()
            with signals_held():  # the process exists only once it is recorded
                process = subprocess.Popen(
                    self._command(kind, target, self.port, metrics),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=REPO,
                    start_new_session=True,  # the terminal's Ctrl-C is for the harness
                    preexec_fn=unblock_in_child,
                )
                record = owned().process(process.pid, f"{kind} server")
            self.process = process
            self._stack.callback(owned().release, record)
            self._stack.callback(_terminate, process)
            try:
                self._wait_ready(process, log)
                return
            except ProxyServerUnavailable:
                said = _tail(log)
                if metrics and process.poll() is not None and METRICS_FLAG in said:
                    metrics = False  # before 2.4.0: no byte counters to be had
                    continue
                if attempt >= attempts or process.poll() is None or "in use" not in said:
                    raise

    def _wait_ready(self, process: subprocess.Popen[bytes] | None, log: IO[bytes] | None) -> None:
        """Poll ``/version`` until it answers; fail loudly at the deadline or if the server dies."""
        deadline = time.monotonic() + self.start_timeout
        pause = 0.01
        last: Exception | None = None
        while True:
            if process is not None and process.poll() is not None:
                raise ProxyServerUnavailable(
                    f"{self.kind} exited with status {process.returncode} before answering "
                    f"on {self.url}: {_tail(log)}"
                )
            try:
                with self.bound():
                    answer = APIConsumer.get("/version", timeout=1.0).json()
                self.version = str(answer.get("version", ""))
                return
            except (ProxyServerUnavailable, ToxiproxyApiError, ValueError, AttributeError) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise ProxyServerUnavailable(
                    f"{self.kind} at {self.url} did not answer /version within "
                    f"{self.start_timeout}s ({last}); output: {_tail(log)}"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    # -- facts -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_faultproxy(self) -> bool:
        return "faultproxy" in self.version

    def __repr__(self) -> str:
        return f"ToxiproxyServer({self.kind}, {self.url}, version={self.version!r})"

    # -- the library, bound to this server ------------------------------------------
    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        """Point ``toxiproxy-python`` at this server for the block (under the library lock).

        Library exceptions that the shim does not pre-empt (its own client-side
        checks) come out as :class:`~harness.errors.ToxiproxyApiError` too.
        """
        with _LIBRARY:
            saved = (APIConsumer.host, APIConsumer.port, toxiproxy_api.requests)
            APIConsumer.host, APIConsumer.port = self.host, self.port
            toxiproxy_api.requests = self._requests
            try:
                yield
            except ProxyExists as exc:
                raise ToxiproxyConflict(409, str(exc), "toxiproxy-python") from exc
            except NotFound as exc:
                raise ToxiproxyNotFound(404, str(exc), "toxiproxy-python") from exc
            except InvalidToxic as exc:
                raise ToxiproxyApiError(400, str(exc), "toxiproxy-python") from exc
            finally:
                APIConsumer.host, APIConsumer.port, toxiproxy_api.requests = saved

    # -- operations ------------------------------------------------------------------
    def proxies(self) -> dict[str, Proxy]:
        with self.bound():
            found = toxiproxy.Toxiproxy().proxies()
        return {str(name): Proxy(self, proxy) for name, proxy in found.items()}

    def proxy_names(self) -> set[str]:
        with self.bound():
            return {str(name) for name in APIConsumer.get("/proxies").json()}

    def _get_library_proxy(self, name: str) -> Any:
        with self.bound():
            data = APIConsumer.get(f"/proxies/{name}").json()
        return toxiproxy.Proxy(**data)

    def proxy(self, name: str) -> Proxy:
        return Proxy(self, self._get_library_proxy(name))

    def create_proxy(
        self,
        name: str,
        upstream: str | tuple[str, int],
        *,
        listen: str = "127.0.0.1:0",
        enabled: bool = True,
    ) -> Proxy:
        """A new proxy to ``upstream`` (``host:port``); its ``listen`` is the actual address."""
        if not _NAME.match(name):
            raise UsageError(f"proxy name {name!r}: use letters, digits and _ . ~ - only")
        if not isinstance(upstream, str):
            upstream = f"{upstream[0]}:{upstream[1]}"
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        with self.bound():
            # POST alone: the server answers 409 for a name it holds (ToxiproxyConflict).
            # toxiproxy-python's create() first lists every proxy to look for the name,
            # which costs O(proxies) per creation: measured 4.7 ms of a 31 ms cold start
            # with one proxy, and the better part of a cold start with 500.
            info = APIConsumer.post("/proxies", json=body).json()
        return Proxy(self, toxiproxy.Proxy(**{**info, "api_consumer": APIConsumer}))

    def reset(self) -> None:
        """Re-enable every proxy and remove every toxic (deletes no proxy)."""
        with self.bound():
            toxiproxy.Toxiproxy().reset()

    def delete_proxy(self, name: str) -> None:
        with self.bound():
            APIConsumer.delete(f"/proxies/{name}")

    def byte_counts(self) -> dict[str, dict[Direction, ByteCounts]] | None:
        """Bytes each proxy moved, per direction, as the server counts them; ``None`` when
        it does not (no ``/metrics``: an external server started without
        ``-proxy-metrics``, or one older than 2.4.0).

        Toxiproxy adds a connection's bytes when that connection ends, so a
        connection still open is not counted yet: close it, then wait for the
        counts. A proxy appears once one of its connections has ended; its counts
        stay after it is deleted.
        """
        try:
            answer = self._requests.get(f"{self.url}/metrics")
        except ToxiproxyNotFound:
            return None
        return parse_byte_counts(answer.text)


def _tail(log: IO[bytes] | None, limit: int = 2000) -> str:
    if log is None:
        return "(not started here)"
    log.flush()
    log.seek(0)
    text = log.read().decode("utf-8", "replace").strip()
    return text[-limit:] if text else "(no output)"
