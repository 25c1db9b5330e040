"""Play a bag into a ROS graph (and record chosen outputs): the rclpy side of replay.

All decisions about what is published when come from :mod:`cosmos_ros.replay.schedule`; this module only
creates publishers of the recorded types, sleeps until each message's time and publishes its recorded bytes
as they are (rclpy's ``Publisher.publish`` takes serialized ``bytes``), so no message is ever deserialized
and any type with an importable Python class plays. With ``publish_clock`` it also drives ``/clock``
(``rosgraph_msgs/Clock``) at a fixed rate so nodes using ``use_sim_time`` follow the bag's clock. Record
topics are subscribed with ``raw=True`` and written by :class:`~cosmos_ros.replay.recorder.BagRecorder`.

With a :class:`Lockstep` the playback is no longer paced by the wall clock alone: after each message of a
trigger topic (the camera) the player freezes ``/clock`` until the node under test answers (a plan, a safety
decision) or a timeout passes, so a model that takes 2 s on one machine and 20 s on another sees the same
frames at the same bag times and its outputs carry the same stamps; see :class:`Lockstep` for what exactly is
then deterministic. That is what regression tests against a golden file need (``cosmos_ros.testing``).

Threads: the caller's thread runs the timing loop and publishes; one executor thread services the record
and acknowledgement subscriptions. Every wait has a timeout; :func:`play` returns after the last message
(plus ``record_linger_s``), after ``duration_s``, or when ``stop`` is set.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from cosmos_ros.replay.bag import Bag, normalize_topic
from cosmos_ros.replay.errors import MissingTopicError, ReplayError
from cosmos_ros.replay.recorder import BagRecorder
from cosmos_ros.replay.schedule import (
    PlayedTopic,
    ReplayOptions,
    ScheduleCounts,
    ScheduledMessage,
    Timeline,
    build_schedule,
    plan_replay,
)
from cosmos_ros.replay.types import import_msg_class, split_type, why_not_importable


@dataclass(frozen=True)
class Lockstep:
    """Deterministic timing for replays into slow nodes: the bag clock waits for the nodes' answers.

    Why: with a real clock, which camera frame a model gets, how stale its plan is on arrival and where the
    setpoint stream stands when it lands all depend on how fast the machine is. In lockstep the player, after
    publishing a message of a ``trigger_topics`` topic, stops advancing ``/clock`` until a message passing
    ``ack_filter`` arrives on ``ack_topic`` (or ``timeout_s`` of wall time passes), then carries on from the
    same bag time. Sim time is frozen while the model runs.

    What is then deterministic, for nodes that use sim time (``use_sim_time``):

    * Plans: each trigger message is planned (give the planner a ``max_plan_rate_hz`` that does not drop
      frames, and play at most one frame per plan, e.g. with ``ReplayOptions.throttle``): same frames + same
      seed + same weights -> the same values, and stamps that come from the frames' headers.
    * Safety decisions: the plan reaches the safety node while its clock shows the trigger's bag time, so
      staleness, skipped steps, clamps and per-plan ``max_correction`` are the same on every run. Use
      the safety node's status (``/safety_status``, ``plan_id > 0``) as the ack, not the plan itself: the
      pause then lasts until the plan has been *checked*, not merely published.
    * Setpoints: the safety node's timer fires on ``/clock`` updates, and its rate limiter integrates over
      the times of its ticks. With ``clock_step_s`` the player advances ``/clock`` on a fixed grid of bag time
      (multiples of ``clock_step_s``; make it the control period) and, with ``tick_topic``, waits after each
      step until the setpoint of that tick arrives, so every tick sees exactly one grid time and every
      recorded setpoint carries the bag time of its tick. Without a tick acknowledgement, ``/clock`` follows
      the wall clock and the ticks happen whenever the node gets to them: compare setpoints resampled at fixed
      bag times within a tolerance of about (max velocity x clock period).
      What stays unsynchronised: other played messages (``/joint_states``) are taken by the node's executor
      on its own schedule; ``settle_s`` gives them time before the next step, so a measured value a tick uses
      may rarely be one message (tens of ms of motion) older. Golden tolerances should allow that.

    Attributes:
        trigger_topics: Played (output, after remap) topics that pause playback after each of their messages.
        ack_topic: ``/topic`` or ``/topic:pkg/msg/Type`` whose message ends a pause.
        ack_filter: Called with each deserialized ``ack_topic`` message; only True ends a pause. None: any.
        timeout_s: Longest pause, wall seconds (> 0). A pause ended by the timeout is counted in
            ``PlayReport.lockstep_timeouts`` (the run is then not deterministic; tests should assert 0).
        clock_step_s: None: between pauses ``/clock`` follows the wall clock (times ``rate``), as without
            lockstep. A number (> 0): ``/clock`` advances on a grid of this many bag seconds, each step as
            soon as the previous was acknowledged (``tick_topic``) or after ``clock_step_s / rate`` wall
            seconds. In this mode ``PlayerConfig.record_linger_s`` is bag time: steps played after the
            last message.
        tick_topic: With ``clock_step_s``: ``/topic[:type]`` on which the node answers each step (a setpoint
            topic). Waiting is on while the node answers; after a step without an answer within
            ``tick_timeout_s`` (node idle, watchdog holding) steps go on at wall pace until an answer or an
            ack arrives again. Those misses are counted in ``PlayReport.tick_timeouts``.
        tick_timeout_s: Longest wait for a tick answer, wall seconds (> 0).
        settle_s: With ``clock_step_s``: wall seconds to wait after publishing a non-trigger message before
            the next step, so the node takes it before it ticks (>= 0).
    """

    trigger_topics: tuple[str, ...]
    ack_topic: str
    ack_filter: Callable[[Any], bool] | None = None
    timeout_s: float = 60.0
    clock_step_s: float | None = None
    tick_topic: str | None = None
    tick_timeout_s: float = 0.5
    settle_s: float = 0.002

    def __post_init__(self) -> None:
        if not self.trigger_topics:
            raise ValueError("trigger_topics must name at least one played topic, got ()")
        object.__setattr__(self, "trigger_topics", tuple(normalize_topic(t) for t in self.trigger_topics))
        parse_record_topic(self.ack_topic)
        for name in ("timeout_s", "tick_timeout_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
        if not (math.isfinite(self.settle_s) and self.settle_s >= 0):
            raise ValueError(f"settle_s must be a finite number >= 0, got {self.settle_s}")
        if self.clock_step_s is not None and not (math.isfinite(self.clock_step_s) and self.clock_step_s > 0):
            raise ValueError(f"clock_step_s must be > 0 or None, got {self.clock_step_s}")
        if self.tick_topic is not None:
            if self.clock_step_s is None:
                raise ValueError("tick_topic needs clock_step_s (ticks are acknowledged per /clock step)")
            parse_record_topic(self.tick_topic)


@dataclass(frozen=True)
class PlayerConfig:
    """How the player talks to the graph.

    Attributes:
        publish_clock: Publish ``/clock`` with the bag's time (for nodes with ``use_sim_time``).
        clock_rate_hz: ``/clock`` publications per second of wall time, besides one before each message. > 0.
        record_path: New mcap bag for ``record_topics``; None: record nothing.
        record_topics: ``/topic`` or ``/topic:pkg/msg/Type``. Without a type it is taken from the played
            topics or from the graph (waiting up to ``discovery_timeout_s``).
        record_linger_s: Keep recording this long after the last message was played (outputs lag inputs).
        wait_for_subscribers_s: Before playing, wait up to this long until every played topic has a
            subscriber (0: do not wait); topics still without one are named in the report.
        discovery_timeout_s: Longest wait for an untyped record topic to appear on the graph. > 0.
        duration_s: Stop after this much playback (wall) time; None: play to the end (forever with loop).
        node_name: Name of the player's node.
        lockstep: Pause the bag clock while the nodes work (see :class:`Lockstep`); needs ``publish_clock``.
    """

    publish_clock: bool = False
    clock_rate_hz: float = 100.0
    record_path: Path | None = None
    record_topics: tuple[str, ...] = ()
    record_linger_s: float = 1.0
    wait_for_subscribers_s: float = 0.0
    discovery_timeout_s: float = 5.0
    duration_s: float | None = None
    node_name: str = "cosmos_ros_replay"
    lockstep: Lockstep | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clock_rate_hz) and self.clock_rate_hz > 0):
            raise ValueError(f"clock_rate_hz must be > 0, got {self.clock_rate_hz}")
        for name in ("record_linger_s", "wait_for_subscribers_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if not (math.isfinite(self.discovery_timeout_s) and self.discovery_timeout_s > 0):
            raise ValueError(f"discovery_timeout_s must be > 0, got {self.discovery_timeout_s}")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s must be > 0 or None, got {self.duration_s}")
        if self.record_topics and self.record_path is None:
            raise ValueError("record_topics given but record_path is None")
        for spec in self.record_topics:
            parse_record_topic(spec)
        if self.lockstep is not None and not self.publish_clock:
            raise ValueError("lockstep needs publish_clock=True (it pauses the bag clock the nodes follow)")


@dataclass
class PlayReport:
    """What happened.

    Attributes:
        published: Messages published per output topic.
        recorded: Messages recorded per topic.
        wall_time_s: Playback time (wall), without the linger.
        max_lateness_s: Largest delay of a publication behind its scheduled time (timing fidelity).
        record_path: Bag directory written, if any.
        stopped_early: Ended by ``stop`` or ``duration_s`` before the last message.
        unmatched: Played topics that had no subscriber after ``wait_for_subscribers_s``.
        lockstep_pauses: Trigger messages after which playback paused.
        lockstep_timeouts: Pauses that ended by timeout instead of an acknowledgement.
        lockstep_wait_s: Wall time spent paused, in total.
        clock_steps: ``/clock`` grid steps (``Lockstep.clock_step_s``).
        tick_timeouts: Grid steps whose tick answer did not come within ``tick_timeout_s``.
        expected: Messages the storage holds on the played topics (one pass).
        left_out: Of those, messages the options leave out (offsets, throttle).
        first_pass: Messages published in the first pass (all of them without ``loop``).
        skipped: ``(bag topic, reason)`` of topics an all-topics replay left out.
        warnings: Bag and topic-choice warnings (also printed by the CLI).
    """

    published: dict[str, int] = field(default_factory=dict)
    recorded: dict[str, int] = field(default_factory=dict)
    wall_time_s: float = 0.0
    max_lateness_s: float = 0.0
    record_path: Path | None = None
    stopped_early: bool = False
    unmatched: tuple[str, ...] = ()
    lockstep_pauses: int = 0
    lockstep_timeouts: int = 0
    lockstep_wait_s: float = 0.0
    clock_steps: int = 0
    tick_timeouts: int = 0
    expected: int = 0
    left_out: int = 0
    first_pass: int = 0
    skipped: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def missing(self) -> int:
        """Messages of the selection neither played nor left out by an option (0 for a complete replay)."""
        return max(0, self.expected - self.left_out - self.first_pass)

    def summary(self) -> str:
        lines = [
            f"played {sum(self.published.values())} messages in {self.wall_time_s:.3f} s "
            f"(max lateness {self.max_lateness_s * 1e3:.1f} ms)"
            + (" - stopped early" if self.stopped_early else "")
        ]
        lines += [f"  published {t}: {n}" for t, n in sorted(self.published.items())]
        if self.missing:
            why = " (stopped early)" if self.stopped_early else ""
            lines.append(
                f"  INCOMPLETE: played {self.first_pass} of the {self.expected} messages the selection holds "
                f"({self.left_out} left out by options){why}"
            )
        if self.unmatched:
            lines.append(f"  no subscriber: {', '.join(self.unmatched)}")
        if self.lockstep_pauses:
            lines.append(
                f"  lockstep: {self.lockstep_pauses} pauses ({self.lockstep_wait_s:.2f} s), "
                f"{self.lockstep_timeouts} timed out; {self.clock_steps} clock steps, "
                f"{self.tick_timeouts} without a tick answer"
            )
        if self.record_path is not None:
            lines.append(f"recorded to {self.record_path}")
            lines += [f"  recorded {t}: {n}" for t, n in sorted(self.recorded.items())]
        return "\n".join(lines)


def parse_record_topic(spec: str) -> tuple[str, str | None]:
    """``"/plan"`` -> ``("/plan", None)``; ``"/plan:cosmos_ros/msg/ActionSequence"`` -> with the type."""
    topic, sep, msgtype = spec.partition(":")
    if not topic.strip():
        raise ValueError(f"record topic must not be empty, got {spec!r}")
    if sep:
        split_type(msgtype.strip())
        return normalize_topic(topic), msgtype.strip()
    return normalize_topic(topic), None


def _publisher_qos(p: PlayedTopic) -> QoSProfile:
    # Reliable matches both reliable and best-effort subscribers; a latched (transient-local) recording stays
    # latched so a late subscriber still gets e.g. the goal.
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1 if p.transient_local else 10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if p.transient_local else DurabilityPolicy.VOLATILE,
    )


def _make_publisher(node: Any, cls: Any, p: PlayedTopic) -> Any:
    try:
        return node.create_publisher(cls, p.out_topic, _publisher_qos(p))
    except Exception as exc:  # rclpy raises RCLError, e.g. the player's own /parameter_events of another type
        raise ReplayError(
            f"cannot publish bag topic {p.bag_topic!r} [{p.msgtype}] as {p.out_topic!r}: {exc}; leave it out "
            f"with --topics or rename it with --remap"
        ) from exc


class _Session:
    """One node, its publishers and record subscriptions; torn down by :meth:`close`."""

    def __init__(self, context: Context, config: PlayerConfig) -> None:
        self.context = context
        self.node = rclpy.create_node(config.node_name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._spin_stop = threading.Event()
        self._spinner = threading.Thread(target=self._spin, name="replay-executor", daemon=True)
        self._spinner.start()

    def _spin(self) -> None:
        while not self._spin_stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._spin_stop.set()
        self._spinner.join(timeout=5.0)
        self.executor.remove_node(self.node)
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()


def _resolve_record_types(
    session: _Session, specs: tuple[str, ...], played: tuple[PlayedTopic, ...], timeout_s: float
) -> dict[str, str]:
    known = {p.out_topic: p.msgtype for p in played}
    result: dict[str, str] = {}
    pending: list[str] = []
    for spec in specs:
        topic, msgtype = parse_record_topic(spec)
        if msgtype is None:
            msgtype = known.get(topic)
        if msgtype is None:
            pending.append(topic)
        else:
            result[topic] = msgtype
    deadline = time.monotonic() + timeout_s
    while pending:
        graph = dict(session.node.get_topic_names_and_types())
        for topic in list(pending):
            types = graph.get(topic, [])
            if len(types) == 1:
                result[topic] = types[0]
                pending.remove(topic)
            elif len(types) > 1:
                raise ReplayError(
                    f"record topic {topic!r} carries several types {types}; give one as {topic}:TYPE"
                )
        if pending and time.monotonic() > deadline:
            raise MissingTopicError(
                f"record topic(s) {pending} not seen on the graph within {timeout_s} s; start the node that "
                f"publishes them first, or give the type as TOPIC:pkg/msg/Type"
            )
        if pending:
            time.sleep(0.05)
    return result


def _record_qos(session: _Session, topic: str) -> QoSProfile:
    # Match the publishers: a reliable subscription would get nothing from a best-effort (sensor data) one.
    infos = session.node.get_publishers_info_by_topic(topic)
    best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=100,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


class _Arrivals:
    """Counts acknowledging messages (executor thread) and lets the playback thread wait for the next one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.count = 0

    def bump(self) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait_beyond(self, seen: int, timeout_s: float) -> bool:
        """True once ``count > seen``; False after ``timeout_s`` (wall) without."""
        with self._cond:
            return self._cond.wait_for(lambda: self.count > seen, timeout=timeout_s)


