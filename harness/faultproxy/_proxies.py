"""All proxies of the server by name: create, get, delete, populate, reset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import _decode as decode
from ._addr import resolve_listen
from ._errors import ApiError, bad_request, missing_field, proxy_exists, proxy_not_found
from ._metrics import ByteCounters
from ._proxy import Proxy


@dataclass
class ProxySpec:
    """The fields of a proxy in a create or populate body."""

    name: str
    listen: str
    upstream: str
    enabled: bool


def _spec(value: Any, go_type: str = "toxiproxy.Proxy") -> ProxySpec:
    members = decode.fields(value, go_type)
    return ProxySpec(
        name=decode.string(members, "name", "", "Proxy.name"),
        listen=decode.string(members, "listen", "", "Proxy.listen"),
        upstream=decode.string(members, "upstream", "", "Proxy.upstream"),
        enabled=decode.boolean(members, "enabled", True, "Proxy.enabled"),
    )


def parse_proxy(body: bytes) -> ProxySpec:
    spec = _spec(decode.first_value(body))
    if not spec.name:
        raise missing_field("name")
    if not spec.upstream:
        raise missing_field("upstream")
    return spec


def parse_proxy_update(proxy: Proxy, body: bytes) -> ProxySpec:
    """Omitted listen / upstream / enabled keep their values; ``name`` is ignored."""
    members = decode.fields(decode.first_value(body), "toxiproxy.Proxy")
    return ProxySpec(
        name=proxy.name,
        listen=decode.string(members, "listen", proxy.listen, "Proxy.listen"),
        upstream=decode.string(members, "upstream", proxy.upstream, "Proxy.upstream"),
        enabled=decode.boolean(members, "enabled", proxy.enabled, "Proxy.enabled"),
    )


def parse_populate(body: bytes) -> list[ProxySpec]:
    """Every entry validated before any proxy is made (``... at proxy N``, N from 1)."""
    value = decode.first_value(body)
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(
            f"json: cannot unmarshal {decode.json_type(value)} into Go value of type "
            "[]toxiproxy.Proxy"
        )
    specs = [_spec(entry) for entry in value]
    for n, spec in enumerate(specs, start=1):
        if not spec.name:
            raise missing_field(f"name at proxy {n}")
        if not spec.upstream:
            raise missing_field(f"upstream at proxy {n}")
    return specs


class ProxyCollection:
    """The server's proxies. Callers serialise mutations (the API holds one lock).

    ``metrics`` is the server's byte counters when it counts (``-proxy-metrics``).
    """

    def __init__(self, metrics: ByteCounters | None = None) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.metrics = metrics

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise proxy_not_found()
        return proxy

    async def add(self, spec: ProxySpec) -> Proxy:
        if spec.name in self.proxies:
            raise proxy_exists()
        proxy = Proxy(spec.name, spec.listen, spec.upstream, self.metrics)
        if spec.enabled:
            await proxy.start()
        self.proxies[spec.name] = proxy
        return proxy

    def remove(self, name: str) -> None:
        proxy = self.get(name)
        proxy.stop()
        del self.proxies[name]

    async def populate(self, specs: list[ProxySpec]) -> tuple[list[Proxy], ApiError | None]:
        """Create or replace each; an identical one (listen and upstream) is left alone."""
        done: list[Proxy] = []
        for spec in specs:
            existing = self.proxies.get(spec.name)
            if existing is not None:
                same_listen = existing.listen in (spec.listen, resolve_listen(spec.listen))
                if same_listen and existing.upstream == spec.upstream:
                    done.append(existing)
                    continue
                existing.stop()
            proxy = Proxy(spec.name, spec.listen, spec.upstream, self.metrics)
            if spec.enabled:
                try:
                    await proxy.start()
                except ApiError as exc:
                    return done, exc
            self.proxies[spec.name] = proxy
            done.append(proxy)
        return done, None

    async def reset(self) -> None:
        """Re-enable every proxy and remove every toxic; deletes none."""
        for proxy in list(self.proxies.values()):
            await proxy.start()
            proxy.toxics.reset()

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
