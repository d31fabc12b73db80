"""The one local hop between the worker processes of ``serve --workers N``.

Each worker also listens on a unix socket in a private folder named after the data folder
(under the temp folder: a socket path must stay under 108 bytes, which a data folder's own path
may not). A request a worker forwards to the owner of a saga
carries ``HOP_HEADER`` (the forwarding worker's index): the receiver answers it itself, never
forwarding again, so a request makes at most one hop. Forwarded requests keep their
credentials and are authenticated again by the owner: the hop grants nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

HOP_HEADER = "X-Saga-Journey-Hop"
WORKER_HEADER = "X-Saga-Journey-Worker"  # on every answer of a worker: which one answered


def hop_folder(data_folder: str) -> str:
    """The folder of the workers' sockets for ``data_folder`` (made 0700 by the supervisor)."""
    digest = hashlib.blake2b(os.path.realpath(data_folder).encode(), digest_size=8).hexdigest()
    return os.path.join(tempfile.gettempdir(), f"saga-journey-{os.getuid()}-{digest}")


def peer_address(data_folder: str, index: int) -> str:
    """The unix socket of worker ``index`` serving ``data_folder``."""
    return os.path.join(hop_folder(data_folder), f"w{index}.sock")
