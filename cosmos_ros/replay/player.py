"""Play a bag into a ROS graph (and record chosen outputs): the rclpy side of replay.

All decisions about what is published when come from :mod:`cosmos_ros.replay.schedule`; this module only
creates publishers of the recorded types, sleeps until each message's time and publishes its recorded bytes
as they are (rclpy's ``Publisher.publish`` takes serialized ``bytes``), so no message is ever deserialized
and any type with an importable Python class plays. With ``publish_clock`` it also drives ``/clock``
(``rosgraph_msgs/Clock``) at a fixed rate so nodes using ``use_sim_time`` follow the bag's clock. Record
topics are subscribed with ``raw=True`` and written by :class:`~cosmos_ros.replay.recorder.BagRecorder`.

Threads: the caller's thread runs the timing loop and publishes; one executor thread services the record
subscriptions. Every wait has a timeout; :func:`play` returns after the last message (plus
``record_linger_s``), after ``duration_s``, or when ``stop`` is set.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from cosmos_ros.replay.bag import Bag, normalize_topic
from cosmos_ros.replay.errors import MissingTopicError, ReplayError
from cosmos_ros.replay.recorder import BagRecorder
from cosmos_ros.replay.schedule import PlayedTopic, ReplayOptions, build_schedule, plan_replay
from cosmos_ros.replay.types import import_msg_class, split_type


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
    """

    published: dict[str, int] = field(default_factory=dict)
    recorded: dict[str, int] = field(default_factory=dict)
    wall_time_s: float = 0.0
    max_lateness_s: float = 0.0
    record_path: Path | None = None
    stopped_early: bool = False
    unmatched: tuple[str, ...] = ()

    def summary(self) -> str:
        lines = [
            f"played {sum(self.published.values())} messages in {self.wall_time_s:.3f} s "
            f"(max lateness {self.max_lateness_s * 1e3:.1f} ms)"
            + (" - stopped early" if self.stopped_early else "")
        ]
        lines += [f"  published {t}: {n}" for t, n in sorted(self.published.items())]
        if self.unmatched:
            lines.append(f"  no subscriber: {', '.join(self.unmatched)}")
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
        options: Topics, rate, offset, loop, remap.
        config: Clock, recording, waits, limits.
        context: An initialised rclpy context to use; None: a private one is created and shut down.
        stop: Set it (from another thread) to end playback early.

    Returns:
        A :class:`PlayReport`.

    Raises:
        ReplayError: (and subclasses) bad bag, missing topic, unknown type, output exists — all raised
            before anything is published.
    """
    options = options or ReplayOptions()
    config = config or PlayerConfig()
    stop = stop or threading.Event()
    with Bag(bag_path) as bag:
        played, timeline = plan_replay(bag.info, options)
        classes = {p.out_topic: import_msg_class(p.msgtype) for p in played}  # UnknownTypeError up front
        clock_cls = time_cls = None
        if config.publish_clock:
            clock_cls = import_msg_class("rosgraph_msgs/msg/Clock")
            time_cls = import_msg_class("builtin_interfaces/msg/Time")
        own_context = context is None
        ctx = Context() if context is None else context
        if own_context:
            rclpy.init(args=[], context=ctx)  # never parse our CLI as ROS arguments (remaps!)
        report = PlayReport()
        recorder: BagRecorder | None = None
        session = None
        try:
            session = _Session(ctx, config)
            node = session.node
            pubs = {
                p.out_topic: node.create_publisher(classes[p.out_topic], p.out_topic, _publisher_qos(p))
                for p in played
            }
            clock_pub = None
            if clock_cls is not None:
                clock_pub = node.create_publisher(
                    clock_cls, "/clock", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
                )
            if config.record_path is not None and config.record_topics:
                types = _resolve_record_types(
                    session, config.record_topics, played, config.discovery_timeout_s
                )
                for msgtype in types.values():
                    import_msg_class(msgtype)  # fail before creating the output bag
                recorder = BagRecorder(config.record_path, types)
                report.record_path = recorder.path
                last_sim = [timeline.begin_ns]

                def make_cb(topic: str) -> Any:
                    def cb(data: bytes) -> None:
                        t_ns = last_sim[0] if config.publish_clock else time.time_ns()
                        recorder.write(topic, t_ns, data)

                    return cb

                for topic, msgtype in types.items():
                    node.create_subscription(
                        import_msg_class(msgtype),
                        topic,
                        make_cb(topic),
                        _record_qos(session, topic),
                        raw=True,
                    )
            if config.wait_for_subscribers_s > 0:
                deadline = time.monotonic() + config.wait_for_subscribers_s
                while time.monotonic() < deadline and any(
                    p.get_subscription_count() == 0 for p in pubs.values()
                ):
                    time.sleep(0.02)
            report.unmatched = tuple(t for t, p in pubs.items() if p.get_subscription_count() == 0)

            def publish_clock(sim_ns: int) -> None:
                if clock_pub is None:
                    return
                sim_ns = max(sim_ns, last_clock[0])  # the clock never runs backwards
                last_clock[0] = sim_ns
                if recorder is not None:
                    last_sim[0] = sim_ns
                stamp = time_cls(sec=sim_ns // 1_000_000_000, nanosec=sim_ns % 1_000_000_000)  # type: ignore[misc]
                clock_pub.publish(clock_cls(clock=stamp))  # type: ignore[misc]

            last_clock = [timeline.begin_ns]
            period = 1.0 / config.clock_rate_hz
            t0 = time.monotonic()
            publish_clock(timeline.begin_ns)
            next_tick = t0 + period
            limit = math.inf if config.duration_s is None else t0 + config.duration_s
            report.published = dict.fromkeys(pubs, 0)
            for item in build_schedule(
                lambda: bag.messages([p.bag_topic for p in played]), bag.info, options
            ):
                target = t0 + item.play_time_s
                while True:
                    now = time.monotonic()
                    if stop.is_set() or now >= limit or not ctx.ok():
                        report.stopped_early = True
                        break
                    if clock_pub is not None and now >= next_tick:
                        publish_clock(timeline.sim_time_ns(now - t0))
                        next_tick += period * max(1, math.floor((now - next_tick) / period) + 1)
                    if now >= target:
                        break
                    wake = min(target, limit, next_tick if clock_pub is not None else now + 0.05)
                    time.sleep(max(0.0, wake - now))
                if report.stopped_early:
                    break
                report.max_lateness_s = max(report.max_lateness_s, time.monotonic() - target)
                publish_clock(item.sim_time_ns)
                pubs[item.topic].publish(item.data)
                report.published[item.topic] += 1
            report.wall_time_s = time.monotonic() - t0
            if recorder is not None:
                linger_end = time.monotonic() + config.record_linger_s
                while time.monotonic() < linger_end and not stop.is_set():
                    if clock_pub is not None:
                        publish_clock(timeline.sim_time_ns(time.monotonic() - t0))
                    time.sleep(min(period, 0.05))
        finally:
            if session is not None:
                session.close()
            if recorder is not None:
                recorder.close()
                report.recorded = dict(recorder.counts)
            if own_context:
                ctx.try_shutdown()
    return report
