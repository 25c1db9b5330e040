"""Regression tests of the real nodes on a bag: lockstep replay into planner + safety, compared with a golden.

:func:`replay_into_nodes` starts the planner and the safety node as processes (``NodeProcess``, both on sim
time), waits until both are active, plays the bag with ``/clock`` in lockstep (``cosmos_ros.replay.player.
Lockstep``: the bag clock stops after each camera frame until the safety node has reported its decision on
the resulting plan, and then advances on the safety node's control-period grid, one answered tick at a time)
and records the outputs to a new mcap bag. :func:`compare_with_golden` compares that recording with a JSON
golden file (``cosmos_ros.testing.golden``): plans and safety decisions message by message, setpoints
resampled at fixed bag times.

What can be compared how tightly (see ``Lockstep`` for why): plans are the same values for the same frames,
seed and weights on the same software stack (float32 CPU; other devices or library versions differ in the
last bits, hence ``atol``); safety decisions, reasons and ``max_correction`` follow from the plans and the
frozen clock; setpoints follow from the plans and the tick grid, except that a measured state the safety node
took one message later (it is not synchronised) can shift a ``max_step_from_measured`` clamp by the motion
between two state messages. :data:`DEFAULT_TOLERANCES` states the tolerances this package uses.

Putting your own bag under test (a pytest module in your package)::

    from cosmos_ros.testing.node_replay import (
        DEFAULT_TOLERANCES, NodeReplayConfig, compare_with_golden, replay_into_nodes,
    )

    def test_pick_cube_bag(tmp_path):
        recorded = replay_into_nodes(NodeReplayConfig(
            bag="test/bags/pick_cube",                   # mcap or sqlite3, as `ros2 bag record` wrote it
            planner_params={"model_path": "/models/Cosmos3-Nano", "action_space": "arm7_joints",
                            "camera_topics": ["/camera/image_raw"], "num_inference_steps": 10, "seed": 0},
            safety_params={"limits_file": "/abs/path/to/my_limits.yaml"},
            topics=("/camera/image_raw", "/goal", "/joint_states"),
            out_dir=tmp_path,
            frame_interval_s=1.0,                        # plan one frame per second of the bag
        ))
        compare_with_golden(recorded, "test/golden/pick_cube.json", DEFAULT_TOLERANCES)

Run it once with ``COSMOS_ROS_UPDATE_GOLDEN=1`` to write the golden file, look at it, commit it; afterwards
the test fails, listing every difference, whenever a plan, a decision or a setpoint moves beyond its tolerance
(a changed limit, a changed model, a changed clamp).
"""

from __future__ import annotations

import fnmatch
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cosmos_ros.replay.bag import normalize_topic
from cosmos_ros.testing.golden import (
    DEFAULT_IGNORE,
    GoldenResult,
    Tolerance,
    compare,
    load_timed,
    read_golden,
    resample,
    update_requested,
    write_golden,
)

if TYPE_CHECKING:  # rclpy-side types; the module itself imports without ROS (golden comparison)
    from cosmos_ros.replay.player import Lockstep, PlayReport
    from cosmos_ros.testing.ros_harness import NodeProcess

_LOG = logging.getLogger(__name__)
COMMANDS_TOPIC = "/forward_position_controller/commands"
PLAN_TOPIC = "/action_sequence"
STATUS_TOPIC = "/safety_status"
DEFAULT_RECORD_TOPICS: tuple[str, ...] = (
    f"{PLAN_TOPIC}:cosmos_ros/msg/ActionSequence",
    f"{STATUS_TOPIC}:cosmos_ros/msg/SafetyStatus",
    f"{COMMANDS_TOPIC}:std_msgs/msg/Float64MultiArray",
)
# Setpoint topics and the rate (Hz of bag time) they are compared at.
DEFAULT_RESAMPLE: dict[str, float] = {COMMANDS_TOPIC: 10.0}
_IGNORE = DEFAULT_IGNORE
# rtol is 0 everywhere: the messages carry epoch stamps (1.7e9 s), on which any relative tolerance is void.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    # Plans: same frames + seed + weights. On one machine replays are bit-identical (measured); 1e-3 (rad, m,
    # or normalised units) leaves room for other CPUs / thread counts (float32 reductions in another order)
    # on values that, with the random tiny model, reach tens of radians (~1e-5 relative).
    PLAN_TOPIC: Tolerance(atol=1e-3, rtol=0.0, ignore=_IGNORE),
    # Decisions: stamps are bag times (exact); max_correction follows the plan values (same 1e-3).
    STATUS_TOPIC: Tolerance(atol=1e-3, rtol=0.0, ignore=_IGNORE),
    # Setpoints at 10 Hz of bag time: 5e-3 rad covers a measured-state message taken one message later by a
    # max_step_from_measured clamp (the demo bag's joints move < 3e-3 rad between state messages).
    f"{COMMANDS_TOPIC}@10Hz": Tolerance(atol=5e-3, rtol=0.0, ignore=_IGNORE),
}


