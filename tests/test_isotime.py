"""The fast ``iso`` gives exactly the string of datetime's own formatting, rounding included."""

import datetime as dt
import math
import random

from saga_journey.runtime.isotime import iso


def reference(at: float) -> str | None:
    try:
        return dt.datetime.fromtimestamp(at, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (OverflowError, OSError, ValueError):
        return None


def test_iso_matches_datetime_formatting() -> None:
    rng = random.Random(7)
    values: list[float] = [rng.uniform(-3e9, 5e9) for _ in range(20_000)]
    values += [rng.uniform(1.7e9, 1.8e9) for _ in range(20_000)]
    # Half-microsecond ties and their neighbours, around zero and now: the rounding edges.
    for base in (0.0, 1.0, -5.0, 1_764_650_000.0):
        for j in range(-40, 40):
            tie = base + 0.5e-6 * j
            values += [tie, math.nextafter(tie, math.inf), math.nextafter(tie, -math.inf)]
    values += [0, 1, -1, 1_764_650_000, 0.9999995, -0.0000005, 1e10, -1e10, 253402300799.9, 1e11, -1e11]
    for at in values:
        assert iso(at) == reference(at), at


def test_iso_of_odd_values_is_none() -> None:
    for at in (None, True, "1", float("nan"), float("inf"), -float("inf"), 10**30):
        assert iso(at) is None
