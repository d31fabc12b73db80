"""1,000 concurrent SSE subscribers on a real `serve` subprocess stay within bounded memory and
each receives every event (bench/bench_sse.py, run here with a generous bound)."""

from __future__ import annotations

import importlib.util
import pathlib

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "bench_sse.py"
MAX_GROWTH_PER_SUBSCRIBER_KIB = 100  # measured ~18 KiB; the bound is for a leak, not for tuning


async def test_thousand_subscribers_bounded_rss():
    spec = importlib.util.spec_from_file_location("bench_sse", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = await bench.run(1000, 20)  # asserts that every subscriber got all 20 events
    growth = result["rss_after_events_kib"] - result["rss_before_kib"]
    assert growth < MAX_GROWTH_PER_SUBSCRIBER_KIB * 1000, result