class NodeReplayError(AssertionError):
    """The replay did not run as a deterministic regression run (node down, lockstep timeout); says why."""


@dataclass(frozen=True)
class NodeReplayConfig:
    """One lockstep replay of a bag into a planner and a safety node (see :func:`replay_into_nodes`).

    Attributes:
        bag: Bag directory or storage file (mcap, sqlite3).
        planner_params: Planner parameters (``model_path``, ``action_space``, ``camera_topics``, ``seed``...).
            ``use_sim_time`` is forced on; ``max_plan_rate_hz`` defaults to 100 so no frame is skipped.
        safety_params: Safety parameters (``limits_file``...). ``use_sim_time`` is forced on; the outputs
            default to one ``float64_multi_array`` on ``forward_position_controller/commands``.
        topics: Bag topics to play (camera(s), goal, measured state).
        record_topics: ``/topic:pkg/msg/Type`` to record.
        out_dir: Directory for the recording (``<out_dir>/recorded``, replaced if present); None: a new
            temporary directory.
        camera_topic: The trigger topic; None: the first Image/CompressedImage topic of ``topics``.
        frame_interval_s: Play one camera frame per this many bag seconds (> 0; None: every frame, which on a
            slow model means one inference per frame).
        end_offset_s: Play the bag up to this many seconds after its start (None: all of it).
        tick_topic: Setpoint topic the safety node answers each ``/clock`` step on (None: /clock steps at
            wall pace, setpoints then only comparable within a tick's motion).
        clock_step_s: ``/clock`` grid; None: the safety node's control period (parameter or limits file).
        linger_s: Bag seconds of ``/clock`` steps after the last message (the last plan streams out).
        planner_params_files / safety_params_files: ``--params-file`` YAMLs, applied before the params.
        domain_id: ROS domain of the run; None: :func:`~cosmos_ros.testing.ros_harness.pick_domain_id`.
        startup_timeout_s: Longest wait for both nodes to become active.
        plan_timeout_s: Longest pause of the bag clock for one plan + decision.
        env: Extra environment variables of the node processes.
    """

    bag: Path
    planner_params: Mapping[str, Any]
    safety_params: Mapping[str, Any]
    topics: tuple[str, ...]
    record_topics: tuple[str, ...] = DEFAULT_RECORD_TOPICS
    out_dir: Path | None = None
    camera_topic: str | None = None
    frame_interval_s: float | None = 1.0
    end_offset_s: float | None = None
    tick_topic: str | None = f"{COMMANDS_TOPIC}:std_msgs/msg/Float64MultiArray"
    clock_step_s: float | None = None
    linger_s: float = 1.0
    planner_params_files: tuple[Path, ...] = ()
    safety_params_files: tuple[Path, ...] = ()
    domain_id: int | None = None
    startup_timeout_s: float = 180.0
    plan_timeout_s: float = 120.0
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Immutable copies: a caller's dict or list changed after the check would change the run.
        fix = object.__setattr__
        fix(self, "bag", Path(self.bag))
        fix(self, "out_dir", None if self.out_dir is None else Path(self.out_dir))
        for name in ("topics", "record_topics"):
            fix(self, name, tuple(getattr(self, name)))
        for name in ("planner_params_files", "safety_params_files"):
            fix(self, name, tuple(Path(p) for p in getattr(self, name)))
        for name in ("planner_params", "safety_params", "env"):
            fix(self, name, MappingProxyType(dict(getattr(self, name))))
        if not self.topics:
            raise ValueError("topics must name at least one bag topic to play, got ()")
        for name in ("frame_interval_s", "end_offset_s", "clock_step_s"):
            _check_seconds(name, getattr(self, name), optional=True)
        for name in ("startup_timeout_s", "plan_timeout_s"):
            _check_seconds(name, getattr(self, name))
        if not (
            isinstance(self.linger_s, (int, float)) and math.isfinite(self.linger_s) and self.linger_s >= 0
        ):
            raise ValueError(f"linger_s must be a finite number of seconds >= 0, got {self.linger_s!r}")
        if self.domain_id is not None and not (isinstance(self.domain_id, int) and self.domain_id >= 0):
            raise ValueError(f"domain_id must be an int >= 0 or None, got {self.domain_id!r}")


