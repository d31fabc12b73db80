"""``--data-dir DIR`` / ``--store URL``: where a command's store is (one of them; ./data by default)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from saga_journey.persistence.factory import backend_for, data_dir_url
from saga_journey.persistence.ports import StoreBackend

from .errors import InvalidInputError

DEFAULT_DATA_DIR = "./data"


def add_store_options(
    parser: argparse.ArgumentParser, what: str = "LMDB data folder", *, data_dir: str | None = None
) -> None:
    """``data_dir``: the option's default (e.g. from the environment); None means ./data."""
    parser.add_argument("--data-dir", default=data_dir, help=f"{what} (default {DEFAULT_DATA_DIR})")
    parser.add_argument(
        "--store", default=None, metavar="URL",
        help="the store as a URL instead of --data-dir: lmdb:PATH or lmdb:///abs/path",
    )


@dataclass(frozen=True)
class StoreArg:
    url: str
    shown: str  # for messages: the folder given, or the URL
    flag: str  # the option it came from

    @classmethod
    def of(cls, args: argparse.Namespace) -> StoreArg:
        store, data_dir = getattr(args, "store", None), getattr(args, "data_dir", None)
        if store is not None and data_dir is not None:
            raise InvalidInputError(f"give --data-dir or --store, not both (--data-dir {data_dir}, --store {store})")
        if store is not None:
            backend_for(store)  # an unknown scheme is refused before anything is touched
            return cls(store, store, "--store")
        folder = data_dir if data_dir is not None else DEFAULT_DATA_DIR
        return cls(data_dir_url(folder), folder, "--data-dir")

    def backend(self) -> StoreBackend:
        return backend_for(self.url)

    def existing(self, *, create_flag: str | None = None) -> StoreBackend:
        """The backend, refused if no store is there (so a typo never creates an empty one)."""
        backend = self.backend()
        if not backend.exists():
            how = f"; pass {create_flag} to create a new store there" if create_flag else ""
            raise InvalidInputError(f"{self.flag} {self.shown} holds no saga-journey store{how}")
        return backend
