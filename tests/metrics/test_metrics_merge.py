"""merge_expositions: several workers' expositions as one, read back with prometheus_client."""

from __future__ import annotations

import math
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from saga_journey.metrics import exposition
from saga_journey.metrics.merge import (
    WORKER_UP, ExpositionError, merge_expositions, parse_exposition,
)
from saga_journey.metrics.workload import run_workload

Key = tuple[str, tuple[tuple[str, str], ...]]


def samples(text: str | bytes) -> dict[Key, float]:
    """Every sample of an exposition read by prometheus_client: {(name, labels): value}."""
    if isinstance(text, bytes):
        text = text.decode()
    out: dict[Key, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def types(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode()
    return {fam.name: fam.type for fam in text_string_to_metric_families(text)}


def labelled(part: dict[Key, float], worker: str) -> dict[Key, float]:
    return {(n, tuple(sorted((*labels, ("worker", worker))))): v for (n, labels), v in part.items()}


def same(a: dict[Key, float], b: dict[Key, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def worker_registry(n: int) -> CollectorRegistry:
    """A registry like a worker's: a labelled counter, an unlabelled gauge, a histogram, a
    summary, with values that differ per worker."""
    reg = CollectorRegistry()
    c = Counter("saga_things_total", "Things done.", ["journey_type"], registry=reg)
    c.labels("order").inc(3 + n)
    c.labels("migration").inc(n)
    Gauge("saga_live_actors", "Live actors.", registry=reg).set(10 * n + 1)
    h = Histogram("saga_step_seconds", "Step time.", ["milestone"], buckets=(0.1, 1.0), registry=reg)
    for v in (0.05, 0.5, 5.0)[: n + 1]:
        h.labels("reserve").observe(v)
    Summary("saga_batch", "Batch size.", registry=reg).observe(7 * (n + 1))
    return reg


def test_every_sample_of_every_worker_is_there_once_labelled_with_its_worker():
    parts = [(str(n), generate_latest(worker_registry(n))) for n in range(3)]
    merged = merge_expositions(parts)
    want: dict[Key, float] = {}
    for label, body in parts:
        want |= labelled(samples(body), label)
    want |= {(WORKER_UP, (("worker", str(n)),)): 1.0 for n in range(3)}
    assert same(samples(merged), want)
    # the families keep their types (counter, histogram and summary suffixes stay together)
    assert types(merged) == types(parts[0][1]) | {WORKER_UP: "gauge"}
    assert types(merged)["saga_step_seconds"] == "histogram"
    assert types(merged)["saga_things"] == "counter"
    assert types(merged)["saga_batch"] == "summary"


def test_help_and_type_once_per_family_in_first_seen_order_and_worker_first():
    merged = merge_expositions([("0", generate_latest(worker_registry(0))),
                                ("1", generate_latest(worker_registry(1)))]).decode()
    lines = merged.splitlines()
    helps = [ln.split()[2] for ln in lines if ln.startswith("# HELP")]
    kinds = [ln.split()[2] for ln in lines if ln.startswith("# TYPE")]
    assert len(helps) == len(set(helps)) and helps == kinds
    order = [f.name for f in parse_exposition(generate_latest(worker_registry(0)).decode())]
    assert helps == [*order, WORKER_UP]
    # a family's samples follow its header, worker 0's then worker 1's, and worker= is first
    at = lines.index("# TYPE saga_step_seconds histogram")
    block = lines[at + 1: at + 1 + 2 * 5]
    assert [ln.split("{")[1].split(",")[0] for ln in block] == ['worker="0"'] * 5 + ['worker="1"'] * 5
    assert {ln.split("{")[0] for ln in block} == {
        "saga_step_seconds_bucket", "saga_step_seconds_sum", "saga_step_seconds_count"}
    assert 'saga_live_actors{worker="0"} 1.0' in lines
    assert 'saga_live_actors{worker="1"} 11.0' in lines


def test_a_missing_or_broken_part_is_worker_up_0_and_adds_no_sample():
    good = generate_latest(worker_registry(0))
    merged = merge_expositions([("0", good), ("1", None), ("2", b"<html>502 Bad Gateway</html>\n"),
                                ("3", b"\xff\xfe not utf-8 0\n")])
    got = samples(merged)
    up = {dict(labels)["worker"]: v for (name, labels), v in got.items() if name == WORKER_UP}
    assert up == {"0": 1.0, "1": 0.0, "2": 0.0, "3": 0.0}
    assert {dict(labels)["worker"] for (name, labels) in got if name != WORKER_UP} == {"0"}
    assert same({k: v for k, v in got.items() if k[0] != WORKER_UP}, labelled(samples(good), "0"))


def test_an_empty_part_is_up_and_no_part_is_only_worker_up():
    assert samples(merge_expositions([("0", b"")])) == {(WORKER_UP, (("worker", "0"),)): 1.0}
    assert merge_expositions([]).decode() == (
        f"# HELP {WORKER_UP} " + parse_exposition(merge_expositions([]).decode())[0].help + "\n"
        f"# TYPE {WORKER_UP} gauge\n")


def test_values_timestamps_and_label_escapes_are_copied_exactly():
    text = (
        "# HELP odd_values A help with a \\\\ backslash and a \\n newline.\n"
        "# TYPE odd_values gauge\n"
        'odd_values{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb",empty=""} 0.30000000000000004\n'
        'odd_values{path="x"} 1.7976931348623157e+308 1700000000123\n'
        'odd_values{path="y"} NaN\n'
        'odd_values{path="z"} -Inf\n'
        'odd_values{path="w",} +Inf -5\n'
        "bare_untyped 42\n"
    )
    merged = merge_expositions([("7", text.encode())]).decode()
    lines = merged.splitlines()
    assert lines[0] == "# HELP odd_values A help with a \\\\ backslash and a \\n newline."
    assert ('odd_values{worker="7",path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb",empty=""} '
            "0.30000000000000004") in lines
    assert 'odd_values{worker="7",path="x"} 1.7976931348623157e+308 1700000000123' in lines
    assert 'odd_values{worker="7",path="w"} +Inf -5' in lines
    assert 'bare_untyped{worker="7"} 42' in lines
    got = {(f.name, s.labels.get("path")): s for f in text_string_to_metric_families(merged)
           for s in f.samples}
    s = got[("odd_values", "C:\\\\dir".replace("\\\\", "\\"))]
    assert s.labels == {"worker": "7", "path": "C:\\dir", "quote": 'say "hi"', "nl": "a\nb", "empty": ""}
    assert s.value == 0.1 + 0.2
    assert got[("odd_values", "x")].timestamp == 1700000000.123
    assert math.isnan(got[("odd_values", "y")].value) and got[("odd_values", "z")].value == -math.inf


def test_the_worker_label_value_is_escaped_and_an_existing_worker_label_is_renamed():
    text = b'# TYPE jobs gauge\njobs{worker="inner",exported_worker="x"} 1\n'
    merged = merge_expositions([('a"b\\c', text)])
    got = samples(merged)
    # as Prometheus renames a clashing label: exported_ until the name is free
    assert got[("jobs", (("exported_exported_worker", "inner"), ("exported_worker", "x"),
                         ("worker", 'a"b\\c')))] == 1.0
    assert got[(WORKER_UP, (("worker", 'a"b\\c'),))] == 1.0


def test_two_parts_with_one_label_are_refused():
    with pytest.raises(ValueError, match="distinct"):
        merge_expositions([("0", b""), ("0", b"")])


def test_a_worker_up_family_in_a_part_is_replaced_by_the_merge_s():
    part = f"# TYPE {WORKER_UP} gauge\n{WORKER_UP}{{worker=\"9\"}} 1\n".encode()
    got = samples(merge_expositions([("0", part), ("1", None)]))
    assert got == {(WORKER_UP, (("worker", "0"),)): 1.0, (WORKER_UP, (("worker", "1"),)): 0.0}


def test_an_openmetrics_part_is_merged_like_its_text_twin():
    reg = worker_registry(1)
    text = merge_expositions([("1", generate_latest(reg))])
    om = merge_expositions([("1", generate_openmetrics(reg))])
    assert same(samples(om), samples(text)) and types(om) == types(text)


@pytest.mark.parametrize("bad", [
    "metric{a=\"1\"}\n",                 # no value
    "metric{a=\"1\" 1\n",                # label set not closed
    "metric{a=1} 1\n",                   # unquoted value
    "metric{a=\"\\x\"} 1\n",             # bad escape
    "metric{a=\"1\",a=\"2\"} 1\n",       # label twice
    "metric 1 2 3\n",                    # too many fields
    "metric one\n",                      # not a number
    "metric 1_000\n",                    # Python's float() takes it, the format does not
    "metric 1 1.5\n",                    # timestamps are integers (ms)
    "metric{a=\"1\"}1\n",                # no space before the value
    "# TYPE metric countr\n",            # unknown type
    "# TYPE metric\n",                   # malformed TYPE
    "9metric 1\n",                       # bad name
])
def test_invalid_text_is_refused(bad):
    with pytest.raises(ExpositionError):
        parse_exposition(bad)
    assert samples(merge_expositions([("0", bad.encode())])) == {(WORKER_UP, (("worker", "0"),)): 0.0}


def test_the_real_exposition_of_two_runtimes_merges_and_passes_promtool(runtime, tmp_path, promtool):
    orch, metrics = runtime
    run_workload(orch, 12, fail_every=3)
    metrics.on_http_request("/sagas/{saga_id}", 200, 0.002)
    first, _ = exposition(metrics.registry)
    other = worker_registry(2)
    merged = merge_expositions([("0", first), ("1", generate_latest(other)), ("2", None)])
    assert same(samples(merged), labelled(samples(first), "0") | labelled(samples(generate_latest(other)), "1")
                | {(WORKER_UP, (("worker", w),)): v for w, v in (("0", 1.0), ("1", 1.0), ("2", 0.0))})
    out = subprocess.run([promtool, "check", "metrics"], input=merged, capture_output=True, timeout=60)
    assert out.returncode == 0, (out.stdout + out.stderr).decode()
    # promtool lints on stdout/stderr even when it exits 0; there must be no complaint at all.
    assert (out.stdout + out.stderr).strip() == b"", (out.stdout + out.stderr).decode()


label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
values = st.floats(allow_nan=False) | st.integers(-10**15, 10**15).map(float)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(label_values, label_values, values), min_size=1, max_size=6),
       st.lists(label_values, min_size=1, max_size=3, unique=True))
def test_any_label_values_and_floats_survive_the_merge(rows, workers):
    reg = CollectorRegistry()
    g = Gauge("prop_gauge", "Property.", ["a", "b"], registry=reg)
    for a, b, v in rows:
        g.labels(a, b).set(v)
    body = generate_latest(reg)
    merged = merge_expositions([(w, body) for w in workers])
    want: dict[Key, float] = {}
    for w in workers:
        want |= labelled(samples(body), w)
        want[(WORKER_UP, (("worker", w),))] = 1.0
    assert same(samples(merged), want)
