"""When each recorded message is played, and under which name: the timing logic of replay, without ROS.

The player (``cosmos_ros.replay.player``) only sleeps until ``play_time_s`` and publishes; everything that
decides *what* is played *when* lives here so it can be tested with plain iterables.

Timing model (the one ``ros2 bag play`` uses, made explicit):

* ``begin_ns = bag start + start_offset_s``; messages received before ``begin_ns`` are skipped, and so are
  messages after ``end_ns = bag start + end_offset_s`` when an end offset is given.
* ``throttle`` drops messages of a topic that come less than its interval (bag time) after the last one
  played of that topic, like topic_tools' ``throttle``; the choice depends only on the bag, so it is the same
  on every run (the way to play one camera frame a second into a slow model, e.g. in lockstep replays).
* A message received at ``t`` in pass ``k`` (``k = 0`` unless looping) has the *bag-clock time*
  ``sim_time_ns = t + k * period_ns`` with ``period_ns = (bag end - begin_ns) + loop_gap_s``, so the clock
  keeps running forward across passes (what ``/clock`` publishes).
* It is played ``play_time_s = (sim_time_ns - begin_ns) / 1e9 / rate`` seconds after playback starts.

Topic choice: with no topics named, every topic whose type cannot be imported here is skipped with one
warning naming them all (an option makes that an error), as ``ros2 bag play`` ignores a topic whose type
library it cannot load. Service-event topics (``…/srv/…_Event``, recorded by ``ros2 bag record -a`` on Jazzy
and later) and rosbag2's own ``/events/write_split`` are skipped too unless asked for: they are not robot
data (Jazzy's ``ros2 bag play`` publishes service events unless filtered). A topic named explicitly is played
or the request fails.

The payload is never touched: header stamps inside the messages stay as recorded (so with ``loop`` the
stamps repeat while ``/clock`` moves on; consumers that check stamps against the clock see old data).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from cosmos_ros.replay.bag import BagInfo, BagMessage, TopicInfo, normalize_topic
from cosmos_ros.replay.errors import MissingTopicError, ReplayError, UnknownTypeError

_TOPIC_RE = re.compile(r"^/?[A-Za-z_~{][A-Za-z0-9_/{}~]*$")
# Topics rosbag2 writes about its own recording (bag split notifications); not robot data.
RECORDER_EVENT_TOPICS: tuple[str, ...] = ("/events/write_split",)
# Why a type cannot be played, or None: injected so the core needs no ROS (the player passes an importer).
TypeCheck = Callable[[str], "str | None"]


def parse_remap(text: str) -> tuple[str, str]:
    """``"from:=to"`` -> ``("/from", "/to")`` (names made absolute, like bag topics).

    Raises:
        ValueError: Not of that form, or a name that is not a valid ROS topic name.
    """
    if text.count(":=") != 1:
        raise ValueError(f"remap must be 'from:=to', got {text!r}")
    src, dst = (s.strip() for s in text.split(":="))
    for part in (src, dst):
        if not _TOPIC_RE.match(part) or part.endswith("/") or "//" in part:
            raise ValueError(f"remap {text!r}: {part!r} is not a valid topic name")
    return normalize_topic(src), normalize_topic(dst)


@dataclass(frozen=True)
class ReplayOptions:
    """What to play and how fast.

    Attributes:
        topics: Bag topics to play; empty: all topics of the bag.
        rate: Playback speed factor (2.0 plays twice as fast). > 0.
        start_offset_s: Skip this much of the bag (seconds after its first message). >= 0.
        loop: Start again after the last message, forever (the player stops on Ctrl-C or a duration limit).
        loop_gap_s: Bag-clock time between the last message of one pass and the first of the next. >= 0.
        remap: ``(from, to)`` pairs applied to bag topic names before publishing.
        end_offset_s: Stop at this many seconds after the bag's first message (None: at its last message).
            > ``start_offset_s``.
        throttle: ``(bag topic, min_interval_s)`` pairs: of each topic, play only messages at least
            ``min_interval_s`` (bag time, > 0) after the previous one played of that topic.
        include_service_events: With no ``topics`` named, also play service-event topics and
            ``/events/write_split`` (skipped by default).
        strict_types: With no ``topics`` named, a topic whose type cannot be imported is an error instead of
            being skipped with a warning.
    """

    topics: tuple[str, ...] = ()
    rate: float = 1.0
    start_offset_s: float = 0.0
    loop: bool = False
    loop_gap_s: float = 0.0
    remap: tuple[tuple[str, str], ...] = ()
    end_offset_s: float | None = None
    throttle: tuple[tuple[str, float], ...] = ()
    include_service_events: bool = False
    strict_types: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.rate, (int, float)) and math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a finite number > 0, got {self.rate!r}")
        if not (math.isfinite(self.start_offset_s) and self.start_offset_s >= 0):
            raise ValueError(f"start_offset_s must be a finite number >= 0, got {self.start_offset_s}")
        if not (math.isfinite(self.loop_gap_s) and self.loop_gap_s >= 0):
            raise ValueError(f"loop_gap_s must be a finite number >= 0, got {self.loop_gap_s}")
        sources = [normalize_topic(a) for a, _ in self.remap]
        if len(set(sources)) != len(sources):
            raise ValueError(f"remap names a source topic twice: {self.remap}")
        if self.end_offset_s is not None and not (
            math.isfinite(self.end_offset_s) and self.end_offset_s > self.start_offset_s
        ):
            raise ValueError(
                f"end_offset_s must be a finite number > start_offset_s ({self.start_offset_s}), "
                f"got {self.end_offset_s}"
            )
        throttled = [normalize_topic(t) for t, _ in self.throttle]
        if len(set(throttled)) != len(throttled):
            raise ValueError(f"throttle names a topic twice: {self.throttle}")
        for topic, interval in self.throttle:
            if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
                raise ValueError(
                    f"throttle interval of {topic!r} must be a finite number > 0, got {interval!r}"
                )


@dataclass(frozen=True)
class PlayedTopic:
    """A bag topic and the name it is published under."""

    bag_topic: str
    out_topic: str
    msgtype: str
    transient_local: bool = False


@dataclass(frozen=True)
class TopicChoice:
    """The topics a request plays, and those it leaves out with the reason.

    Attributes:
        played: Sorted by bag topic.
        skipped: ``(bag topic, reason)`` of topics left out of an all-topics replay.
        warnings: Lines for the user (one per kind of skip).
    """

    played: tuple[PlayedTopic, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()


def _default_skip(t: TopicInfo, options: ReplayOptions) -> str | None:
    if options.include_service_events:
        return None
    if t.is_service_event:
        return "service event"
    if t.name in RECORDER_EVENT_TOPICS:
        return "rosbag2 recorder event"
    return None


def choose_topics(info: BagInfo, options: ReplayOptions, type_check: TypeCheck | None = None) -> TopicChoice:
    """The topics to play, with their output names, and what an all-topics replay skips.

    Args:
        info: The bag.
        options: The request.
        type_check: Returns why a type cannot be played (None if it can); None: assume every type can.

    Raises:
        MissingTopicError: A requested or remapped topic is not in the bag (the message lists the bag's).
        UnknownTypeError: A named topic (with ``strict_types``: any topic) has a type that cannot be played.
        ReplayError: Nothing is left to play (UnknownTypeError if types were left out).
        ValueError: Two topics of different types would be published under one name.
    """
    explicit = bool(options.topics)
    names = sorted({info.topic(t).name for t in options.topics}) if explicit else sorted(info.topics)
    skipped: list[tuple[str, str]] = []
    if not explicit:
        for n in names:
            if (why := _default_skip(info.topics[n], options)) is not None:
                skipped.append((n, why))
    unplayable = []
    for n in names:
        why = type_check(info.topics[n].msgtype) if type_check is not None else None
        if why is not None and n not in dict(skipped):
            unplayable.append((n, why))
    if unplayable and (explicit or options.strict_types):
        raise UnknownTypeError("; ".join(f"topic {n!r} cannot be played: {why}" for n, why in unplayable))
    skipped += [(n, "type cannot be imported") for n, _ in unplayable]
    names = [n for n in names if n not in dict(skipped)]
    warnings = _skip_warnings(info, skipped, unplayable)
    if not names:
        why = " ".join(warnings) or "it has no topics"
        error = UnknownTypeError if unplayable else ReplayError  # all left out for their types: say so
        raise error(f"nothing to play in bag {info.path}: {why}")
    played = _played_topics(info, options, names, skipped)
    return TopicChoice(played, tuple(skipped), warnings)


def _skip_warnings(
    info: BagInfo, skipped: list[tuple[str, str]], unplayable: list[tuple[str, str]]
) -> tuple[str, ...]:
    lines = []
    if unplayable:
        lines.append(
            f"skipping {len(unplayable)} topic(s) whose type cannot be imported (source the workspace that "
            f"builds them, or pass --strict-types to make this an error): "
            + ", ".join(f"{n} [{info.topics[n].msgtype}]" for n, _ in unplayable)
        )
    if events := [n for n, why in skipped if why != "type cannot be imported"]:
        lines.append(
            f"skipping {len(events)} service-event / recorder-event topic(s) "
            f"(--include-service-events plays them): {', '.join(events)}"
        )
    return tuple(lines)


def _played_topics(
    info: BagInfo, options: ReplayOptions, names: list[str], skipped: list[tuple[str, str]]
) -> tuple[PlayedTopic, ...]:
    remap = {normalize_topic(a): normalize_topic(b) for a, b in options.remap}
    left_out = f" (skipped: {[n for n, _ in skipped]})" if skipped else ""
    if unknown := sorted(set(remap) - set(names)):
        raise MissingTopicError(
            f"remap source(s) {unknown} are not among the played topics {names}{left_out}; bag {info.path} "
            f"has {sorted(info.topics)}"
        )
    if unknown := sorted({normalize_topic(t) for t, _ in options.throttle} - set(names)):
        raise MissingTopicError(
            f"throttled topic(s) {unknown} are not among the played topics {names}{left_out}; bag "
            f"{info.path} has {sorted(info.topics)}"
        )
    played = tuple(
        PlayedTopic(n, remap.get(n, n), info.topics[n].msgtype, info.topics[n].transient_local) for n in names
    )
    by_out: dict[str, str] = {}
    for p in played:
        if by_out.setdefault(p.out_topic, p.msgtype) != p.msgtype:
            raise ValueError(
                f"topic {p.out_topic!r} would carry two types: {by_out[p.out_topic]} and {p.msgtype}"
            )
    return played


def select_topics(info: BagInfo, options: ReplayOptions) -> tuple[PlayedTopic, ...]:
    """The played topics of :func:`choose_topics` without a type check (raises like it)."""
    return choose_topics(info, options).played


@dataclass(frozen=True)
class ScheduledMessage:
    """One publication.

    Attributes:
        play_time_s: Seconds after playback start at which to publish.
        sim_time_ns: Bag-clock time of this message (what ``/clock`` shows when it is published).
        bag_time_ns: Receive time recorded in the bag.
        topic: Output topic (after remapping).
        msgtype: ``pkg/msg/Name``.
        data: Serialized message, as recorded.
        loop_index: Pass number (0 without looping).
    """

    play_time_s: float
    sim_time_ns: int
    bag_time_ns: int
    topic: str
    msgtype: str
    data: bytes
    loop_index: int = 0


@dataclass(frozen=True)
class Timeline:
    """The mapping between bag time and playback time for one bag and one set of options."""

    begin_ns: int
    end_ns: int
    rate: float
    period_ns: int
    throttle_ns: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, info: BagInfo, options: ReplayOptions) -> Timeline:
        """Raises ValueError when ``start_offset_s`` lies beyond the bag's last message."""
        begin = info.start_ns + round(options.start_offset_s * 1e9)
        if info.message_count and begin > info.end_ns:
            raise ValueError(
                f"start_offset_s {options.start_offset_s} is past the bag's end ({info.duration_s:.3f} s)"
            )
        end = info.end_ns
        if options.end_offset_s is not None:
            end = min(end, info.start_ns + round(options.end_offset_s * 1e9))
        period = max(end - begin, 0) + round(options.loop_gap_s * 1e9)
        throttle = tuple((normalize_topic(t), round(s * 1e9)) for t, s in options.throttle)
        return cls(begin, end, options.rate, max(period, 1), throttle)

    def play_time_s(self, sim_time_ns: int) -> float:
        return (sim_time_ns - self.begin_ns) / 1e9 / self.rate

    def sim_time_ns(self, play_elapsed_s: float) -> int:
        """Bag-clock time ``play_elapsed_s`` seconds into playback (for ``/clock`` between messages)."""
        return self.begin_ns + round(play_elapsed_s * self.rate * 1e9)


@dataclass
class ScheduleCounts:
    """What the first pass of a schedule left out on purpose (filled in while it is consumed).

    Attributes:
        outside_window: Messages before the start offset or after the end offset.
        throttled: Messages dropped by ``throttle``.
    """

    outside_window: int = 0
    throttled: int = 0

    @property
    def left_out(self) -> int:
        return self.outside_window + self.throttled


@dataclass(frozen=True)
class ReplayPlan:
    """A request checked against a bag: what is played, when, and how many messages the selection holds.

    Attributes:
        played: The played topics.
        timeline: Bag time <-> playback time.
        expected: Messages the storage holds on the played topics (one pass); a replay that plays fewer,
            besides those its options leave out (:class:`ScheduleCounts`), is incomplete.
        skipped: ``(bag topic, reason)`` left out of an all-topics replay.
        warnings: Bag warnings (metadata vs storage) and skip warnings, for the user.
    """

    played: tuple[PlayedTopic, ...]
    timeline: Timeline
    expected: int
    skipped: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = field(default=())


def build_schedule(
    read: Callable[[], Iterable[BagMessage]],
    info: BagInfo,
    options: ReplayOptions,
    counts: ScheduleCounts | None = None,
    plan: ReplayPlan | None = None,
) -> Iterator[ScheduledMessage]:
    """The publications, in order; endless when ``options.loop``.

    Args:
        read: Returns a fresh iterable of the bag's messages (all topics or only the played ones) each time
            it is called; called once per pass, so a bag is streamed, never held in memory.
        info: The bag's description (start/end times, topics).
        options: What to play and how.
        counts: Filled in with what the first pass leaves out on purpose (offsets, throttle).
        plan: From :func:`plan_replay` (topics already checked); None: chosen here without a type check.

    Raises:
        MissingTopicError: From :func:`select_topics`, raised at the call, before anything is read.
        ValueError: From :func:`select_topics` / :meth:`Timeline.of`, likewise at the call.
    """
    if plan is not None:
        played, timeline = plan.played, plan.timeline
    else:
        played, timeline = select_topics(info, options), Timeline.of(info, options)
    return _schedule(read, played, timeline, options.loop, counts or ScheduleCounts())


def plan_replay(info: BagInfo, options: ReplayOptions, type_check: TypeCheck | None = None) -> ReplayPlan:
    """Check a replay request against a bag, as a real run does before it publishes anything.

    Args:
        info: The bag.
        options: The request.
        type_check: See :func:`choose_topics`; the CLI and the player pass an importer, so ``--dry-run``
            refuses what a real run refuses.

    Raises:
        Like :func:`choose_topics` and :meth:`Timeline.of`.
    """
    choice = choose_topics(info, options, type_check)
    expected = sum(info.topics[p.bag_topic].count for p in choice.played)
    return ReplayPlan(
        choice.played, Timeline.of(info, options), expected, choice.skipped, info.warnings + choice.warnings
    )


def _schedule(
    read: Callable[[], Iterable[BagMessage]],
    played: tuple[PlayedTopic, ...],
    timeline: Timeline,
    loop: bool,
    counts: ScheduleCounts,
) -> Iterator[ScheduledMessage]:
    out = {p.bag_topic: p for p in played}
    throttle = dict(timeline.throttle_ns)
    k = 0
    while True:
        emitted = False
        last_played: dict[str, int] = {}  # per throttled topic, per pass (each pass plays the same messages)
        for msg in read():
            p = out.get(msg.topic)
            if p is None:
                continue
            if msg.time_ns < timeline.begin_ns or msg.time_ns > timeline.end_ns:
                counts.outside_window += k == 0
                continue
            if msg.topic in throttle:
                last = last_played.get(msg.topic)
                if last is not None and msg.time_ns - last < throttle[msg.topic]:
                    counts.throttled += k == 0
                    continue
                last_played[msg.topic] = msg.time_ns
            sim = msg.time_ns + k * timeline.period_ns
            emitted = True
            yield ScheduledMessage(
                timeline.play_time_s(sim), sim, msg.time_ns, p.out_topic, p.msgtype, msg.data, k
            )
        if not loop or not emitted:  # an empty selection must not spin forever
            return
        k += 1