def play(
    bag_path: str | Path,
    options: ReplayOptions | None = None,
    config: PlayerConfig | None = None,
    *,
    context: Context | None = None,
    stop: threading.Event | None = None,
) -> PlayReport:
    """Play ``bag_path`` with ``options``; record what ``config`` asks for.

    Args:
        bag_path: Bag directory or ``.mcap`` / ``.db3`` file.
        options: Topics, rate, offset, loop, remap, throttle.
        config: Clock, recording, waits, limits, lockstep.
        context: An initialised rclpy context to use; None: a private one is created and shut down.
        stop: Set it (from another thread) to end playback early.

    Returns:
        A :class:`PlayReport`.

    Raises:
        ReplayError: (and subclasses) bad bag, missing topic, unknown type, output exists — all raised
            before anything is published.
        ValueError: A lockstep trigger topic is not among the played topics.
    """
    options = options or ReplayOptions()
    config = config or PlayerConfig()
    with Bag(bag_path) as bag:
        plan = plan_replay(bag.info, options, why_not_importable)  # UnknownTypeError etc. up front
        classes = _import_played_classes(plan.played, config)
        own_context = context is None
        ctx = Context() if context is None else context
        if own_context:
            rclpy.init(args=[], context=ctx)  # never parse our CLI as ROS arguments (remaps!)
        report = PlayReport(expected=plan.expected, skipped=plan.skipped, warnings=plan.warnings)
        counts = ScheduleCounts()
        playback: _Playback | None = None
        try:
            session = _Session(ctx, config)
            playback = _Playback(session, config, plan.timeline, stop or threading.Event(), report)
            playback.connect(plan.played, classes)
            topics = [p.bag_topic for p in plan.played]
            playback.run(build_schedule(lambda: bag.messages(topics), bag.info, options, counts, plan))
        finally:
            report.left_out = counts.left_out
            if playback is not None:
                playback.close()
            if own_context:
                ctx.try_shutdown()
    return report


