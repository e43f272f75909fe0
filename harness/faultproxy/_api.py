"""The Toxiproxy HTTP API: routing, the browser guard, and one handler per endpoint.

Routing mirrors the real server (gorilla/mux): an unknown path is a plain-text
404, a known path with the wrong method a 405 with an empty body, and only a
matched route runs the middleware: an ``X-Toxiproxy-Request-Id`` header on its
answer, then the ``User-Agent`` check (``Mozilla/...`` gets a 403). So the 404
and the 405 carry no request id, as measured on the real 2.8.0 and 2.12.0.
``/metrics`` exists only when the server counts (``-proxy-metrics`` or
``-runtime-metrics``) and, as there, answers any method.
Handlers run one at a time under a lock, as the real collection's locks make
them; each returns a :class:`Response`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from . import VERSION
from ._errors import ApiError
from ._http import Request, Response, request_id
from ._metrics import CONTENT_TYPE as METRICS_TYPE
from ._proxies import ProxyCollection, parse_populate, parse_proxy, parse_proxy_update

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"

Params = dict[str, str]
Endpoint = Callable[["Api", Request, Params], Awaitable[Response]]

NOT_FOUND = Response(404, b"404 page not found\n", TEXT, {"X-Content-Type-Options": "nosniff"})
FORBIDDEN = Response(403, b"User agent not allowed\n", TEXT, {"X-Content-Type-Options": "nosniff"})


def _json(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value, separators=(",", ":")).encode(), JSON)


def _listed(proxies: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Go marshals the empty (nil) slice of proxies as ``null``."""
    return proxies or None


def _populate_error(err: ApiError, proxies: list[dict[str, Any]]) -> Response:
    return _json(
        err.status, {"error": err.message, "status": err.status, "proxies": _listed(proxies)}
    )


def error_response(err: ApiError) -> Response:
    return Response(err.status, err.body(), TEXT, {"X-Content-Type-Options": "nosniff"})


class Api:
    """The endpoints over one :class:`ProxyCollection`.

    ``metrics``: whether ``/metrics`` exists (the real server's ``-proxy-metrics``
    or ``-runtime-metrics``); its counters are the collection's, if any.
    """

    def __init__(self, collection: ProxyCollection, *, metrics: bool = False) -> None:
        self.collection = collection
        self.metrics = metrics
        self._lock = asyncio.Lock()

    async def __call__(self, request: Request) -> Response:
        found = route(request.method, request.path, metrics=self.metrics)
        if isinstance(found, Response):
            return found
        endpoint, params = found
        answer = await self._answer(endpoint, request, params)
        return Response(
            answer.status,
            answer.body,
            answer.content_type,
            {"X-Toxiproxy-Request-Id": request_id(), **answer.headers},
        )

    async def _answer(self, endpoint: Endpoint, request: Request, params: Params) -> Response:
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            return FORBIDDEN
        async with self._lock:
            try:
                return await endpoint(self, request, params)
            except ApiError as err:
                return error_response(err)

    async def reset(self, request: Request, params: Params) -> Response:
        await self.collection.reset()
        return Response(204)

    async def proxy_index(self, request: Request, params: Params) -> Response:
        return _json(200, {name: p.to_json() for name, p in self.collection.proxies.items()})

    async def proxy_create(self, request: Request, params: Params) -> Response:
        proxy = await self.collection.add(parse_proxy(request.body))
        return _json(201, proxy.to_json())

    async def populate(self, request: Request, params: Params) -> Response:
        try:
            specs = parse_populate(request.body)
        except ApiError as bad:
            return _populate_error(bad, [])
        proxies, failure = await self.collection.populate(specs)
        listed = [proxy.to_json() for proxy in proxies]
        if failure is not None:
            return _populate_error(failure, listed)
        return _json(201, {"proxies": _listed(listed)})

    async def proxy_show(self, request: Request, params: Params) -> Response:
        return _json(200, self.collection.get(params["proxy"]).to_json())

    async def proxy_update(self, request: Request, params: Params) -> Response:
        proxy = self.collection.get(params["proxy"])
        spec = parse_proxy_update(proxy, request.body)
        await proxy.update(spec.listen, spec.upstream, spec.enabled)
        return _json(200, proxy.to_json())

    async def proxy_delete(self, request: Request, params: Params) -> Response:
        self.collection.remove(params["proxy"])
        return Response(204)

    async def toxic_index(self, request: Request, params: Params) -> Response:
        toxics = self.collection.get(params["proxy"]).toxics.all()
        return _json(200, [toxic.to_json() for toxic in toxics])

    async def toxic_create(self, request: Request, params: Params) -> Response:
        toxic = self.collection.get(params["proxy"]).toxics.add(request.body)
        return _json(200, toxic.to_json())

    async def toxic_show(self, request: Request, params: Params) -> Response:
        toxics = self.collection.get(params["proxy"]).toxics
        return _json(200, toxics.get(params["toxic"]).to_json())

    async def toxic_update(self, request: Request, params: Params) -> Response:
        toxics = self.collection.get(params["proxy"]).toxics
        return _json(200, toxics.update(params["toxic"], request.body).to_json())

    async def toxic_delete(self, request: Request, params: Params) -> Response:
        self.collection.get(params["proxy"]).toxics.remove(params["toxic"])
        return Response(204)

    async def version(self, request: Request, params: Params) -> Response:
        body = f'{{"version": "{VERSION}"}}\n'.encode()
        return Response(200, body, "application/json;charset=utf-8")

    async def metrics_text(self, request: Request, params: Params) -> Response:
        counters = self.collection.metrics
        body = counters.render() if counters is not None else b""
        return Response(200, body, METRICS_TYPE)


