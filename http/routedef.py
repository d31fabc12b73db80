"""Routes as data, in the style of aiohttp's ``web.RouteTableDef``, with the role each one needs.

    routes = RouteTable()

    @routes.get("/v1/sagas", name="list_sagas", role="read")
    async def list_sagas(request): ...

``app.add_routes(routes)`` registers them (a RouteTable is a sequence of aiohttp ``RouteDef``);
the auth middleware reads the role of the matched route by its name with ``role_of``. A route
with ``role=None`` is public (no credential). The route name is also the OpenAPI operationId
and the key of its request schema in ``schemas.REQUESTS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROLES = ("read", "write", "admin")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    role: str | None  # None: public, no credential needed
    name: str
    head: bool = False  # a GET route that also answers HEAD

    def definition(self) -> web.RouteDef:
        kwargs: dict[str, object] = {"name": self.name}
        if self.method == "GET":
            kwargs["allow_head"] = self.head
        return web.RouteDef(self.method, self.path, self.handler, kwargs)


class RouteTable(Sequence[web.RouteDef]):
    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._by_name: dict[str, Route] = {}

    def route(self, method: str, path: str, *, name: str, role: str | None) -> Callable[[Handler], Handler]:
        if role is not None and role not in ROLES:
            raise ValueError(f"route {name}: unknown role {role!r}")
        if name in self._by_name:
            raise ValueError(f"route name {name!r} declared twice")

        def register(handler: Handler) -> Handler:
            self.add(Route(method, path, handler, role, name))
            return handler

        return register

    def get(self, path: str, *, name: str, role: str | None) -> Callable[[Handler], Handler]:
        return self.route("GET", path, name=name, role=role)

    def post(self, path: str, *, name: str, role: str | None) -> Callable[[Handler], Handler]:
        return self.route("POST", path, name=name, role=role)

    def add(self, route: Route) -> None:
        self._routes.append(route)
        self._by_name[route.name] = route

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def by_name(self, name: str) -> Route | None:
        return self._by_name.get(name)

    @overload
    def __getitem__(self, index: int) -> web.RouteDef: ...
    @overload
    def __getitem__(self, index: slice) -> list[web.RouteDef]: ...

    def __getitem__(self, index: int | slice) -> web.RouteDef | list[web.RouteDef]:
        if isinstance(index, slice):
            return [r.definition() for r in self._routes[index]]
        return self._routes[index].definition()

    def __len__(self) -> int:
        return len(self._routes)

    def __iter__(self) -> Iterator[web.RouteDef]:
        return (r.definition() for r in self._routes)


def role_of(tables: Sequence[RouteTable], name: str | None) -> tuple[bool, str | None]:
    """(known, role) of the route called ``name`` in ``tables``; unknown routes are public."""
    for table in tables:
        route = table.by_name(name or "")
        if route is not None:
            return True, route.role
    return False, None
