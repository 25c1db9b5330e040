"""Noticing that a camera topic has gone silent, and saying why that usually happens (no ROS imports).

Why: a subscription that never receives anything looks exactly like a planner with no work to do. The
common cause on one host is transport, not the camera: raw 640x480 frames (900 KiB) do not fit Fast DDS'
default 512 KiB shared-memory segment, go out as UDP fragments, and with the sensor-data (best-effort) QoS
cameras use most of them are lost. So the planner asks this module, on a timer, which subscribed camera
topics have delivered nothing for ``timeout_s``, and logs (throttled) and reports on ``/diagnostics`` a
message that names the topic, the publishers the graph shows on it, and the fixes.

Time is whatever clock the caller passes (the node's clock: sim time under ``use_sim_time``). Silence is
accumulated tick by tick and each tick counts at most ``max_step_s``, so a clock that jumps (the first
``/clock`` message, a bag that loops) or stands still (a lockstep replay pausing while the model runs) does
not produce a false alarm.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LARGE_FRAMES_PROFILE = "config/fastdds_large_frames.xml"


@dataclass(frozen=True)
class CameraWatchConfig:
    """When a camera counts as silent and how often that is repeated.

    Attributes:
        timeout_s: Clock seconds without a message before a topic is reported (> 0).
        repeat_s: While it stays silent, report again every this many seconds (> 0).
        max_step_s: Longest clock step counted between two ticks (> 0); longer steps are jumps.
    """

    timeout_s: float = 5.0
    repeat_s: float = 30.0
    max_step_s: float = 2.0

    def __post_init__(self) -> None:
        for name in ("timeout_s", "repeat_s", "max_step_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")


@dataclass(frozen=True)
class PublisherView:
    """A publisher the graph shows on a topic (from ``get_publishers_info_by_topic``)."""

    node: str
    msgtype: str
    reliable: bool


@dataclass(frozen=True)
class Silence:
    """A camera topic without messages.

    Attributes:
        topic: The subscribed topic.
        silent_s: Clock seconds since its last message (or since the watch started).
        ever_received: Whether any message arrived since the watch started.
    """

    topic: str
    silent_s: float
    ever_received: bool


class CameraWatch:
    """Per-topic silence timers; thread-safe (messages arrive on the executor, ticks on a timer).

    Args:
        topics: The subscribed camera topics.
        config: Timeouts.
    """

    def __init__(self, topics: Iterable[str], config: CameraWatchConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._topics = tuple(topics)
        if not self._topics:
            raise ValueError("topics must name at least one camera topic, got ()")
        self._silent: dict[str, float] = {}
        self._received: dict[str, bool] = {}
        self._last_report: dict[str, float] = {}
        self._last_tick: float | None = None
        self.reset()

    def reset(self) -> None:
        """Start over (on activation): every topic silent for 0 s, nothing received, nothing reported."""
        with self._lock:
            self._silent = dict.fromkeys(self._topics, 0.0)
            self._received = dict.fromkeys(self._topics, False)
            self._last_report = {}
            self._last_tick = None

    def arrived(self, topic: str) -> None:
        """A message arrived on ``topic`` (accepted or not: a rejected frame is reported by its own cause)."""
        with self._lock:
            if topic in self._silent:
                self._silent[topic] = 0.0
                self._received[topic] = True
                self._last_report.pop(topic, None)

    def tick(self, now_s: float) -> tuple[Silence, ...]:
        """Advance the timers to ``now_s``; returns the silences to report now (first at ``timeout_s``,
        then every ``repeat_s`` while they last)."""
        with self._lock:
            step = 0.0 if self._last_tick is None else now_s - self._last_tick
            self._last_tick = now_s
            step = min(max(step, 0.0), self.config.max_step_s)  # backwards or jumping clocks count as 0/max
            due = []
            for topic in self._topics:
                self._silent[topic] += step
                s = self._silent[topic]
                last = self._last_report.get(topic)
                if s >= self.config.timeout_s and (last is None or s - last >= self.config.repeat_s):
                    self._last_report[topic] = s
                    due.append(Silence(topic, s, self._received[topic]))
            return tuple(due)

    def silent(self) -> tuple[Silence, ...]:
        """Topics silent for at least ``timeout_s`` now (for diagnostics)."""
        with self._lock:
            return tuple(
                Silence(t, s, self._received[t])
                for t, s in self._silent.items()
                if s >= self.config.timeout_s
            )


def describe_silence(
    silence: Silence, publishers: Sequence[PublisherView], expected_type: str, compressed: bool
) -> str:
    """The warning for a silent camera: what is seen on the graph and what to do about it.

    Args:
        silence: From :meth:`CameraWatch.tick`.
        publishers: The topic's publishers as the graph shows them.
        expected_type: The subscription's type, ``sensor_msgs/msg/Image`` or ``.../CompressedImage``.
        compressed: Whether the subscription takes CompressedImage.
    """
    since = "since its last one" if silence.ever_received else "since the planner was activated"
    head = f"no frame on camera topic {silence.topic!r} for {silence.silent_s:.1f} s ({since})"
    if not publishers:
        return (
            f"{head}; the graph shows no publisher on it. Check the topic name and remapping "
            "(camera_topics), "
            "ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_LOCALHOST_ONLY of both processes."
        )
    seen = ", ".join(
        f"{p.node} [{p.msgtype}, {'reliable' if p.reliable else 'best effort'}]" for p in publishers
    )
    head = f"{head}; publishers: {len(publishers)} ({seen})"
    wrong = sorted({p.msgtype for p in publishers if p.msgtype != expected_type})
    if wrong:
        return (
            f"{head}. The planner subscribes {expected_type} but the topic carries {', '.join(wrong)}: set "
            "the planner's 'compressed' parameter to match (or subscribe the other transport's topic)."
        )
    if compressed:
        return (
            f"{head}. Compressed frames are small, so transport size is unlikely; check that the publisher "
            "is running and its QoS (the planner subscribes best effort, which matches either)."
        )
    return (
        f"{head}. Raw frames larger than Fast DDS' 512 KiB shared-memory segment are usually lost on default "
        f"settings: start the planner with its launch file, or export FASTDDS_DEFAULT_PROFILES_FILE="
        f"<cosmos_ros share>/{LARGE_FRAMES_PROFILE} for the camera and the planner processes; or publish "
        "sensor_msgs/CompressedImage (compressed:=true); or, where frames go over UDP (another host), raise "
        "the socket buffers (sysctl net.core.rmem_max and net.core.wmem_max)."
    )
