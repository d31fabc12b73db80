"""One exposition from several workers' expositions (``serve --workers N``): pure, no I/O.

Each worker of ``serve --workers N`` has its own registry; a scrape lands on one of them, which
gathers its peers' text and merges it here (``exposition.gathered_metrics_handler``). Every
sample gets a ``worker`` label (the first label), so series of different workers stay apart
(a counter that resets when one worker restarts is still a counter per series) and PromQL adds
them up: ``sum without (worker) (...)``.

The parts are read with a line parser, not re-rendered from floats: every value, timestamp,
HELP text and label value is copied as its worker wrote it (escapes included), and the
``_bucket``/``_sum``/``_count``/``_created``/``_total`` samples of a family stay with it. (An
OpenMetrics part, which our own peers never send, is first rewritten as 0.0.4.) The merge adds
``saga_worker_up``, one sample per worker asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

WORKER_LABEL = "worker"
WORKER_UP = "saga_worker_up"
WORKER_UP_HELP = ("Whether this worker's series are in this scrape (1) or missing from it (0: "
                  "it timed out or failed)")

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_HELP = re.compile(r"#[ \t]+HELP[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:[ \t](.*))?")
_TYPE = re.compile(r"#[ \t]+TYPE[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)[ \t]+([a-z]+)[ \t]*")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
_TIMESTAMP = re.compile(r"-?[0-9]+")
# Which sample names belong to a family declared by a HELP/TYPE line, by its type.
_SUFFIXES = {
    "counter": ("", "_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "untyped": ("",),
    None: ("",),
}


class ExpositionError(ValueError):
    """A part is not valid Prometheus text (0.0.4); ``merge_expositions`` counts it as missing."""


@dataclass(frozen=True)
class Family:
    """One family of one exposition: its header lines' text and its sample lines."""

    name: str
    help: str | None = None  # as written: still escaped
    type: str | None = None
    samples: tuple[Sample, ...] = ()


class _Families:
    """Families being collected, in first-seen order; the first HELP and TYPE of each win."""

    def __init__(self) -> None:
        self._help: dict[str, str] = {}
        self._type: dict[str, str] = {}
        self._samples: dict[str, list[Sample]] = {}

    def header(self, name: str, help: str | None = None, type: str | None = None) -> None:
        self._samples.setdefault(name, [])
        if help is not None:
            self._help.setdefault(name, help)
        if type is not None:
            self._type.setdefault(name, type)

    def type_of(self, name: str) -> str | None:
        return self._type.get(name)

    def add(self, name: str, samples: Iterable[Sample]) -> None:
        self._samples.setdefault(name, []).extend(samples)

    def families(self) -> list[Family]:
        return [Family(n, self._help.get(n), self._type.get(n), tuple(s)) for n, s in self._samples.items()]


@dataclass(frozen=True)
class Sample:
    """One sample line, split but not decoded: label values keep their escapes, the value
    and the timestamp their spelling."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: str
    timestamp: str | None = None

    def render(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in self.labels)
        ts = "" if self.timestamp is None else f" {self.timestamp}"
        return f"{self.name}{{{labels}}} {self.value}{ts}"


def escape_label_value(value: str) -> str:
    """A label value as the text format writes it (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# One label pair (and the comma or the closing brace after it); the value keeps its escapes.
_PAIR = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*(,|\})')
_BAD_ESCAPE = re.compile(r'\\[^\\"n]')
_CLOSE = re.compile(r"[ \t]*\}")