def _check_seconds(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not (
        isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    ):
        none = " or None" if optional else ""
        raise ValueError(f"{name} must be a finite number of seconds > 0{none}, got {value!r}")


def _limits_control_period(safety_params: Mapping[str, Any]) -> float:
    """The safety node's control period: its ``control_rate_hz`` parameter, else the limits file's."""
    if "control_rate_hz" in safety_params:
        return 1.0 / float(safety_params["control_rate_hz"])
    name = str(safety_params.get("limits_file", "config/limits/arm7_joints.yaml"))
    path = Path(name)
    if not path.is_absolute():
        from ament_index_python.packages import get_package_share_directory

        path = Path(get_package_share_directory("cosmos_ros")) / path
    from cosmos_ros.safety.limits import load_limits

    return 1.0 / float(load_limits(path).control_rate_hz)


def _first_image_topic(bag: Path, topics: Sequence[str]) -> str:
    from cosmos_ros.replay.bag import read_info

    info = read_info(bag)
    for t in topics:
        if info.topic(t).msgtype in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"):
            return info.topic(t).name
    raise ValueError(f"none of the played topics {list(topics)} is a camera (Image/CompressedImage) topic")


def replay_into_nodes(config: NodeReplayConfig) -> Path:
    """Replay ``config.bag`` in lockstep into a planner and a safety node (real processes).

    Returns:
        The recorded bag directory.

    Raises:
        NodeReplayError: A node did not come up or died, or a lockstep pause timed out (the recording would
            not be deterministic); the message carries the nodes' log tails.
    """
    from cosmos_ros.testing.ros_harness import pick_domain_id

    record = _fresh_record_dir(config.out_dir)
    domain = pick_domain_id() if config.domain_id is None else config.domain_id
    nodes = _node_processes(config, domain)
    for n in nodes.values():
        n.start()
    try:
        _wait_until_active(nodes, domain, config.startup_timeout_s)
        report = _play_in_lockstep(config, record, domain)
        _LOG.info("node replay of %s:\n%s", config.bag, report.summary())
        _check_run(report, nodes, config.plan_timeout_s)
    finally:
        for n in nodes.values():
            n.stop()
    return report.record_path or record


def _fresh_record_dir(out_dir: Path | None) -> Path:
    out = Path(tempfile.mkdtemp(prefix="node_replay_")) if out_dir is None else out_dir
    out.mkdir(parents=True, exist_ok=True)
    record = out / "recorded"
    if record.exists():
        shutil.rmtree(record)
    return record


def _node_processes(config: NodeReplayConfig, domain: int) -> dict[str, NodeProcess]:
    """The safety node and the planner, both on sim time; the safety node streams to ``COMMANDS_TOPIC``."""
    from cosmos_ros.testing.ros_harness import NodeProcess

    p_params = {"max_plan_rate_hz": 100.0, **config.planner_params, "use_sim_time": True}
    s_params = {
        "output_adapters": ["float64_multi_array"],
        "float64_multi_array.topic": COMMANDS_TOPIC.lstrip("/"),
        **config.safety_params,
        "use_sim_time": True,
    }
    env = dict(config.env)
    return {
        "safety_node": NodeProcess(
            "cosmos_ros.nodes.safety_node",
            domain,
            params=s_params,
            params_files=list(config.safety_params_files),
            name="safety_node",
            env=env,
        ),
        "planner_node": NodeProcess(
            "cosmos_ros.nodes.planner_node",
            domain,
            params=p_params,
            params_files=list(config.planner_params_files),
            name="planner_node",
            env=env,
        ),
    }


def _logs(nodes: Mapping[str, NodeProcess]) -> str:
    return "\n".join(f"--- {name} log (tail):\n{n.output()[-3000:]}" for name, n in nodes.items())


def _wait_until_active(nodes: Mapping[str, NodeProcess], domain: int, timeout_s: float) -> None:
    from cosmos_ros.testing.ros_harness import TestPeer, wait_active

    with TestPeer(domain, name="node_replay_supervisor") as peer:
        deadline = time.monotonic() + timeout_s
        for name, proc in nodes.items():
            # Short waits while the process lives: a node whose configure fails exits at once.
            while not wait_active(peer, name, timeout=2.0):
                if not proc.alive():
                    raise NodeReplayError(f"{name} exited during start-up\n{_logs(nodes)}")
                if time.monotonic() > deadline:
                    raise NodeReplayError(f"{name} not active after {timeout_s} s\n{_logs(nodes)}")


def _play_in_lockstep(config: NodeReplayConfig, record: Path, domain: int) -> PlayReport:
    import rclpy

    from cosmos_ros.replay.player import PlayerConfig, play
    from cosmos_ros.replay.schedule import ReplayOptions

    camera = config.camera_topic or _first_image_topic(config.bag, config.topics)
    interval = config.frame_interval_s
    options = ReplayOptions(
        topics=config.topics,
        end_offset_s=config.end_offset_s,
        throttle=((camera, interval),) if interval is not None else (),
    )
    player = PlayerConfig(
        publish_clock=True,
        record_path=record,
        record_topics=config.record_topics,
        record_linger_s=config.linger_s,
        wait_for_subscribers_s=20.0,
        discovery_timeout_s=20.0,
        lockstep=_lockstep(config, camera),
    )
    ctx = rclpy.Context()
    rclpy.init(args=[], context=ctx, domain_id=domain)
    try:
        return play(config.bag, options, player, context=ctx)
    finally:
        ctx.try_shutdown()


def _lockstep(config: NodeReplayConfig, camera: str) -> Lockstep:
    """Pause after each camera frame until the safety node decided on its plan; step /clock per tick."""
    from cosmos_ros.replay.player import Lockstep

    step = config.clock_step_s
    return Lockstep(
        trigger_topics=(camera,),
        ack_topic=f"{STATUS_TOPIC}:cosmos_ros/msg/SafetyStatus",
        ack_filter=_is_plan_decision,
        timeout_s=config.plan_timeout_s,
        clock_step_s=step if step is not None else _limits_control_period(config.safety_params),
        tick_topic=config.tick_topic,
        # Generous: a busy 2-core CI machine was seen to answer a tick after > 0.2 s; a timeout costs this
        # much once, then steps go on at wall pace until an answer.
        tick_timeout_s=2.0,
    )


def _check_run(report: PlayReport, nodes: Mapping[str, NodeProcess], plan_timeout_s: float) -> None:
    """Raise NodeReplayError unless both nodes lived and every pause ended by an answer."""
    dead = [name for name, n in nodes.items() if not n.alive()]
    if dead:
        raise NodeReplayError(f"{dead} exited during the replay\n{report.summary()}\n{_logs(nodes)}")
    if report.lockstep_timeouts or report.unmatched:
        raise NodeReplayError(
            f"replay was not in lockstep ({report.lockstep_timeouts} pauses timed out after "
            f"{plan_timeout_s} s; topics without subscriber: {list(report.unmatched)}): a frame gave no "
            f"plan or no safety decision\n{report.summary()}\n{_logs(nodes)}"
        )


def _is_plan_decision(msg: Any) -> bool:
    """A SafetyStatus about a plan (state-change statuses have ``plan_id == 0``)."""
    return int(msg.plan_id) > 0


def resampled_name(topic: str, hz: float) -> str:
    """Name of a resampled setpoint stream in a golden file: ``/commands@10Hz``."""
    return f"{topic}@{hz:g}Hz"


def load_for_golden(
    recorded: str | Path,
    topics: Iterable[str],
    resample_hz: Mapping[str, float] | None = None,
    status_topic: str | None = STATUS_TOPIC,
) -> dict[str, dict[str, Any]]:
    """The recorded topics as a golden compares them: messages as they are, setpoint topics resampled.

    Args:
        recorded: The recorded bag.
        topics: Topics to take (``/topic`` or ``/topic:type``).
        resample_hz: Topic -> Hz of bag time at which it is sampled (zero-order hold); the topic appears as
            ``resampled_name(topic, hz)``. Default: :data:`DEFAULT_RESAMPLE` for the topics it names.
        status_topic: The SafetyStatus topic, whose *state-change* messages (``plan_id == 0``) lose their
            ``header.stamp``: the safety node stamps them when it publishes them, after the tick's setpoint,
            and by then the lockstep may already have moved ``/clock`` on by a step (measured: 3.01 s on one
            build, 3.02 s on another). Their content (which state, counters) is kept, and when the state
            changes is pinned by the resampled setpoints. Decisions on plans keep their stamps (the clock is
            frozen until they are published). None: keep every stamp.
    """
    names = [normalize_topic(t.partition(":")[0]) for t in topics]  # '/topic:pkg/msg/Type' -> '/topic'
    rates = {
        t: hz for t, hz in (DEFAULT_RESAMPLE if resample_hz is None else resample_hz).items() if t in names
    }
    timed = load_timed(recorded, names)
    end = max((t for v in timed.values() for t in v["times_ns"]), default=None)
    out: dict[str, dict[str, Any]] = {}
    for topic, v in timed.items():
        if topic in rates:
            msgs = resample(v["times_ns"], v["messages"], 1.0 / rates[topic], end_ns=end)
            out[resampled_name(topic, rates[topic])] = {"type": v["type"], "messages": msgs}
        elif topic == status_topic:
            msgs = [m if m.get("plan_id", 0) else _without(m, ("header.stamp.*",)) for m in v["messages"]]
            out[topic] = {"type": v["type"], "messages": msgs}
        else:
            out[topic] = {"type": v["type"], "messages": v["messages"]}
    return out


def _without(msg: dict[str, Any], patterns: Iterable[str]) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if not any(fnmatch.fnmatchcase(k, p) for p in patterns)}


