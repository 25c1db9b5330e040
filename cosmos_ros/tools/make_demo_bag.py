"""Generate a small, deterministic rosbag2 bag for the demo and the replay tests.

What is in it (defaults; a few seconds, about 2 MB):

* ``/camera/image_raw`` (``sensor_msgs/Image``, rgb8) and ``/camera/image_raw/compressed``
  (``sensor_msgs/CompressedImage``, jpeg, as image_transport's compressed plugin names it): a synthetic
  table seen from above, a red block sliding towards a green mat, a grey gripper following it.
* ``/goal`` (``std_msgs/String``), once a second, offered transient-local (latched) so a node that subscribes
  late still gets it.
* ``/joint_states`` (``sensor_msgs/JointState``): ``panda_joint1..7``, the two finger joints and a
  ``gripper`` entry, smooth motions around the Panda's ready pose; the gripper closes half-way through.
  Why the extra ``gripper`` entry: the ``arm7_joints`` action space and safety limits name the gripper axis
  ``gripper`` (opening in m), and the safety node maps measured state by joint NAME and starts streaming only
  once every axis has a measured value (soft start). A Panda driver publishes the two fingers instead; the
  entry carries their sum (the opening between the fingers, m), which is what a real setup would publish
  from a small relay node (or with the limits file naming a finger joint). Velocity: the sum of theirs (0).
* ``/ee_pose`` (``geometry_msgs/PoseStamped``, ``base_link``): the gripper's path above the table, in the
  robot's base frame under the name the ``umi_pose_gripper`` profile and limits use (for the Panda that
  frame is ``panda_link0``; a pose in any other frame than the limits' is ignored by the safety node, so
  the README's pose example on this bag would never get a measured state).

Everything derives from the arguments (no randomness, fixed start time), so two runs write identical
messages; mcap and sqlite3 storage are both available, to test that replay reads them identically.
Usage: ``python -m cosmos_ros.tools.make_demo_bag OUT_DIR [--storage sqlite3] [--no-compressed]``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from cosmos_ros.images import rgb_to_compressed
from cosmos_ros.replay.types import make_typestore

# 2023-11-14T22:13:20Z: a fixed, plausible ROS time, so the bag is byte-for-byte reproducible.
START_NS = 1_700_000_000_000_000_000
GOAL = "pick up the red block and place it on the green mat"
ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
# The arm7_joints gripper axis (config/limits/arm7_joints.yaml): opening in m = sum of the fingers.
GRIPPER_JOINT = "gripper"
# Panda "ready" pose (rad), the centre of the synthetic motion.
READY = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785)
TOPICS = {
    "image": "/camera/image_raw",
    "compressed": "/camera/image_raw/compressed",
    "goal": "/goal",
    "joints": "/joint_states",
    "pose": "/ee_pose",
}
# Frame of /ee_pose: the umi_pose_gripper profile's and limits' frame (config/limits/umi_pose_gripper.yaml).
POSE_FRAME = "base_link"
CAMERA_LATENCY_NS = 2_000_000  # receive time = capture stamp + 2 ms, as a real driver would show


@dataclass(frozen=True)
class DemoBagConfig:
    """What to generate.

    Attributes:
        duration_s: Length of the bag. > 0.
        fps: Camera frame rate (Hz). > 0.
        width: Image width (px), 16..640.
        height: Image height (px), 16..480.
        state_rate_hz: Rate of ``/joint_states`` and ``/ee_pose``. > 0.
        storage: ``mcap`` or ``sqlite3``.
        compressed: Also write the jpeg topic.
        joint_states: Write ``/joint_states``.
        pose: Write ``/ee_pose``.
        goal: Text of the goal.
    """

    duration_s: float = 4.0
    fps: float = 10.0
    width: int = 160
    height: int = 120
    state_rate_hz: float = 30.0
    storage: str = "mcap"
    compressed: bool = True
    joint_states: bool = True
    pose: bool = True
    goal: str = GOAL

    def __post_init__(self) -> None:
        for name in ("duration_s", "fps", "state_rate_hz"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
        if not 16 <= self.width <= 640:
            raise ValueError(f"width must be in [16, 640], got {self.width}")
        if not 16 <= self.height <= 480:
            raise ValueError(f"height must be in [16, 480], got {self.height}")
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {self.storage!r}")
        if not self.goal:
            raise ValueError("goal must not be empty")


def block_position(s: float) -> tuple[float, float]:
    """Block centre in image fractions (x, y) at progress ``s`` in [0, 1]: a smooth slide to the mat."""
    e = 0.5 - 0.5 * math.cos(math.pi * min(max(s, 0.0), 1.0))  # ease in/out
    return 0.2 + 0.55 * e, 0.65 - 0.2 * e


def render_scene(s: float, height: int, width: int) -> np.ndarray:
    """The camera image at progress ``s``: ``[height, width, 3]`` uint8 RGB."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    # wooden table with a soft vertical gradient (gives jpeg something realistic to compress)
    shade = 0.85 + 0.15 * (y / height)
    img = np.stack([150 * shade, 110 * shade, 70 * shade], axis=-1)
    # green mat at the right
    mat = (x > 0.65 * width) & (x < 0.9 * width) & (y > 0.3 * height) & (y < 0.6 * height)
    img[mat] = (40, 150, 60)
    bx, by = block_position(s)
    half = max(2.0, 0.06 * width)
    block = (np.abs(x - bx * width) < half) & (np.abs(y - by * height) < half)
    img[block] = (200, 30, 30)
    # grey gripper just above the block, its shadow a darker band
    gripper = (
        (np.abs(x - bx * width) < half * 1.2) & (y > by * height - 3 * half) & (y < by * height - 2 * half)
    )
    img[gripper] = (120, 120, 130)
    return np.clip(img, 0, 255).astype(np.uint8)