def _labels(line: str, pos: int, lineno: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """The label pairs of ``line`` from just after its ``{``; returns them and the position
    after the ``}``."""
    out: list[tuple[str, str]] = []
    while True:
        if (m := _CLOSE.match(line, pos)) is not None:
            return _checked(out, lineno), m.end()
        m = _PAIR.match(line, pos)
        if m is None:
            raise ExpositionError(f"line {lineno}: bad label at column {pos + 1}: {line[pos:pos + 40]!r}")
        name, value, sep = m.groups()
        if "\\" in value and _BAD_ESCAPE.search(value.replace("\\\\", "")):
            raise ExpositionError(f"line {lineno}: bad escape in the value of label {name}")
        out.append((name, value))
        pos = m.end()
        if sep == "}":
            return _checked(out, lineno), pos


def _checked(labels: list[tuple[str, str]], lineno: int) -> tuple[tuple[str, str], ...]:
    names = [k for k, _ in labels]
    if len(set(names)) != len(names):
        raise ExpositionError(f"line {lineno}: a label appears twice in {names}")
    return tuple(labels)


def _value(text: str, lineno: int) -> str:
    try:
        float(text)
    except ValueError:
        raise ExpositionError(f"line {lineno}: {text!r} is not a sample value") from None
    if "_" in text:  # float() takes 1_000; the text format does not
        raise ExpositionError(f"line {lineno}: {text!r} is not a sample value")
    return text


def _sample(line: str, lineno: int) -> Sample:
    m = _NAME.match(line)
    if m is None:
        raise ExpositionError(f"line {lineno}: expected a metric name")
    name, pos = m.group(0), m.end()
    labels: tuple[tuple[str, str], ...] = ()
    brace = pos
    while brace < len(line) and line[brace] in " \t":
        brace += 1
    if line[brace:brace + 1] == "{":
        labels, pos = _labels(line, brace + 1, lineno)
    rest = line[pos:].split()
    if not 1 <= len(rest) <= 2 or line[pos:pos + 1] not in (" ", "\t"):
        raise ExpositionError(f"line {lineno}: expected a value (and a timestamp) after {name}")
    timestamp = None
    if len(rest) == 2:
        if not _TIMESTAMP.fullmatch(rest[1]):
            raise ExpositionError(f"line {lineno}: {rest[1]!r} is not a timestamp")
        timestamp = rest[1]
    return Sample(name, labels, _value(rest[0], lineno), timestamp)


def _belongs(sample: str, family: str, type_: str | None) -> bool:
    return any(sample == family + sfx for sfx in _SUFFIXES.get(type_, ("",)))


def parse_exposition(text: str) -> list[Family]:
    """The families of one text exposition (0.0.4), in the order they first appear.

    A sample belongs to the family whose HELP/TYPE lines precede it when its name is that
    family's name with a suffix its type allows (``_bucket``, ``_sum``, ``_count`` of a
    histogram, ...); otherwise it is a family of its own, without header. Comments other than
    HELP and TYPE are dropped. Raises ``ExpositionError`` on a line that is not valid text.
    """
    families = _Families()
    current: str | None = None  # the family of the last HELP/TYPE or sample line
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("#"):
            if (m := _HELP.fullmatch(line)) is not None:
                current = m.group(1)
                families.header(current, help=m.group(2) or "")
            elif (m := _TYPE.fullmatch(line)) is not None:
                if m.group(2) not in _TYPES:
                    raise ExpositionError(f"line {lineno}: unknown metric type {m.group(2)!r}")
                current = m.group(1)
                families.header(current, type=m.group(2))
            elif re.match(r"#[ \t]+(HELP|TYPE)\b", line):
                raise ExpositionError(f"line {lineno}: malformed {line.split()[1]} line")
            elif line.strip() == "# EOF":
                raise ExpositionError(f"line {lineno}: OpenMetrics text, not 0.0.4")
            continue
        sample = _sample(line.strip(), lineno)
        if current is None or not _belongs(sample.name, current, families.type_of(current)):
            current = sample.name
        families.add(current, (sample,))
    return families.families()


def _with_worker(sample: Sample, worker: str) -> Sample:
    """``sample`` with ``worker="<worker>"`` first; a ``worker`` label it had already becomes
    ``exported_worker`` (as Prometheus renames a clashing target label)."""
    names = {k for k, _ in sample.labels}
    renamed: list[tuple[str, str]] = []
    for k, v in sample.labels:
        if k == WORKER_LABEL:
            k = "exported_" + k
            while k in names:
                k = "exported_" + k
        renamed.append((k, v))
    return Sample(sample.name, ((WORKER_LABEL, escape_label_value(worker)), *renamed),
                  sample.value, sample.timestamp)


def _decoded(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExpositionError(f"not UTF-8: {exc}") from None


def openmetrics_to_text(text: str) -> str:
    """An OpenMetrics exposition rewritten as text 0.0.4 (through prometheus_client's parser
    and encoder: exemplars are dropped, counters get their ``_total`` names back)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise ExpositionError(f"not valid OpenMetrics: {exc}") from None

    class Parsed:
        def collect(self) -> list[Any]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Parsed())
    return generate_latest(registry).decode("utf-8")


def _text(body: bytes) -> str:
    """A part as text 0.0.4 (an OpenMetrics part, ending in ``# EOF``, is rewritten)."""
    text = _decoded(body)
    if text.rstrip().endswith("# EOF"):
        return openmetrics_to_text(text)
    return text


def merge_expositions(parts: Sequence[tuple[str, bytes | None]]) -> bytes:
    """One text exposition (0.0.4) of every worker's ``(worker label, exposition)``.

    Each family's HELP and TYPE once (the first worker's that has them), then the samples of
    every worker in the order of ``parts``, each with ``worker="<label>"`` as its first label;
    families in first-seen order. Then ``saga_worker_up{worker=...}``: 1 for a part merged, 0
    for a part that is ``None`` (missing: timed out or failed) or not valid text (none of its
    samples are merged), so that a missing worker shows instead of silently smaller sums. A
    ``saga_worker_up`` family in a part is dropped (the merge writes that family). A part in
    OpenMetrics (ending in ``# EOF``) is read too, rewritten as 0.0.4 first.

    Raises ``ValueError`` when two parts have the same label.
    """
    labels = [label for label, _ in parts]
    if len(set(labels)) != len(labels):
        raise ValueError(f"worker labels must be distinct, got {labels}")
    merged = _Families()
    up: list[tuple[str, bool]] = []
    for worker, body in parts:
        if body is None:
            up.append((worker, False))
            continue
        try:
            families = parse_exposition(_text(body))
        except ExpositionError:
            up.append((worker, False))
            continue
        up.append((worker, True))
        for fam in families:
            if fam.name != WORKER_UP:
                merged.header(fam.name, fam.help, fam.type)
                merged.add(fam.name, (_with_worker(s, worker) for s in fam.samples))
    return "".join(_render(merged.families(), up)).encode("utf-8")


def _render(families: Iterable[Family], up: list[tuple[str, bool]]) -> Iterator[str]:
    for fam in families:
        yield from _render_family(fam)
    yield from _render_family(Family(WORKER_UP, WORKER_UP_HELP, "gauge", tuple(
        Sample(WORKER_UP, ((WORKER_LABEL, escape_label_value(w)),), "1.0" if ok else "0.0")
        for w, ok in up)))


def _render_family(fam: Family) -> Iterator[str]:
    if fam.help is not None:
        yield f"# HELP {fam.name} {fam.help}\n" if fam.help else f"# HELP {fam.name}\n"
    if fam.type is not None:
        yield f"# TYPE {fam.name} {fam.type}\n"
    for s in fam.samples:
        yield s.render() + "\n"