def _import_played_classes(played: tuple[PlayedTopic, ...], config: PlayerConfig) -> dict[str, Any]:
    """Message classes by output topic (and the /clock types), imported before anything is created."""
    classes = {p.out_topic: import_msg_class(p.msgtype) for p in played}
    lock = config.lockstep
    if lock is not None and (missing := sorted(set(lock.trigger_topics) - set(classes))):
        raise ValueError(
            f"lockstep trigger topic(s) {missing} are not among the played topics {sorted(classes)}"
        )
    if config.publish_clock:
        for msgtype in _CLOCK_TYPES:
            import_msg_class(msgtype)
    return classes


_CLOCK_TYPES = ("rosgraph_msgs/msg/Clock", "builtin_interfaces/msg/Time")


class _Clock:
    """``/clock`` publisher: never runs backwards, and publishes each value once.

    Once because a node timer on sim time must see each bag time once (lockstep counts one tick per step).
    """

    def __init__(self, node: Any, begin_ns: int) -> None:
        self._clock_cls, self._time_cls = (import_msg_class(t) for t in _CLOCK_TYPES)
        self._pub = node.create_publisher(
            self._clock_cls, "/clock", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        self._last_ns = begin_ns - 1
        self.now_ns = begin_ns  # last value published (the bag start before the first)

    def publish(self, sim_ns: int) -> None:
        if sim_ns <= self._last_ns:
            return
        self._last_ns = self.now_ns = sim_ns
        stamp = self._time_cls(sec=sim_ns // 1_000_000_000, nanosec=sim_ns % 1_000_000_000)
        self._pub.publish(self._clock_cls(clock=stamp))


@dataclass
class _Pacing:
    """Wall-clock origin of a paced (not stepped) playback; shifted by each lockstep pause."""

    t0: float
    limit: float
    period: float
    next_tick: float

    def shift(self, waited_s: float) -> None:
        # Resume the bag clock where it stopped: move the wall origin by the pause.
        self.t0 += waited_s
        self.next_tick += waited_s
        self.limit += waited_s


class _Playback:
    """One playback: publishers, subscriptions, recorder and the timing loops; fills in ``report``.

    Threads: the caller's thread runs :meth:`run`; the session's executor thread runs the subscription
    callbacks made by :meth:`_callback`.
    """

    def __init__(
        self,
        session: _Session,
        config: PlayerConfig,
        timeline: Timeline,
        stop: threading.Event,
        report: PlayReport,
    ) -> None:
        self.session = session
        self.config = config
        self.lock = config.lockstep
        self.timeline = timeline
        self.stop = stop
        self.report = report
        self.pubs: dict[str, Any] = {}
        self.clock: _Clock | None = None
        self.recorder: BagRecorder | None = None
        self.acks, self.ticks = _Arrivals(), _Arrivals()
        # Stepped playback: wait for tick answers (on while the node answers).
        self.ticks_armed = self.lock is not None and self.lock.tick_topic is not None

    # ------------------------------------------------------------------------------------- set-up
    def connect(self, played: tuple[PlayedTopic, ...], classes: dict[str, Any]) -> None:
        """Create publishers, ``/clock``, the recorder and subscriptions; wait for subscribers if asked."""
        node = self.session.node
        self.pubs = {p.out_topic: _make_publisher(node, classes[p.out_topic], p) for p in played}
        if self.config.publish_clock:
            self.clock = _Clock(node, self.timeline.begin_ns)
        self._subscribe(played)
        self._wait_for_subscribers()
        self.report.published = dict.fromkeys(self.pubs, 0)

    def _subscribe(self, played: tuple[PlayedTopic, ...]) -> None:
        # Every subscribed topic gets ONE subscription that records (if asked) and then counts
        # acknowledgements: counting only after writing means the playback thread, woken by the count,
        # can never move the clock before the message that woke it has been stamped with the old time.
        config, lock = self.config, self.lock
        record_specs = config.record_topics if config.record_path is not None else ()
        ack_specs = () if lock is None else (lock.ack_topic,)
        tick_specs = () if lock is None or lock.tick_topic is None else (lock.tick_topic,)
        types = _resolve_record_types(
            self.session, (*record_specs, *ack_specs, *tick_specs), played, config.discovery_timeout_s
        )
        for msgtype in types.values():
            import_msg_class(msgtype)  # fail before creating the output bag
        recorded = {parse_record_topic(spec)[0] for spec in record_specs}
        if recorded:
            assert config.record_path is not None  # PlayerConfig checks it
            self.recorder = BagRecorder(config.record_path, {t: types[t] for t in types if t in recorded})
            self.report.record_path = self.recorder.path
        for topic, msgtype in types.items():
            cls = import_msg_class(msgtype)
            self.session.node.create_subscription(
                cls,
                topic,
                self._callback(topic, cls, topic in recorded),
                _record_qos(self.session, topic),
                raw=True,
            )

    def _callback(self, topic: str, cls: Any, record: bool) -> Callable[[bytes], None]:
        lock = self.lock
        ack = lock is not None and topic == parse_record_topic(lock.ack_topic)[0]
        tick = (
            lock is not None
            and lock.tick_topic is not None
            and topic == parse_record_topic(lock.tick_topic)[0]
        )
        ack_filter = lock.ack_filter if lock is not None else None

        def on_message(data: bytes) -> None:
            if record and self.recorder is not None:
                t_ns = self.clock.now_ns if self.clock is not None else time.time_ns()
                self.recorder.write(topic, t_ns, data)
            if ack and (ack_filter is None or ack_filter(deserialize_message(data, cls))):
                self.acks.bump()
            if tick:
                self.ticks.bump()

        return on_message

    def _wait_for_subscribers(self) -> None:
        if self.config.wait_for_subscribers_s > 0:
            deadline = time.monotonic() + self.config.wait_for_subscribers_s
            while time.monotonic() < deadline and any(
                p.get_subscription_count() == 0 for p in self.pubs.values()
            ):
                time.sleep(0.02)
        self.report.unmatched = tuple(t for t, p in self.pubs.items() if p.get_subscription_count() == 0)

    def close(self) -> None:
        self.session.close()
        if self.recorder is not None:
            self.recorder.close()
            self.report.recorded = dict(self.recorder.counts)

    # ------------------------------------------------------------------------------------ shared
    def stopped(self) -> bool:
        return self.stop.is_set() or not self.session.context.ok()

    def publish_clock(self, sim_ns: int) -> None:
        if self.clock is not None:
            self.clock.publish(sim_ns)

    def publish(self, item: ScheduledMessage) -> int:
        """Set the clock to the message's time and publish it; returns the ack count from before."""
        self.publish_clock(item.sim_time_ns)
        seen = self.acks.count
        self.pubs[item.topic].publish(item.data)
        self.report.published[item.topic] += 1
        self.report.first_pass += item.loop_index == 0
        return seen

    def pause_for_ack(self, seen: int) -> bool:
        """Wait (clock frozen) for an acknowledgement after a trigger message; True if it came."""
        lock, report = self.lock, self.report
        assert lock is not None
        report.lockstep_pauses += 1
        w0 = time.monotonic()
        ok = False
        while not ok and not self.stopped() and time.monotonic() - w0 < lock.timeout_s:
            ok = self.acks.wait_beyond(seen, min(0.1, lock.timeout_s))
        report.lockstep_wait_s += time.monotonic() - w0
        if not ok and not self.stop.is_set():
            report.lockstep_timeouts += 1
        return ok

    def run(self, schedule: Iterable[ScheduledMessage]) -> None:
        """Play ``schedule`` to its end, ``duration_s`` or ``stop``; then linger for the outputs."""
        t0 = time.monotonic()
        limit = math.inf if self.config.duration_s is None else t0 + self.config.duration_s
        if self.lock is not None and self.lock.clock_step_s is not None:
            _Stepped(self, self.lock, limit).play(schedule)
            self.report.wall_time_s = time.monotonic() - t0
        else:
            period = 1.0 / self.config.clock_rate_hz
            self._play_paced(schedule, _Pacing(t0, limit, period, t0 + period))

    # ------------------------------------------------------------------------------------ paced
    def _play_paced(self, schedule: Iterable[ScheduledMessage], pace: _Pacing) -> None:
        """Publish each message at its play time (wall clock); ``/clock`` at ``clock_rate_hz`` between."""
        self.publish_clock(self.timeline.begin_ns)
        for item in schedule:
            target = pace.t0 + item.play_time_s
            if not self._wait_until(target, item, pace):
                self.report.stopped_early = True
                break
            self.report.max_lateness_s = max(self.report.max_lateness_s, time.monotonic() - target)
            seen = self.publish(item)
            if self.lock is not None and item.topic in self.lock.trigger_topics:
                w0 = time.monotonic()
                self.pause_for_ack(seen)
                pace.shift(time.monotonic() - w0)
        self.report.wall_time_s = time.monotonic() - pace.t0
        if self.recorder is not None:
            self._linger_paced(pace)

    def _wait_until(self, target: float, item: ScheduledMessage, pace: _Pacing) -> bool:
        """Sleep until ``target`` (wall), ticking ``/clock``; False if halted first."""
        while True:
            now = time.monotonic()
            if self.stopped() or now >= pace.limit:
                return False
            if self.clock is not None and now >= pace.next_tick:
                # Never past the next message: when playback runs late (a loaded CPU), a tick would
                # otherwise show a time the message is then published "before".
                self.clock.publish(min(self.timeline.sim_time_ns(now - pace.t0), item.sim_time_ns))
                pace.next_tick += pace.period * max(1, math.floor((now - pace.next_tick) / pace.period) + 1)
            if now >= target:
                return True
            wake = min(target, pace.limit, pace.next_tick if self.clock is not None else now + 0.05)
            time.sleep(max(0.0, wake - now))

    def _linger_paced(self, pace: _Pacing) -> None:
        linger_end = time.monotonic() + self.config.record_linger_s
        while time.monotonic() < linger_end and not self.stop.is_set():
            if self.clock is not None:
                self.clock.publish(self.timeline.sim_time_ns(time.monotonic() - pace.t0))
            time.sleep(min(pace.period, 0.05))


class _Stepped:
    """The lockstep loop with a /clock grid (``Lockstep.clock_step_s``): bag time advances step by step.

    Grid points are multiples of the step since the epoch (not since the bag's start), so a node timer whose
    period is the step fires on every point whatever the bag's start time. Messages are published at their
    own bag time between grid points (the clock is set to it first: the node sees the receive time).
    """

    def __init__(self, playback: _Playback, lock: Lockstep, limit: float) -> None:
        assert lock.clock_step_s is not None
        self.pb, self.lock, self.limit = playback, lock, limit
        self.step_ns = round(lock.clock_step_s * 1e9)
        self.wall_step_s = lock.clock_step_s / playback.timeline.rate
        self.next_grid_ns = (playback.timeline.begin_ns // self.step_ns + 1) * self.step_ns

    def play(self, schedule: Iterable[ScheduledMessage]) -> None:
        pb, lock = self.pb, self.lock
        self._step_to(pb.timeline.begin_ns)  # the first /clock a node sees makes its timers fire: a step too
        last_ns = pb.timeline.begin_ns
        for item in schedule:
            if not self._advance(item.sim_time_ns):
                return
            seen = pb.publish(item)
            last_ns = item.sim_time_ns
            if item.topic in lock.trigger_topics:
                if pb.pause_for_ack(seen) and lock.tick_topic is not None:
                    pb.ticks_armed = True  # a new plan: the node streams again
            elif lock.settle_s > 0:
                time.sleep(lock.settle_s)
        # Linger in bag time: the plans' remaining steps stream out on the same grid.
        self._advance(last_ns + round(pb.config.record_linger_s * 1e9))

    def _advance(self, until_ns: int) -> bool:
        """Step the grid up to ``until_ns``; False if halted first."""
        while self.next_grid_ns <= until_ns:
            if self.pb.stopped() or time.monotonic() >= self.limit:
                self.pb.report.stopped_early = True
                return False
            self._step_to(self.next_grid_ns)
            self.next_grid_ns += self.step_ns
        return True

    def _step_to(self, t_ns: int) -> None:
        pb = self.pb
        seen = pb.ticks.count
        pb.publish_clock(t_ns)
        pb.report.clock_steps += 1
        if pb.ticks_armed:
            if not pb.ticks.wait_beyond(seen, self.lock.tick_timeout_s):
                pb.ticks_armed = False
                pb.report.tick_timeouts += 1
        else:
            time.sleep(self.wall_step_s)
            if self.lock.tick_topic is not None and pb.ticks.count > seen:
                pb.ticks_armed = True  # the node answers again
