"""Output adapters: turn one checked setpoint into the messages a real controller stack takes.

The safety core produces one vector of values per tick (in the axis order of the limits file); which
controller consumes it is a deployment choice, so the node publishes through one or more adapters chosen in
config. Each adapter is a small class that owns its publishers and pre-builds its messages once, so the
per-tick path only writes numbers into existing messages (allocation-light, see ``publish``).

Adapters never decide anything about safety: they get values that the core already checked and clamped.

Kinds (``ADAPTER_KINDS``):

- ``float64_per_axis``: one ``std_msgs/Float64`` per axis on ``topic_pattern.format(axis=...)``
  (default ``{axis}/setpoint``), the classic PID setpoint topic (e.g. ros-controls ``pid_controller``
  reference, or a hand-written PID node per joint).
- ``float64_multi_array``: one ``std_msgs/Float64MultiArray`` on ``<controller>/commands`` for ros2_control's
  ``forward_command_controller`` (``position_controllers/JointGroupPositionController``). ``data`` is in the
  limits file's axis order, which must match the controller's ``joints`` parameter.
- ``pose_stamped``: ``geometry_msgs/PoseStamped`` (FZI cartesian_controllers ``target_frame``) for pose spaces
  (axes ``x y z qx qy qz qw``); a ``gripper`` axis, if present, goes to its own ``std_msgs/Float64`` topic
  because a pose message has no place for it.
- ``joint_trajectory``: ``trajectory_msgs/JointTrajectory`` for ros2_control's JointTrajectoryController,
  ONE point per tick with ``time_from_start`` = ``time_from_start_s`` and a zero header stamp ("start now").
  Why one point and not the remaining plan: what the safety node streams is the output of its rate limiter,
  which is computed tick by tick from the last command and the measured state; sending the raw remaining
  plan would hand the controller values the limiter has not seen. One point per tick keeps the controller's
  interpolation short (one control period) and the limiter authoritative.

Topic names are relative so that node namespaces and ``--remap`` work. In shadow mode every topic is put
under ``~/shadow/`` (private to the node), so nothing reaches a controller topic while the whole pipeline
runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float64, Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

# Configuration lives where it can be read without ROS (the parameter schema, launch helpers, tests).
from cosmos_ros.safety_node_config import ADAPTER_KINDS, AdapterSettings

# One setpoint's positions in the adapter's axis order (the supervisor's arrays, or plain lists in tests).
Values = Sequence[float] | np.ndarray

POSE_AXES = ("x", "y", "z", "qx", "qy", "qz", "qw")

# (message type, topic) -> publisher; the node passes a function making a lifecycle publisher with its QoS.
PublisherFactory = Callable[[Any, str], Any]


class OutputAdapter(Protocol):
    """What the node needs from an adapter."""

    kind: str

    def topics(self) -> list[str]:
        """The (relative) topic names this adapter publishes on, in creation order."""
        ...

    def publish(self, values: Values, stamp: Time) -> None:
        """Publish one setpoint. ``values`` is in the axis order given at construction."""
        ...


def shadow_topic(topic: str) -> str:
    """The shadow-mode twin of a controller topic: private to the node, so no controller subscribes to it.

    ``forward_position_controller/commands`` -> ``~/shadow/forward_position_controller/commands``.
    """
    return "~/shadow/" + topic.lstrip("/~").lstrip("/")


class _Topics:
    """Shared bits: topic naming (shadow or not) and the list of topics for introspection and tests."""

    def __init__(self, create: PublisherFactory, shadow: bool) -> None:
        self._create = create
        self._shadow = shadow
        self._topics: list[str] = []

    def _make(self, msg_type: Any, topic: str) -> Any:
        name = shadow_topic(topic) if self._shadow else topic
        self._topics.append(name)
        return self._create(msg_type, name)

    def topics(self) -> list[str]:
        return list(self._topics)


class Float64PerAxisAdapter(_Topics):
    """One ``std_msgs/Float64`` per axis (classic PID setpoint topics)."""

    kind = "float64_per_axis"

    def __init__(
        self, create: PublisherFactory, axis_names: Sequence[str], settings: AdapterSettings, shadow: bool
    ) -> None:
        super().__init__(create, shadow)
        self._pubs = [self._make(Float64, settings.per_axis_topic_pattern.format(axis=a)) for a in axis_names]
        self._msgs = [Float64() for _ in axis_names]

    def publish(self, values: Values, stamp: Time) -> None:
        for pub, msg, v in zip(self._pubs, self._msgs, values, strict=True):
            msg.data = float(v)
            pub.publish(msg)


class Float64MultiArrayAdapter(_Topics):
    """``std_msgs/Float64MultiArray`` for ros2_control's forward_command_controller."""

    kind = "float64_multi_array"

    def __init__(
        self, create: PublisherFactory, axis_names: Sequence[str], settings: AdapterSettings, shadow: bool
    ) -> None:
        super().__init__(create, shadow)
        self._n = len(axis_names)
        self._pub = self._make(Float64MultiArray, settings.multi_array_topic)
        self._msg = Float64MultiArray()  # empty layout: forward_command_controller reads `data` only

    def publish(self, values: Values, stamp: Time) -> None:
        if len(values) != self._n:
            raise ValueError(f"expected {self._n} values, got {len(values)}")
        self._msg.data = [float(v) for v in values]
        self._pub.publish(self._msg)


