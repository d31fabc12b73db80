"""Store URLs: the factory resolves the supported schemes and refuses anything else by name."""

from __future__ import annotations

import pytest

from saga_journey.persistence.factory import BACKENDS, backend_for, data_dir_url
from saga_journey.persistence.lmdb_backend import LmdbBackend
from saga_journey.runtime.errors import InvalidInputError


@pytest.mark.parametrize(("url", "path"), [
    ("lmdb:./data", "./data"), ("lmdb:data", "data"), ("lmdb:/abs/path", "/abs/path"),
    ("lmdb:///abs/path", "/abs/path"), ("LMDB:./x", "./x"), ("lmdb:with:colon", "with:colon"),
])
def test_lmdb_urls_name_a_folder(url: str, path: str) -> None:
    backend = backend_for(url)
    assert isinstance(backend, LmdbBackend) and backend.path == path and backend.url == url
    assert backend.describe() == path


def test_data_dir_is_the_lmdb_url_of_the_folder() -> None:
    assert backend_for(data_dir_url("./data")).describe() == "./data"


@pytest.mark.parametrize(("url", "words"), [
    ("postgresql://u@db/sagas", ["unsupported scheme 'postgresql'"]),
    ("sqlite:x.db", ["unsupported scheme 'sqlite'"]),
    ("./data", ["has no scheme"]), ("", ["non-empty"]), ("   ", ["non-empty"]),
    ("lmdb://host/data", ["no host"]), ("lmdb:", ["names no folder"]), ("lmdb://", ["names no folder"]),
])
def test_other_urls_are_refused_naming_what_is_supported(url: str, words: list[str]) -> None:
    with pytest.raises(InvalidInputError) as err:
        backend_for(url)
    for word in words:
        assert word in err.value.message
    if "scheme" in words[0]:
        assert f"supported schemes: {', '.join(sorted(BACKENDS))}" in err.value.message
