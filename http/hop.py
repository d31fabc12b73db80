"""The one local hop between the worker processes of ``serve --workers N``.

Each worker also listens on an abstract unix socket named after the data folder and its index
(no file to clean up, no path-length limit). A request a worker forwards to the owner of a saga
carries ``HOP_HEADER`` (the forwarding worker's index): the receiver answers it itself, never
forwarding again, so a request makes at most one hop. Forwarded requests keep their
credentials and are authenticated again by the owner: the hop grants nothing.
"""

from __future__ import annotations

import hashlib
import os

HOP_HEADER = "X-Saga-Journey-Hop"
WORKER_HEADER = "X-Saga-Journey-Worker"  # on every answer of a worker: which one answered


def peer_address(data_folder: str, index: int) -> str:
    """The abstract unix socket of worker ``index`` serving ``data_folder``."""
    digest = hashlib.blake2b(os.path.realpath(data_folder).encode(), digest_size=8).hexdigest()
    return f"\0saga-journey-{digest}-w{index}"
