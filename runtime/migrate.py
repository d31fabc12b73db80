"""``saga-journey migrate``: bring a data folder to the current stored format.

Opening a folder with this release upgrades it automatically (one write transaction); this
command does only that, for an operator who wants it done, and said, before serving.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from saga_journey.persistence.ports import StoreBackend


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .cli_store import add_store_options

    migrate = sub.add_parser("migrate", help="upgrade a data folder to the current stored format")
    add_store_options(migrate)


def run_migrate(backend: StoreBackend, shown: str, out: TextIO) -> int:
    found, current = backend.migrate()
    if found in (0, current):  # 0: a store that never held data
        print(f"{shown}: already at stored format {current}", file=out)
    else:
        print(f"{shown}: upgraded from stored format {found} to {current}", file=out)
    return 0