ROUTES: list[tuple[tuple[str, ...], dict[str, Endpoint]]] = [
    (("reset",), {"POST": Api.reset}),
    (("proxies",), {"GET": Api.proxy_index, "POST": Api.proxy_create}),
    (("populate",), {"POST": Api.populate}),
    (
        ("proxies", "{proxy}"),
        {
            "GET": Api.proxy_show,
            "POST": Api.proxy_update,
            "PATCH": Api.proxy_update,
            "DELETE": Api.proxy_delete,
        },
    ),
    (("proxies", "{proxy}", "toxics"), {"GET": Api.toxic_index, "POST": Api.toxic_create}),
    (
        ("proxies", "{proxy}", "toxics", "{toxic}"),
        {
            "GET": Api.toxic_show,
            "POST": Api.toxic_update,
            "PATCH": Api.toxic_update,
            "DELETE": Api.toxic_delete,
        },
    ),
    (("version",), {"GET": Api.version}),
]

ANY_METHOD = "*"
METRICS_ROUTE: tuple[tuple[str, ...], dict[str, Endpoint]] = (
    ("metrics",),
    {ANY_METHOD: Api.metrics_text},
)


def _match(pattern: tuple[str, ...], segments: list[str]) -> Params | None:
    if len(pattern) != len(segments):
        return None
    params: Params = {}
    for want, got in zip(pattern, segments, strict=True):
        if want.startswith("{"):
            if not got:
                return None
            params[want[1:-1]] = unquote(got)
        elif want != got:
            return None
    return params


def route(method: str, path: str, *, metrics: bool = False) -> tuple[Endpoint, Params] | Response:
    """The endpoint for ``method path``, or the 404 / 405 response (``/metrics`` if ``metrics``)."""
    if not path.startswith("/"):
        return NOT_FOUND
    segments = path[1:].split("/")
    allowed = False
    for pattern, methods in [*ROUTES, METRICS_ROUTE] if metrics else ROUTES:
        params = _match(pattern, segments)
        if params is None:
            continue
        endpoint = methods.get(method) or methods.get(ANY_METHOD)
        if endpoint is not None:
            return endpoint, params
        allowed = True
    return Response(405) if allowed else NOT_FOUND
