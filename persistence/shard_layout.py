"""The on-disk layout of a sharded data folder.

``FOLDER/shards.json`` (``{"format": 1, "shards": S}``) records S, fixed at creation;
``FOLDER/catalog/`` is an LmdbStore folder for journeys and their idempotency records;
``FOLDER/shard-000/`` ... are one LmdbStore folder per shard, so that a shard is a folder of
its own that can be moved to another owner. A folder without ``shards.json`` is the classic
one-environment layout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from saga_journey.runtime.errors import StorageError

from .shard_map import check_shard_count

LAYOUT_FILE = "shards.json"
LAYOUT_FORMAT = 1
CATALOG_DIR = "catalog"


@dataclass(frozen=True, slots=True)
class ShardLayout:
    folder: str
    shards: int

    @property
    def catalog(self) -> str:
        return os.path.join(self.folder, CATALOG_DIR)

    def shard_dir(self, shard: int) -> str:
        return os.path.join(self.folder, shard_dir_name(shard))

    def all_shards(self) -> range:
        return range(self.shards)


def shard_dir_name(shard: int) -> str:
    return f"shard-{shard:03d}"


def layout_file(folder: str) -> str:
    return os.path.join(os.fspath(folder), LAYOUT_FILE)


def read_layout(folder: str) -> ShardLayout | None:
    """The folder's layout (None: no ``shards.json``, the one-environment layout).

    A file that is not valid JSON or names an unknown format is refused, naming the file: a
    guess would route sagas to the wrong shard."""
    path = layout_file(folder)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc}", path=path) from exc
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StorageError(f"{path} is corrupt (not JSON: {exc})", path=path) from None
    if not isinstance(doc, dict) or doc.get("format") != LAYOUT_FORMAT:
        fmt = doc.get("format") if isinstance(doc, dict) else None
        raise StorageError(
            f"{path} has an unknown format {fmt!r} (this build reads format {LAYOUT_FORMAT})", path=path)
    shards = doc.get("shards")
    try:
        check_shard_count(shards)
    except Exception as exc:
        raise StorageError(f"{path} is corrupt: {exc}", path=path) from None
    assert isinstance(shards, int)
    return ShardLayout(os.fspath(folder), shards)


def create_layout(folder: str, shards: int, *, finish: bool = True) -> ShardLayout:
    """Create the catalog and every shard's environment in ``folder`` (created if absent),
    then write ``shards.json`` last (a folder without it is not a store). A folder that already holds a store is refused: its sagas
    would not be where the layout says. ``finish=False`` leaves ``shards.json`` out: the caller
    fills the environments first and writes it when done (``reshard``)."""
    shards = check_shard_count(shards)
    folder = os.fspath(folder)
    path = layout_file(folder)
    if os.path.exists(path):
        raise StorageError(f"{folder} is already sharded ({path} exists)", path=folder)
    if os.path.exists(os.path.join(folder, "data.mdb")):
        raise StorageError(
            f"{folder} already holds a store (data.mdb) of the one-environment layout; "
            "a sharded store needs a new folder", path=folder)
    os.makedirs(folder, exist_ok=True)
    layout = ShardLayout(folder, shards)
    from .lmdb_store import LmdbStore

    # every environment is there from the start: each worker opens the shards it does not own
    # (and, but for shard 0's owner, the catalog) read-only beside those it owns
    for env_dir in (layout.catalog, *(layout.shard_dir(s) for s in layout.all_shards())):
        LmdbStore(env_dir).close()
    if finish:
        write_atomically(path, json.dumps({"format": LAYOUT_FORMAT, "shards": shards}).encode() + b"\n")
    return layout


def write_atomically(path: str, data: bytes) -> None:
    """tmp file, fsync, rename, fsync of the folder: a crash leaves the old file or the new."""
    folder = os.path.dirname(path) or "."
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