class PoseStampedAdapter(_Topics):
    """``geometry_msgs/PoseStamped`` for Cartesian controllers (pose spaces), plus a gripper topic."""

    kind = "pose_stamped"

    def __init__(
        self, create: PublisherFactory, axis_names: Sequence[str], settings: AdapterSettings, shadow: bool
    ) -> None:
        super().__init__(create, shadow)
        names = list(axis_names)
        missing = [a for a in POSE_AXES if a not in names]
        if missing:
            raise ValueError(
                f"pose_stamped needs pose axes {list(POSE_AXES)}; missing {missing} in axis names {names}"
            )
        self._idx = [names.index(a) for a in POSE_AXES]
        self._pub = self._make(PoseStamped, settings.pose_topic)
        self._msg = PoseStamped()
        self._msg.header.frame_id = settings.pose_frame_id
        self._grip_idx = names.index("gripper") if "gripper" in names else None
        self._grip_pub = self._make(Float64, settings.gripper_topic) if self._grip_idx is not None else None
        self._grip_msg = Float64()

    def publish(self, values: Values, stamp: Time) -> None:
        i = self._idx
        m = self._msg
        m.header.stamp = stamp
        p, q = m.pose.position, m.pose.orientation
        p.x, p.y, p.z = float(values[i[0]]), float(values[i[1]]), float(values[i[2]])
        q.x, q.y, q.z, q.w = (
            float(values[i[3]]),
            float(values[i[4]]),
            float(values[i[5]]),
            float(values[i[6]]),
        )
        self._pub.publish(m)
        if self._grip_pub is not None and self._grip_idx is not None:
            self._grip_msg.data = float(values[self._grip_idx])
            self._grip_pub.publish(self._grip_msg)


class JointTrajectoryAdapter(_Topics):
    """``trajectory_msgs/JointTrajectory`` with one point per tick (see the module docstring for why)."""

    kind = "joint_trajectory"

    def __init__(
        self, create: PublisherFactory, axis_names: Sequence[str], settings: AdapterSettings, shadow: bool
    ) -> None:
        super().__init__(create, shadow)
        self._n = len(axis_names)
        self._pub = self._make(JointTrajectory, settings.trajectory_topic)
        self._msg = JointTrajectory()
        self._msg.joint_names = list(axis_names)
        # header.stamp stays zero: JointTrajectoryController starts a zero-stamped trajectory on receipt.
        self._point = JointTrajectoryPoint()
        secs = settings.trajectory_time_from_start_s
        self._point.time_from_start = Duration(sec=int(secs), nanosec=round((secs % 1.0) * 1e9))
        self._msg.points = [self._point]

    def publish(self, values: Values, stamp: Time) -> None:
        if len(values) != self._n:
            raise ValueError(f"expected {self._n} values, got {len(values)}")
        self._point.positions = [float(v) for v in values]
        self._msg.points = [self._point]
        self._pub.publish(self._msg)


_REGISTRY: dict[str, type[Any]] = {
    Float64PerAxisAdapter.kind: Float64PerAxisAdapter,
    Float64MultiArrayAdapter.kind: Float64MultiArrayAdapter,
    PoseStampedAdapter.kind: PoseStampedAdapter,
    JointTrajectoryAdapter.kind: JointTrajectoryAdapter,
}


def make_adapters(
    kinds: Sequence[str],
    create: PublisherFactory,
    axis_names: Sequence[str],
    settings: AdapterSettings,
    shadow: bool,
) -> list[OutputAdapter]:
    """Build the configured adapters.

    Args:
        kinds: adapter kinds, each one of ``ADAPTER_KINDS``, no duplicates, at least one.
        create: makes a publisher for ``(msg_type, topic)``.
        axis_names: axis order of the values passed to ``publish`` (the limits file's order).
        settings: topic names and options.
        shadow: publish on ``~/shadow/...`` instead of the controller topics.

    Raises:
        ValueError: unknown or duplicated kind (the message lists the valid kinds), no kinds, or an adapter
            that cannot serve these axes (pose_stamped without pose axes).
    """
    if not kinds:
        raise ValueError(f"output_adapters must name at least one of {list(ADAPTER_KINDS)}, got []")
    unknown = [k for k in kinds if k not in _REGISTRY]
    if unknown:
        raise ValueError(f"unknown output adapter(s) {unknown}; valid: {list(ADAPTER_KINDS)}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"output_adapters lists a kind twice: {list(kinds)}")
    return [_REGISTRY[k](create, axis_names, settings, shadow) for k in kinds]