def compare_with_golden(
    recorded: str | Path,
    golden_path: str | Path,
    tolerances: Mapping[str, Tolerance] | Tolerance = DEFAULT_TOLERANCES,
    *,
    topics: Iterable[str] = DEFAULT_RECORD_TOPICS,
    resample_hz: Mapping[str, float] | None = None,
    update: bool | None = None,
) -> GoldenResult:
    """Compare a recording of :func:`replay_into_nodes` with a golden file; raise listing every difference.

    Args:
        recorded: The recorded bag.
        golden_path: JSON golden (``cosmos_ros.testing.golden`` format).
        tolerances: Per compared topic (resampled ones under their ``@<Hz>Hz`` name), or one for all.
        topics: Recorded topics to compare.
        resample_hz: Setpoint topics and their sampling rate (see :func:`load_for_golden`).
        update: Write the golden instead of comparing; None: ``COSMOS_ROS_UPDATE_GOLDEN``.

    Returns:
        The (successful) result.

    Raises:
        AssertionError: The recording does not match (every problem listed), or the golden is missing.
    """
    data = load_for_golden(recorded, topics, resample_hz)
    if update if update is not None else update_requested():
        per_topic = {t: tolerances for t in data} if isinstance(tolerances, Tolerance) else dict(tolerances)
        tols = {t: per_topic.get(t, Tolerance()) for t in data}
        # Ignored fields (wall-clock timings, the local model path) are left out of the file: they are never
        # compared, and keeping them would change the golden on every refresh.
        kept = {
            t: {**v, "messages": [_without(m, tols[t].ignore) for m in v["messages"]]}
            for t, v in data.items()
        }
        write_golden(golden_path, kept, tols)
        return GoldenResult(True, (), {t: len(v["messages"]) for t, v in data.items()}, updated=True)
    if not Path(golden_path).is_file():
        raise AssertionError(
            f"golden file {golden_path} does not exist; create it with COSMOS_ROS_UPDATE_GOLDEN=1"
        )
    result = compare(data, read_golden(golden_path), tolerances)
    if not result.ok:
        raise AssertionError(result.report())
    return result
