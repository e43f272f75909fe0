"""A proxy's toxics, per direction in insertion order, applied live to its connections."""

from __future__ import annotations

from typing import Protocol

from ._errors import toxic_exists, toxic_not_found
from ._toxics import DOWNSTREAM, UPSTREAM, Toxic, parse_create, parse_update


class Listener(Protocol):
    """A live connection that follows the toxics (a ``Link``)."""

    def add_toxic(self, toxic: Toxic) -> None: ...

    def update_toxic(self, toxic: Toxic) -> None: ...

    def remove_toxic(self, toxic: Toxic) -> None: ...


class ToxicSet:
    """Toxics of one proxy. Names are unique across both directions."""

    def __init__(self) -> None:
        self.chains: dict[str, list[Toxic]] = {UPSTREAM: [], DOWNSTREAM: []}
        self.links: set[Listener] = set()

    def all(self) -> list[Toxic]:
        """Upstream toxics first, then downstream, each in insertion order."""
        return [*self.chains[UPSTREAM], *self.chains[DOWNSTREAM]]

    def find(self, name: str) -> Toxic | None:
        for toxic in self.all():
            if toxic.name == name:
                return toxic
        return None

    def has_type(self, type_name: str) -> bool:
        """Whether any toxic of the proxy, in either direction, is of this type."""
        return any(toxic.kind.name == type_name for toxic in self.all())

    def get(self, name: str) -> Toxic:
        toxic = self.find(name)
        if toxic is None:
            raise toxic_not_found()
        return toxic

    def add(self, body: bytes) -> Toxic:
        request = parse_create(body)
        if self.find(request.name) is not None:
            raise toxic_exists()
        toxic = request.build()
        self.chains[toxic.direction].append(toxic)
        for link in list(self.links):
            link.add_toxic(toxic)
        return toxic

    def update(self, name: str, body: bytes) -> Toxic:
        toxic = self.get(name)
        toxic.attributes, toxic.toxicity = parse_update(toxic, body)
        for link in list(self.links):
            link.update_toxic(toxic)
        return toxic

    def remove(self, name: str) -> None:
        toxic = self.get(name)
        self.chains[toxic.direction].remove(toxic)
        for link in list(self.links):
            link.remove_toxic(toxic)

    def reset(self) -> None:
        for toxic in self.all():
            self.remove(toxic.name)

    def attach(self, link: Listener) -> None:
        self.links.add(link)
        for toxic in self.all():
            link.add_toxic(toxic)

    def detach(self, link: Listener) -> None:
        self.links.discard(link)
