"""Listening sockets bound before anything else starts.

``saga-journey serve`` binds its port first, so a busy or forbidden port is a one-line error
before the data folder is opened (or created); the bound sockets are then handed to aiohttp.
"""

from __future__ import annotations

import socket

from saga_journey.runtime.errors import InvalidInputError

MAX_PORT = 65535


def parse_port(raw: str) -> int:
    """A TCP port, 0-65535 (0: any free port, printed once listening)."""
    text = raw.strip()
    if not text.isdigit() or int(text) > MAX_PORT:
        raise InvalidInputError(f"--port must be an integer from 0 to {MAX_PORT} (0: any free port); got {raw!r}")
    return int(text)


def bind_listeners(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """One bound (not yet listening) socket per address of ``host``, as asyncio would bind.

    ``reuse_port``: SO_REUSEPORT, so that the workers of ``serve --workers`` (and their
    supervisor, which holds the port) bind the same port; the kernel spreads connections."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInputError(f"--host {host!r} cannot be resolved: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