def joint_positions(t: float, duration: float) -> tuple[list[float], float]:
    """Arm joint angles (rad) and finger opening per finger (m) at ``t`` seconds."""
    arm = [q + 0.15 * math.sin(2 * math.pi * 0.25 * t + i) for i, q in enumerate(READY)]
    finger = 0.04 if t < duration / 2 else 0.01
    return arm, finger


def ee_position(s: float) -> tuple[float, float, float]:
    """Gripper position (m, panda_link0) following the block: table plane x forward, y left."""
    bx, by = block_position(s)
    return 0.3 + 0.4 * (1.0 - by), 0.3 - 0.6 * bx, 0.15


def _stamp(store: Any, t_ns: int) -> Any:
    return store.types["builtin_interfaces/msg/Time"](sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)


def _qos(transient_local: bool) -> Qos:
    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST,
        1 if transient_local else 10,
        QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


def make_demo_bag(path: str | Path, config: DemoBagConfig | None = None) -> dict[str, int]:
    """Write the bag to the new directory ``path``.

    Returns:
        Message count per topic.

    Raises:
        FileExistsError: ``path`` exists (bags are never overwritten).
        ValueError: Bad configuration.
    """
    cfg = config or DemoBagConfig()
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; the demo bag is written to a new directory")
    store = make_typestore()
    T = store.types  # noqa: N806 - rosbags message classes by type name
    plugin = StoragePlugin.MCAP if cfg.storage == "mcap" else StoragePlugin.SQLITE3
    duration_ns = round(cfg.duration_s * 1e9)
    counts: dict[str, int] = {}
    # (receive time, topic, type, serialized), sorted before writing so both storages get the same order
    records: list[tuple[int, str, str, bytes]] = []

    def add(t_ns: int, topic: str, msgtype: str, msg: Any) -> None:
        records.append((t_ns, topic, msgtype, bytes(store.serialize_cdr(msg, msgtype))))
        counts[topic] = counts.get(topic, 0) + 1

    n_frames = math.floor(cfg.duration_s * cfg.fps) + 1
    for k in range(n_frames):
        stamp_ns = START_NS + round(k * 1e9 / cfg.fps)
        if stamp_ns - START_NS > duration_ns:
            break
        rgb = render_scene((stamp_ns - START_NS) / max(duration_ns, 1), cfg.height, cfg.width)
        header = T["std_msgs/msg/Header"](stamp=_stamp(store, stamp_ns), frame_id="camera_optical_frame")
        image = T["sensor_msgs/msg/Image"](
            header=header,
            height=cfg.height,
            width=cfg.width,
            encoding="rgb8",
            is_bigendian=0,
            step=cfg.width * 3,
            data=np.ascontiguousarray(rgb).reshape(-1),
        )
        add(stamp_ns + CAMERA_LATENCY_NS, TOPICS["image"], "sensor_msgs/msg/Image", image)
        if cfg.compressed:
            fmt, data = rgb_to_compressed(rgb, "jpeg", quality=90)
            comp = T["sensor_msgs/msg/CompressedImage"](
                header=header, format=fmt, data=np.frombuffer(data, dtype=np.uint8)
            )
            add(stamp_ns + CAMERA_LATENCY_NS, TOPICS["compressed"], "sensor_msgs/msg/CompressedImage", comp)

    for k in range(math.floor(cfg.duration_s) + 1):
        add(
            START_NS + k * 1_000_000_000,
            TOPICS["goal"],
            "std_msgs/msg/String",
            T["std_msgs/msg/String"](data=cfg.goal),
        )

    n_states = math.floor(cfg.duration_s * cfg.state_rate_hz) + 1
    for k in range(n_states):
        t_ns = START_NS + round(k * 1e9 / cfg.state_rate_hz)
        if t_ns - START_NS > duration_ns:
            break
        t = (t_ns - START_NS) / 1e9
        if cfg.joint_states:
            arm, finger = joint_positions(t, cfg.duration_s)
            velocity = [0.15 * 2 * math.pi * 0.25 * math.cos(2 * math.pi * 0.25 * t + i) for i in range(7)]
            js = T["sensor_msgs/msg/JointState"](
                header=T["std_msgs/msg/Header"](stamp=_stamp(store, t_ns), frame_id=""),
                name=[*ARM_JOINTS, *FINGER_JOINTS, GRIPPER_JOINT],
                position=np.array([*arm, finger, finger, 2 * finger], dtype=np.float64),
                velocity=np.array([*velocity, 0.0, 0.0, 0.0], dtype=np.float64),
                effort=np.zeros(0, dtype=np.float64),
            )
            add(t_ns, TOPICS["joints"], "sensor_msgs/msg/JointState", js)
        if cfg.pose:
            px, py, pz = ee_position(t / cfg.duration_s)
            pose = T["geometry_msgs/msg/PoseStamped"](
                header=T["std_msgs/msg/Header"](stamp=_stamp(store, t_ns), frame_id=POSE_FRAME),
                pose=T["geometry_msgs/msg/Pose"](
                    position=T["geometry_msgs/msg/Point"](x=px, y=py, z=pz),
                    # gripper pointing down: 180 degrees about x
                    orientation=T["geometry_msgs/msg/Quaternion"](x=1.0, y=0.0, z=0.0, w=0.0),
                ),
            )
            add(t_ns, TOPICS["pose"], "geometry_msgs/msg/PoseStamped", pose)

    records.sort(key=lambda r: (r[0], r[1]))
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for _, topic, msgtype, _ in records:
            if topic not in conns:
                conns[topic] = writer.add_connection(
                    topic, msgtype, typestore=store, offered_qos_profiles=[_qos(topic == TOPICS["goal"])]
                )
        for t_ns, topic, _, data in records:
            writer.write(conns[topic], t_ns, data)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_demo_bag", description=__doc__.split("\n")[0])
    parser.add_argument("out", help="new bag directory to write")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--duration", type=float, default=DemoBagConfig.duration_s, help="seconds")
    parser.add_argument("--fps", type=float, default=DemoBagConfig.fps, help="camera rate, Hz")
    parser.add_argument("--width", type=int, default=DemoBagConfig.width)
    parser.add_argument("--height", type=int, default=DemoBagConfig.height)
    parser.add_argument("--state-rate", type=float, default=DemoBagConfig.state_rate_hz, help="Hz")
    parser.add_argument("--no-compressed", action="store_true", help="omit the jpeg topic")
    parser.add_argument("--goal", default=GOAL)
    args = parser.parse_args(argv)
    try:
        cfg = DemoBagConfig(
            duration_s=args.duration,
            fps=args.fps,
            width=args.width,
            height=args.height,
            state_rate_hz=args.state_rate,
            storage=args.storage,
            compressed=not args.no_compressed,
            goal=args.goal,
        )
        counts = make_demo_bag(args.out, cfg)
    except (ValueError, FileExistsError) as exc:
        print(f"make_demo_bag: error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in Path(args.out).iterdir())
    print(f"wrote {args.out} ({cfg.storage}, {size / 1e6:.2f} MB)")
    for topic, n in sorted(counts.items()):
        print(f"  {topic}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
