"""Golden-file regression checks for recorded outputs (plans, setpoints), for our tests and users' own.

The workflow: replay a bag into the nodes and record their outputs (``cosmos_ros.replay``), then
:func:`assert_matches_golden` compares the recorded messages with a JSON golden file within tolerances the
test states. To create or refresh the golden after an intended change, run the test once with
``COSMOS_ROS_UPDATE_GOLDEN=1`` (or pass ``update=True``) and commit the file; without it a missing golden is
a failure, never a silent pass.

How messages are compared: each recorded message is deserialized (rosbags, with ``cosmos_ros/msg/*``
definitions registered) and flattened into ``path -> value`` (``trajectory.points.3.positions`` -> list of
floats). Numbers are compared with ``|a - b| <= atol + rtol * |b|`` (NaN equals NaN), strings exactly, shapes
exactly. Wall-clock timings (``*inference_time_s``, ``*queue_time_s``), the latency fields
(``*expected_latency_s``, ``*latency_p95_s``), ``model_id`` (a local path) and ``planner_session_id`` (the
planner's start time) are ignored by default because they differ between runs or machines without meaning
anything.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_ros.replay.bag import Bag, normalize_topic
from cosmos_ros.replay.types import ensure_type, make_typestore

UPDATE_ENV = "COSMOS_ROS_UPDATE_GOLDEN"
FORMAT = "cosmos_ros-golden/1"
# planner_session_id: the planner process' start time (ns), a new value every run by design.
DEFAULT_IGNORE: tuple[str, ...] = (
    "*inference_time_s",
    "*queue_time_s",
    "*expected_latency_s",
    "*latency_p95_s",
    "model_id",
    "*planner_session_id",
)
ALIGN_MODES = ("index", "stamp")

Flat = dict[str, Any]


@dataclass(frozen=True)
class Tolerance:
    """How closely one topic must match.

    Attributes:
        atol: Absolute tolerance on every number (in the field's unit: m, rad, s...). >= 0.
        rtol: Relative tolerance. >= 0.
        ignore: ``fnmatch`` patterns of flattened field paths not compared.
        count_tolerance: How many messages may be missing or extra (0: counts must be equal).
        align: ``index``: n-th recorded message vs n-th golden. ``stamp``: each golden message vs the recorded
            one with the nearest ``header.stamp`` within ``stamp_tolerance_s`` (for streams whose start
            may shift by a message or two).
        stamp_tolerance_s: Largest stamp difference that still pairs two messages (``stamp`` alignment). >= 0.
    """

    atol: float = 1e-6
    rtol: float = 1e-6
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    count_tolerance: int = 0
    align: str = "index"
    stamp_tolerance_s: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("atol", "rtol", "stamp_tolerance_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if self.count_tolerance < 0:
            raise ValueError(f"count_tolerance must be >= 0, got {self.count_tolerance}")
        if self.align not in ALIGN_MODES:
            raise ValueError(f"align must be one of {ALIGN_MODES}, got {self.align!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "atol": self.atol,
            "rtol": self.rtol,
            "ignore": list(self.ignore),
            "count_tolerance": self.count_tolerance,
            "align": self.align,
            "stamp_tolerance_s": self.stamp_tolerance_s,
        }


@dataclass(frozen=True)
class GoldenResult:
    """Outcome of a comparison: ``ok`` and, if not, every problem found (not only the first)."""

    ok: bool
    problems: tuple[str, ...] = ()
    compared: dict[str, int] = field(default_factory=dict)  # messages compared per topic
    updated: bool = False

    def __bool__(self) -> bool:
        return self.ok

    def report(self, limit: int = 30) -> str:
        if self.ok:
            what = "updated golden" if self.updated else "matches golden"
            return f"{what}: " + ", ".join(f"{t} ({n} msgs)" for t, n in sorted(self.compared.items()))
        shown = list(self.problems[:limit])
        if len(self.problems) > limit:
            shown.append(f"... and {len(self.problems) - limit} more")
        return "golden mismatch:\n  " + "\n  ".join(shown)


def flatten(msg: Any, prefix: str = "") -> Flat:
    """A deserialized message as ``path -> value``: numbers, strings, or lists of numbers (arrays)."""
    out: Flat = {}

    def put(path: str, value: Any) -> None:
        if isinstance(value, (bool, np.bool_)):
            out[path] = int(value)
        elif isinstance(value, (int, float, np.integer, np.floating)):
            out[path] = value.item() if isinstance(value, np.generic) else value
        elif isinstance(value, str):
            out[path] = value
        elif isinstance(value, np.ndarray):
            out[path] = (
                value.astype(float).tolist() if value.dtype.kind in "iufb" else [str(v) for v in value]
            )
        elif isinstance(value, (list, tuple)):
            if all(isinstance(v, str) for v in value):
                out[path] = list(value)
            elif all(isinstance(v, (int, float, bool)) for v in value):
                out[path] = [float(v) for v in value]
            else:
                for i, v in enumerate(value):
                    put(f"{path}.{i}", v)
        elif hasattr(value, "__dataclass_fields__"):
            for name in value.__dataclass_fields__:
                if name.startswith("__"):
                    continue
                put(f"{path}.{name}" if path else name, getattr(value, name))
        else:
            raise TypeError(f"cannot flatten field {path!r} of type {type(value).__name__}")

    put(prefix, msg)
    return out


def load_recorded(bag_path: str | Path, topics: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Messages of ``topics`` (all if None) in a recorded bag: ``{topic: {"type": t, "messages": [flat]}}``.

    Raises:
        cosmos_ros.replay.ReplayError: Bag or topic problems; UnknownTypeError for types without definitions.
    """
    store = make_typestore()
    with Bag(bag_path) as bag:
        names = [bag.info.topic(t).name for t in topics] if topics is not None else sorted(bag.info.topics)
        result: dict[str, dict[str, Any]] = {}
        for name in names:
            msgtype = bag.info.topics[name].msgtype
            ensure_type(store, msgtype)
            result[name] = {"type": msgtype, "messages": []}
        for m in bag.messages(names):
            result[m.topic]["messages"].append(flatten(store.deserialize_cdr(m.data, m.msgtype)))
    return result


def load_timed(bag_path: str | Path, topics: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Like :func:`load_recorded`, plus each message's record time: ``{"type", "times_ns", "messages"}``.

    The record time is the bag clock when the recorder got the message (``/clock`` of a replay), which is the
    only time a message without a header (``Float64MultiArray`` setpoints) has.
    """
    store = make_typestore()
    with Bag(bag_path) as bag:
        names = [bag.info.topic(t).name for t in topics]
        result: dict[str, dict[str, Any]] = {}
        for name in names:
            msgtype = bag.info.topics[name].msgtype
            ensure_type(store, msgtype)
            result[name] = {"type": msgtype, "times_ns": [], "messages": []}
        for m in bag.messages(names):
            result[m.topic]["times_ns"].append(m.time_ns)
            result[m.topic]["messages"].append(flatten(store.deserialize_cdr(m.data, m.msgtype)))
    return result


def resample(
    times_ns: list[int], messages: list[Flat], period_s: float, end_ns: int | None = None
) -> list[Flat]:
    """A stream held between messages (zero-order hold, as a controller holds its last setpoint), sampled
    at bag times that are multiples of ``period_s``, from the first message to ``end_ns`` (default: the last).

    Why: how many setpoints a node sends, and exactly when, follows its timer and the ``/clock`` updates it
    happened to see; what a controller is told at a given time is what matters, and is comparable between
    runs. Each sample is the message in force at that time plus ``t_s`` (the sample's bag time, s; compare it
    with ``rtol=0``: a relative tolerance on an epoch time is meaningless).

    Raises:
        ValueError: ``period_s`` not > 0, or times not sorted.
    """
    if not (math.isfinite(period_s) and period_s > 0):
        raise ValueError(f"period_s must be a finite number > 0, got {period_s}")
    if any(b < a for a, b in itertools.pairwise(times_ns)):
        raise ValueError("times_ns must be sorted (messages in record order)")
    if not times_ns:
        return []
    step = round(period_s * 1e9)
    last = times_ns[-1] if end_ns is None else end_ns
    out: list[Flat] = []
    i = 0
    t = -(-times_ns[0] // step) * step  # first multiple of the period at or after the first message
    while t <= last:
        while i + 1 < len(times_ns) and times_ns[i + 1] <= t:
            i += 1
        out.append({**messages[i], "t_s": t * 1e-9})
        t += step
    return out


def write_golden(path: str | Path, recorded: Mapping[str, Any], tolerances: Mapping[str, Tolerance]) -> None:
    """Write ``recorded`` (as from :func:`load_recorded`) and the tolerances it is checked with."""
    doc = {
        "format": FORMAT,
        "note": f"Written by cosmos_ros.testing.golden; refresh with {UPDATE_ENV}=1 after intended changes",
        "tolerances": {t: tol.as_dict() for t, tol in sorted(tolerances.items())},
        "topics": {t: recorded[t] for t in sorted(recorded)},
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def read_golden(path: str | Path) -> dict[str, Any]:
    """The ``topics`` of a golden file. ValueError if it is not one."""
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} golden file")
    topics = doc["topics"]
    assert isinstance(topics, dict)
    return topics


def _stamp_s(msg: Flat) -> float | None:
    sec, nsec = msg.get("header.stamp.sec"), msg.get("header.stamp.nanosec")
    if sec is None or nsec is None:
        return None
    return float(sec) + float(nsec) * 1e-9


def _compare_msg(got: Flat, want: Flat, tol: Tolerance, where: str) -> list[str]:
    def kept(flat: Flat) -> set[str]:
        return {k for k in flat if not any(fnmatch.fnmatchcase(k, pat) for pat in tol.ignore)}

    problems = []
    g, w = kept(got), kept(want)
    if g != w:
        if missing := sorted(w - g):
            problems.append(f"{where}: fields missing: {missing[:5]}")
        if extra := sorted(g - w):
            problems.append(f"{where}: unexpected fields: {extra[:5]}")
    for key in sorted(g & w):
        a, b = got[key], want[key]
        if isinstance(b, str) or (isinstance(b, list) and b and isinstance(b[0], str)):
            if a != b:
                problems.append(f"{where}.{key}: {a!r} != golden {b!r}")
            continue
        try:
            av, bv = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        except (TypeError, ValueError):
            problems.append(f"{where}.{key}: {a!r} is not comparable with golden {b!r}")
            continue
        if av.shape != bv.shape:
            problems.append(f"{where}.{key}: shape {av.shape} != golden {bv.shape}")
            continue
        close = np.isclose(av, bv, atol=tol.atol, rtol=tol.rtol, equal_nan=True)
        if not np.all(close):
            diff = np.abs(av - bv)
            diff = np.where(np.isnan(diff), np.inf, diff)
            i = int(np.argmax(np.where(close, -1.0, diff)))
            if av.ndim == 0:
                problems.append(
                    f"{where}.{key}: {float(av)!r} != golden {float(bv)!r} (atol {tol.atol}, rtol {tol.rtol})"
                )
            else:
                problems.append(
                    f"{where}.{key}[{i}]: {float(av.flat[i])!r} != golden {float(bv.flat[i])!r}; "
                    f"{int((~close).sum())} of {close.size} values off, max |diff| {float(diff.max()):.3g} "
                    f"(atol {tol.atol}, rtol {tol.rtol})"
                )
    return problems


def _pairs(
    got: list[Flat], want: list[Flat], tol: Tolerance, topic: str
) -> tuple[list[tuple[int, int]], list[str]]:
    if tol.align == "index":
        n = min(len(got), len(want))
        return [(i, i) for i in range(n)], []
    stamps_g = [_stamp_s(m) for m in got]
    stamps_w = [_stamp_s(m) for m in want]
    if any(s is None for s in stamps_g + stamps_w):
        return [], [f"{topic}: align='stamp' needs header.stamp in every message"]
    pairs, used = [], set()
    for j, sw in enumerate(stamps_w):
        best = min(
            (i for i in range(len(got)) if i not in used),
            key=lambda i: abs(stamps_g[i] - sw),  # type: ignore[operator]
            default=None,
        )
        if best is not None and abs(stamps_g[best] - sw) <= tol.stamp_tolerance_s:  # type: ignore[operator]
            pairs.append((best, j))
            used.add(best)
    return pairs, []


def compare(
    recorded: Mapping[str, Any], golden: Mapping[str, Any], tolerances: Mapping[str, Tolerance] | Tolerance
) -> GoldenResult:
    """Compare recorded topics (from :func:`load_recorded`) with golden ones; every difference is listed.

    Args:
        recorded: ``{topic: {"type", "messages"}}`` from this run.
        golden: The same structure from the golden file.
        tolerances: One for all topics, or per topic (topics not named use ``Tolerance()``).
    """
    problems: list[str] = []
    compared: dict[str, int] = {}
    for topic in sorted(set(golden) | set(recorded)):
        tol = tolerances if isinstance(tolerances, Tolerance) else tolerances.get(topic, Tolerance())
        if topic not in recorded:
            problems.append(f"{topic}: in the golden file but not recorded")
            continue
        if topic not in golden:
            problems.append(f"{topic}: recorded but not in the golden file (update the golden if intended)")
            continue
        if recorded[topic]["type"] != golden[topic]["type"]:
            problems.append(f"{topic}: type {recorded[topic]['type']} != golden {golden[topic]['type']}")
            continue
        got, want = recorded[topic]["messages"], golden[topic]["messages"]
        pairs, errs = _pairs(got, want, tol, topic)
        problems += errs
        unpaired = max(len(got), len(want)) - len(pairs)
        if abs(len(got) - len(want)) > tol.count_tolerance or unpaired > tol.count_tolerance:
            problems.append(
                f"{topic}: {len(got)} messages recorded, golden has {len(want)}, {len(pairs)} paired "
                f"(count_tolerance {tol.count_tolerance})"
            )
        for i, j in pairs:
            problems += _compare_msg(got[i], want[j], tol, f"{topic}[{j}]")
        compared[topic] = len(pairs)
    return GoldenResult(not problems, tuple(problems), compared)


def update_requested() -> bool:
    """True when ``COSMOS_ROS_UPDATE_GOLDEN`` is ``1``/``true``/``yes``."""
    return os.environ.get(UPDATE_ENV, "").strip().lower() in ("1", "true", "yes")


def check_golden(
    bag_path: str | Path,
    golden_path: str | Path,
    topics: Iterable[str],
    tolerances: Mapping[str, Tolerance] | Tolerance = Tolerance(),
    *,
    update: bool | None = None,
) -> GoldenResult:
    """Compare ``topics`` recorded in ``bag_path`` with ``golden_path``; or (re)write the golden.

    Args:
        bag_path: The recorded bag (e.g. ``PlayReport.record_path``).
        golden_path: JSON golden file.
        topics: Topics to compare (must all be in the bag).
        tolerances: One for all topics or per topic.
        update: Write the golden instead of comparing; None: :func:`update_requested`.

    Returns:
        The result; a missing golden without ``update`` is a failed result that says how to create it.
    """
    names = [normalize_topic(t) for t in topics]
    recorded = load_recorded(bag_path, names)
    per_topic = {t: tolerances for t in names} if isinstance(tolerances, Tolerance) else dict(tolerances)
    if update if update is not None else update_requested():
        write_golden(golden_path, recorded, per_topic)
        return GoldenResult(True, (), {t: len(v["messages"]) for t, v in recorded.items()}, updated=True)
    if not Path(golden_path).is_file():
        return GoldenResult(
            False, (f"golden file {golden_path} does not exist; create it with {UPDATE_ENV}=1",)
        )
    return compare(recorded, read_golden(golden_path), tolerances)


def assert_matches_golden(
    bag_path: str | Path,
    golden_path: str | Path,
    topics: Iterable[str],
    tolerances: Mapping[str, Tolerance] | Tolerance = Tolerance(),
    *,
    update: bool | None = None,
) -> GoldenResult:
    """:func:`check_golden` for pytest: raises AssertionError listing every problem when it does not match."""
    result = check_golden(bag_path, golden_path, topics, tolerances, update=update)
    if not result.ok:
        raise AssertionError(result.report())
    return result
