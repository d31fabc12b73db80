"""Store URLs -> backends: the one place that knows which backends exist.

``lmdb:./data`` / ``lmdb:data`` (relative), ``lmdb:/abs/path`` or ``lmdb:///abs/path``.
Backend modules are imported only when a URL names them.
"""

from __future__ import annotations

import re
from typing import Callable

from saga_journey.runtime.errors import InvalidInputError

from .ports import StoreBackend

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.DOTALL)
EXAMPLES = "e.g. lmdb:./data or lmdb:///abs/path"


def _lmdb(url: str, location: str) -> StoreBackend:
    from .lmdb_backend import LmdbBackend

    if location.startswith("//"):
        host, sep, path = location[2:].partition("/")
        if host:
            raise InvalidInputError(
                f"store URL {url!r}: an lmdb store is a local folder, it has no host ({host!r}); "
                f"{EXAMPLES}"
            )
        location = "/" + path if sep else ""
    if not location:
        raise InvalidInputError(f"store URL {url!r} names no folder; {EXAMPLES}")
    return LmdbBackend(location, url=url)


BACKENDS: dict[str, Callable[[str, str], StoreBackend]] = {"lmdb": _lmdb}


def backend_for(url: str) -> StoreBackend:
    """The backend a store URL names; a URL that names none is refused, listing those there are."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInputError(f"a store URL must be a non-empty string ({EXAMPLES})")
    match = _SCHEME.match(url)
    supported = ", ".join(sorted(BACKENDS))
    if match is None:
        raise InvalidInputError(
            f"store URL {url!r} has no scheme; supported schemes: {supported} ({EXAMPLES})"
        )
    scheme, location = match.group(1).lower(), match.group(2)
    make = BACKENDS.get(scheme)
    if make is None:
        raise InvalidInputError(
            f"store URL {url!r}: unsupported scheme {scheme!r}; supported schemes: {supported} ({EXAMPLES})"
        )
    return make(url, location)


def data_dir_url(data_dir: str) -> str:
    """The store URL of an LMDB data folder (``--data-dir``, the documented default)."""
    return f"lmdb:{data_dir}"
