"""``saga-journey migrate``: bring a data folder to the current stored format.

Opening a folder with this release upgrades it automatically (one write transaction); this
command does only that, for an operator who wants it done, and said, before serving.
"""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from .errors import StorageError


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    migrate = sub.add_parser("migrate", help="upgrade a data folder to the current stored format")
    migrate.add_argument("--data-dir", default="./data")


def run_migrate(data_dir: str, out: TextIO) -> int:
    from saga_journey.persistence.layout import FORMAT_VERSION
    from saga_journey.persistence.lmdb_store import LmdbStore

    if not os.path.exists(os.path.join(data_dir, "data.mdb")):
        raise StorageError(f"{data_dir} holds no saga-journey store (no data.mdb)")
    store = LmdbStore(data_dir)
    try:
        found = store.format_found
    finally:
        store.close()
    if found in (0, FORMAT_VERSION):  # 0: a store that never held data
        print(f"{data_dir}: already at stored format {FORMAT_VERSION}", file=out)
    else:
        print(f"{data_dir}: upgraded from stored format {found} to {FORMAT_VERSION}", file=out)
    return 0
