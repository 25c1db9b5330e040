"""Simulation node: a pybullet Panda, its per-joint PID controllers, a camera, and the episode, on ROS topics.

A thin lifecycle node over ``cosmos_ros.sim`` (pure core): it owns the simulation and its clock and
publishes ``/clock``, ``joint_states`` (7 arm joints + ``gripper``, by name), ``image_raw`` + ``camera_info``,
the goal (``goal``, transient local) and the episode state (``sim_episode``, ``cosmos_ros/SimEpisode``). It
consumes the safety node's setpoint topics (``float64_per_axis``: ``<axis>/setpoint``; and
``float64_multi_array``: ``forward_position_controller/commands``); the sim's controller layer refuses bad
setpoints (unknown joint, NaN/Inf, outside the URDF range) with a logged (throttled) and counted reason,
shown on ``/diagnostics``.

Two modes (parameter ``lockstep``):

- ``true``: simulated time advances only when the safety node has answered the tick and the planner has
  answered the frame (``cosmos_ros/sim/lockstep.py`` describes the protocol). Results do not depend on CPU
  speed. The planner must run with ``publish_state: true`` and its ``/clock`` remapped to
  ``planner_clock_topic``.
- ``false``: time follows the wall clock (``real_time_factor``), frames go out at ``camera_rate_hz``, for a
  person watching (``launch/sim.launch.py``).

Episodes: seeds ``first_seed`` .. ``first_seed + num_episodes - 1`` (0 = forever). Between episodes the node
deactivates and re-activates the safety node (``safety_node_name``; "" = leave it alone), so that it
soft-starts from the new start pose. With ``exit_when_done`` the process ends after the last episode.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.client import Client
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, Float64MultiArray, String

from cosmos_ros.msg import PlannerState, SafetyStatus, SimEpisode
from cosmos_ros.nodes.conversions import report_to_status
from cosmos_ros.nodes.parameters import declarations
from cosmos_ros.nodes.spin import run_nodes
from cosmos_ros.sim.config import JOINT_NAMES, load_sim_config
from cosmos_ros.sim.diagnostics import sim_diagnostics
from cosmos_ros.sim.lockstep import LinkState, LockstepError, PlannerLink, Report, camera_due, seconds_to_ns
from cosmos_ros.sim.records import EpisodeRecord
from cosmos_ros.sim.scene import PandaSim
from cosmos_ros.sim.task import parse_goal
from cosmos_ros.sim_node_config import SCHEMA, SimNodeConfig, config_from_parameters

NODE_NAME = "sim_node"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(
    depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
_EVENTS = {PlannerState.EVENT_GOAL: "goal", PlannerState.EVENT_HELD: "held", PlannerState.EVENT_DONE: "done"}

PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = declarations(SCHEMA)  # schemas/sim_node.yaml


class _Mailbox:
    """What the callbacks received, for the sim thread: setpoints by interface, planner reports, decisions."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.multi: list[list[float]] = []
        self.per_axis: dict[str, list[float]] = {n: [] for n in JOINT_NAMES}
        self.reports: list[Report] = []
        self.decisions: dict[int, SafetyStatus] = {}
        self.goal: str | None = None  # free-run: a goal a person published

    def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout=timeout_s)

    def notify(self) -> None:
        self.cond.notify_all()


class SimNode(LifecycleNode):
    """See the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        self.cfg: SimNodeConfig | None = None
        self.sim: PandaSim | None = None
        self.box = _Mailbox()
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clock_ns = 0
        self._entities: list[Any] = []
        self._refusals: Counter[str] = Counter()
        self._log_times: dict[str, float] = {}
        self._record: EpisodeRecord | None = None
        self._episodes_done = 0
        self._successes = 0

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.cfg = config_from_parameters(lambda n: self.get_parameter(n).value)
            sim_config = load_sim_config(self.cfg.config_file or None)
            if self.cfg.image_size:
                sim_config = sim_config.with_camera_size(self.cfg.image_size, self.cfg.image_size)
            self.sim = PandaSim(sim_config)
            self.sim.reset(self.cfg.first_seed)
            self._make_entities(self.cfg)
        except Exception as exc:
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(
            f"configured: {sim_config.physics_hz:g} Hz physics, {sim_config.tick_s * 1e3:g} ms ticks, "
            f"camera {sim_config.camera.width}x{sim_config.camera.height}, lockstep {self.cfg.lockstep}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim", daemon=True)
        self._thread.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_thread()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_thread(self) -> None:
        self._stop.set()
        with self.box.cond:
            self.box.notify()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    def destroy_node(self) -> None:
        """Stop the episode thread and close the simulation before the node goes."""
        self._release()
        super().destroy_node()

    def _release(self) -> None:
        self._stop_thread()
        if self.sim is not None:
            self.sim.close()
            self.sim = None

    # ---- entities -----------------------------------------------------------------------------------------
    def _make_entities(self, cfg: SimNodeConfig) -> None:
        group = ReentrantCallbackGroup()
        self._pub_clock = self.create_publisher(Clock, "/clock", RELIABLE)
        self._pub_planner_clock = (
            self.create_publisher(Clock, cfg.planner_clock_topic, RELIABLE)
            if cfg.planner_clock_topic
            else None
        )
        self._pub_joints = self.create_publisher(JointState, "joint_states", RELIABLE)
        self._pub_image = self.create_publisher(Image, "image_raw", RELIABLE)
        self._pub_info = self.create_publisher(CameraInfo, "camera_info", RELIABLE)
        self._pub_goal = self.create_publisher(String, "goal", LATCHED)
        self._pub_episode = self.create_publisher(SimEpisode, "sim_episode", LATCHED)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE)
        if "float64_multi_array" in cfg.command_interfaces:
            self.create_subscription(
                Float64MultiArray, cfg.multi_array_topic, self._on_multi, RELIABLE, callback_group=group
            )
        if "float64_per_axis" in cfg.command_interfaces:
            for name in JOINT_NAMES:
                topic = cfg.per_axis_topic_pattern.format(axis=name)
                self.create_subscription(
                    Float64, topic, lambda m, n=name: self._on_axis(n, m), RELIABLE, callback_group=group
                )
        self.create_subscription(
            PlannerState, "planner_state", self._on_report, QoSProfile(depth=50), callback_group=group
        )
        self.create_subscription(
            SafetyStatus, "safety_status", self._on_status, QoSProfile(depth=50), callback_group=group
        )
        if cfg.safety_node_name:
            base = "/" + cfg.safety_node_name.lstrip("/")
            self._cli_change: Client = self.create_client(
                ChangeState, f"{base}/change_state", callback_group=group
            )
            self._cli_get: Client = self.create_client(GetState, f"{base}/get_state", callback_group=group)
        if not cfg.lockstep:  # a person may switch the target by publishing a goal
            self.create_subscription(String, "goal", self._on_goal, RELIABLE, callback_group=group)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=group)

    # ---- callbacks (executor threads: only store and notify) ---------------------------------------------
    def _on_multi(self, msg: Float64MultiArray) -> None:
        with self.box.cond:
            self.box.multi.append(list(msg.data))
            self.box.notify()

    def _on_axis(self, name: str, msg: Float64) -> None:
        with self.box.cond:
            self.box.per_axis[name].append(float(msg.data))
            self.box.notify()

    def _on_report(self, msg: PlannerState) -> None:
        event = _EVENTS.get(msg.event)
        if event is None:
            return
        report = Report(
            event=event,
            frame_stamp_ns=_time_ns(msg.frame_stamp),
            release_at_ns=_time_ns(msg.release_at),
            plan_id=int(msg.plan_id),
            goal=msg.goal,
            detail=msg.detail,
        )
        with self.box.cond:
            self.box.reports.append(report)
            self.box.notify()

    def _on_goal(self, msg: String) -> None:
        with self.box.cond:
            self.box.goal = msg.data

    def _on_status(self, msg: SafetyStatus) -> None:
        if msg.plan_id == 0:
            return
        with self.box.cond:
            self.box.decisions[int(msg.plan_id)] = msg
            self.box.notify()

    # ---- the sim thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        cfg = self.cfg
        assert cfg is not None
        try:
            seed = cfg.first_seed
            while not self._stop.is_set() and (
                cfg.num_episodes == 0 or seed < cfg.first_seed + cfg.num_episodes
            ):
                self._run_episode(seed)
                seed += 1
        except Exception as exc:  # a bug must end the run loudly, not hang the evaluation
            self.get_logger().error(f"simulation stopped: {type(exc).__name__}: {exc}")
        finally:
            self.done.set()

    def _run_episode(self, seed: int) -> None:
        cfg, sim = self.cfg, self.sim
        assert cfg is not None and sim is not None
        self._set_safety(Transition.TRANSITION_DEACTIVATE)
        episode = sim.reset(seed)
        goal = cfg.goal or episode.goal_text
        self._record = record = EpisodeRecord(seed, goal, sim.config.tick_s)
        with self.box.cond:  # nothing from the previous episode may count in this one
            self.box.multi.clear()
            for values in self.box.per_axis.values():
                values.clear()
            self.box.reports.clear()
        self._publish_episode(SimEpisode.PHASE_STARTING, 0.0)
        self._send_goal(goal)
        for _ in range(5):  # the safety node soft-starts from the measured state: let it have one
            self._publish_joints()
            time.sleep(0.02)
        self._set_safety(Transition.TRANSITION_ACTIVATE)
        tick_ns = seconds_to_ns(sim.config.tick_s)
        self._start_ns = self._clock_ns + tick_ns
        ticks_per_frame = max(1, round(1.0 / (cfg.camera_rate_hz * sim.config.tick_s)))
        gate = sim.gate
        assert gate is not None  # reset() made it
        link = PlannerLink()
        k = 0
        wall0 = time.monotonic()
        self._publish_episode(SimEpisode.PHASE_RUNNING, 0.0)
        while not self._stop.is_set():
            self._clock_ns = self._start_ns + k * tick_ns
            fresh = self._tick_io(record)
            record.add_tick(gate.setpoints(sim.joint_positions(), sim.time_s), sim.joint_positions(), fresh)
            self._plan_io(link, camera_due(k, ticks_per_frame), record)
            if not cfg.lockstep:
                self._take_published_goal(record)
            if sim.success_time_s is not None or sim.timed_out():
                break
            sim.tick()
            k += 1
            if not cfg.lockstep:
                ahead = sim.time_s / cfg.real_time_factor - (time.monotonic() - wall0)
                if ahead > 0:
                    time.sleep(ahead)
        record.elapsed_s = sim.time_s
        record.time_to_success_s = sim.success_time_s
        record.refusals = Counter(sim.gate.refusals) if sim.gate else Counter()
        record.frames_sent, record.plans = link.frames_sent, link.plans
        if link.state is not LinkState.IDLE:
            self._drain_planner(link)
        phase = SimEpisode.PHASE_SUCCEEDED if record.success else SimEpisode.PHASE_FAILED
        self._episodes_done += 1
        self._successes += int(record.success)
        if cfg.record_dir:
            record.save(cfg.record_dir)
        self._publish_episode(phase, sim.time_s)
        self.get_logger().info(
            f"episode {seed} ({goal!r}): {'SUCCESS' if record.success else 'failed'} "
            f"after {sim.time_s:.2f} s sim time"
            + (f", {link.plans} plans" if cfg.lockstep else "")
            + f"; {self._successes}/{self._episodes_done} so far"
        )

    def _take_published_goal(self, record: EpisodeRecord) -> None:
        """Free-run: a 'touch the <colour> cube' goal from the topic becomes the episode's target."""
        sim = self.sim
        assert sim is not None and sim.episode is not None
        with self.box.cond:
            text, self.box.goal = self.box.goal, None
        colour = parse_goal(text) if text else None
        if text is None or text == record.goal:
            return
        if colour not in sim.episode.cubes:
            self._log_throttled("goal", f"goal {text!r} names no object of this episode; target unchanged")
            return
        sim.episode = dataclasses.replace(sim.episode, goal_colour=colour)
        record.goal = text
        self.get_logger().info(f"target switched by a published goal: {text!r}")

    def _tick_io(self, record: EpisodeRecord) -> bool:
        """Publish state and time of this tick; take (lockstep: wait for) the safety node's setpoints."""
        cfg = self.cfg
        assert cfg is not None
        self._publish_joints()
        if cfg.lockstep and cfg.state_settle_s > 0:
            time.sleep(cfg.state_settle_s)
        self._publish_clock(self._pub_clock)
        if cfg.lockstep:
            ok = self._wait(self._setpoints_complete, resend=self._republish_tick)
            if not ok:
                record.lockstep_timeouts += 1
        fresh = self._apply_setpoints()
        if self._pub_planner_clock is not None:
            self._publish_clock(self._pub_planner_clock)
        return fresh

    def _republish_tick(self) -> None:
        self._publish_joints()
        self._publish_clock(self._pub_clock)

    def _plan_io(self, link: PlannerLink, frame_due: bool, record: EpisodeRecord) -> None:
        """Camera frame and planner handshake of this tick (see cosmos_ros/sim/lockstep.py)."""
        cfg = self.cfg
        assert cfg is not None
        if not cfg.lockstep:
            if frame_due:
                self._publish_frame()
            return
        if link.release_due(self._clock_ns):
            self._await_planner(link, record)
        elif frame_due and link.state is LinkState.IDLE:
            link.frame_sent(self._clock_ns)
            self._publish_frame()
            self._await_planner(link, record)

    def _await_planner(self, link: PlannerLink, record: EpisodeRecord) -> None:
        """Wait (time frozen) for the report on the current frame and the safety decision on its plan."""
        frame_ns = link.frame_ns
        ok = self._wait(
            lambda: any(r.event != "goal" and r.frame_stamp_ns == frame_ns for r in self.box.reports)
        )
        if not ok:
            record.lockstep_timeouts += 1
            link.state = LinkState.IDLE  # the planner failed; carry on without it
            return
        with self.box.cond:
            report = next(r for r in self.box.reports if r.event != "goal" and r.frame_stamp_ns == frame_ns)
            self.box.reports.remove(report)
        try:
            plan_id = link.on_report(report)
        except LockstepError as exc:
            self._log_throttled("lockstep", f"lockstep: {exc}")
            record.lockstep_timeouts += 1
            return
        if plan_id is None:
            return
        if not self._wait(lambda: plan_id in self.box.decisions):
            record.lockstep_timeouts += 1
        elif self.box.decisions[plan_id].decision != SafetyStatus.DECISION_REJECTED:
            record.switch_ticks.append(len(record.setpoints))

    def _drain_planner(self, link: PlannerLink) -> None:
        """Episode over with a plan held: withdraw the goal (the planner drops the plan); await its report."""
        self._send_goal("")
        frame_ns = link.frame_ns
        self._wait(lambda: any(r.event == "done" and r.frame_stamp_ns == frame_ns for r in self.box.reports))
        link.state = LinkState.IDLE

    def _send_goal(self, goal: str) -> None:
        """Publish the goal; in lockstep, until the planner acknowledges it (time does not run meanwhile)."""
        cfg = self.cfg
        assert cfg is not None
        msg = String(data=goal)
        self._pub_goal.publish(msg)
        if not cfg.lockstep:
            return
        ok = self._wait(
            lambda: any(r.event == "goal" and r.goal == goal for r in self.box.reports),
            resend=lambda: self._pub_goal.publish(msg),
            retry_s=0.2,
        )
        with self.box.cond:
            self.box.reports = [r for r in self.box.reports if r.event != "goal"]
        if not ok and self._record is not None:
            self._record.lockstep_timeouts += 1

    def _wait(
        self,
        predicate: Callable[[], bool],
        resend: Callable[[], Any] | None = None,
        retry_s: float | None = None,
    ) -> bool:
        """Wait for ``predicate`` (mailbox lock held); re-send every ``retry_s`` (wall); False on timeout."""
        cfg = self.cfg
        assert cfg is not None
        deadline = time.monotonic() + cfg.lockstep_timeout_s
        retry = cfg.tick_retry_s if retry_s is None else retry_s
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                self._log_throttled("timeout", "lockstep wait timed out (a node did not answer); carrying on")
                return False
            if self.box.wait(lambda: predicate() or self._stop.is_set(), min(retry, left)):
                return not self._stop.is_set()
            if resend is not None:
                resend()
        return False

    def _setpoints_complete(self) -> bool:
        cfg = self.cfg
        assert cfg is not None
        if "float64_multi_array" in cfg.command_interfaces and not self.box.multi:
            return False
        return "float64_per_axis" not in cfg.command_interfaces or all(self.box.per_axis.values())

    def _apply_setpoints(self) -> bool:
        """Hand what arrived to the controller layer (refusals counted, logged throttled); True if new."""
        sim = self.sim
        assert sim is not None
        with self.box.cond:
            multi, self.box.multi = self.box.multi, []
            axes = {n: list(v) for n, v in self.box.per_axis.items() if v}  # copies: cleared below
            for v in self.box.per_axis.values():
                v.clear()
        commands = [(list(JOINT_NAMES), values) for values in multi]
        commands += [([name], values) for name, seq in axes.items() for values in ([x] for x in seq)]
        for names, values in commands:
            refusal = sim.command(names, values)
            if refusal is not None:
                self._refusals[refusal.reason] += 1
                self._log_throttled(
                    f"refused:{refusal.reason}", f"setpoint refused ({refusal.reason}): {refusal.detail}"
                )
        return bool(commands)

    def _set_safety(self, transition: int) -> None:
        """Deactivate / activate the safety node (it soft-starts from the measured state on activation)."""
        cfg = self.cfg
        if cfg is None or not cfg.safety_node_name:
            return
        if not self._cli_get.wait_for_service(timeout_sec=cfg.lockstep_timeout_s):
            self._log_throttled("safety", f"safety node {cfg.safety_node_name!r} not found; not re-activated")
            return
        label = self._call(self._cli_get, GetState.Request())
        current = getattr(getattr(label, "current_state", None), "label", "")
        wanted = {Transition.TRANSITION_DEACTIVATE: "active", Transition.TRANSITION_ACTIVATE: "inactive"}[
            transition
        ]
        if current != wanted:
            return
        request = ChangeState.Request()
        request.transition.id = transition
        result = self._call(self._cli_change, request)
        if result is None or not result.success:
            self._log_throttled("safety", f"safety node transition {transition} failed")

    def _call(self, client: Any, request: Any) -> Any:
        future = client.call_async(request)
        cfg = self.cfg
        assert cfg is not None
        deadline = time.monotonic() + cfg.lockstep_timeout_s
        while not future.done() and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.005)
        return future.result() if future.done() else None

    # ---- publishing ----------------------------------------------------------------------------------------
    def _stamp(self) -> Any:
        return _ns_to_time(self._clock_ns)

    def _publish_clock(self, pub: Any) -> None:
        pub.publish(Clock(clock=self._stamp()))

    def _publish_joints(self) -> None:
        sim = self.sim
        assert sim is not None
        msg = JointState()
        msg.header.stamp = self._stamp()
        msg.name = list(JOINT_NAMES)
        msg.position = [float(v) for v in sim.joint_positions()]
        msg.velocity = [float(v) for v in sim.joint_velocities()]
        self._pub_joints.publish(msg)

    def _publish_frame(self) -> None:
        sim = self.sim
        assert sim is not None
        rgb = sim.render()
        img = Image()
        img.header.stamp = self._stamp()
        img.header.frame_id = "sim_camera"
        img.height, img.width = rgb.shape[:2]
        img.encoding, img.is_bigendian, img.step = "rgb8", 0, rgb.shape[1] * 3
        img.data = rgb.tobytes()
        self._pub_image.publish(img)
        fx, fy, cx, cy = sim.camera_intrinsics()
        info = CameraInfo()
        info.header = img.header
        info.height, info.width = img.height, img.width
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        self._pub_info.publish(info)

    def _publish_episode(self, phase: int, elapsed_s: float) -> None:
        sim, record = self.sim, self._record
        assert sim is not None and sim.episode is not None and record is not None
        msg = SimEpisode()
        msg.header.stamp = self._stamp()
        msg.phase, msg.seed, msg.goal = phase, sim.episode.seed, record.goal
        msg.start_time = _ns_to_time(getattr(self, "_start_ns", 0))
        msg.elapsed_s = float(elapsed_s)
        msg.time_to_success_s = -1.0 if sim.success_time_s is None else float(sim.success_time_s)
        msg.goal_distance_m = sim.goal_distance()
        msg.success_distance_m = sim.config.task.success_distance_m
        msg.object_names = list(sim.episode.cubes)
        msg.object_positions = [Point(x=p[0], y=p[1], z=p[2]) for p, _ in sim.episode.cubes.values()]
        refusals = sim.gate.refusals if sim.gate else Counter()
        msg.refusal_reasons = sorted(refusals)
        msg.refusal_counts = [int(refusals[r]) for r in msg.refusal_reasons]
        msg.lockstep_timeouts = record.lockstep_timeouts
        self._pub_episode.publish(msg)

    def _publish_diagnostics(self) -> None:
        report = sim_diagnostics(self._clock_ns * 1e-9, self._episodes_done, self._successes, self._refusals)
        arr = DiagnosticArray()
        arr.header.stamp = self._stamp()
        arr.status = [report_to_status(report, f"{self.get_name()}: simulation", "pybullet")]
        self._pub_diag.publish(arr)

    def _log_throttled(self, key: str, text: str) -> None:
        cfg = self.cfg
        period = cfg.log_throttle_s if cfg else 5.0
        now = time.monotonic()
        if now - self._log_times.get(key, -math.inf) >= period:
            self._log_times[key] = now
            self.get_logger().warning(text)


def _time_ns(t: Any) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def _ns_to_time(ns: int) -> Any:
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def main(args: list[str] | None = None) -> int:
    """Entry point (``ros2 run cosmos_ros sim_node``); exit codes as :func:`~cosmos_ros.nodes.spin.run_nodes`.

    With ``exit_when_done`` the process also ends (0) once the episodes are over.
    """
    nodes: list[SimNode] = []

    def make() -> list[SimNode]:
        nodes.append(SimNode())
        return nodes

    def done() -> bool:
        node = nodes[0]
        return bool(node.get_parameter("exit_when_done").value) and node.done.is_set()

    # Two threads: the episode loop waits on services of other nodes while this node's callbacks must run.
    return run_nodes(
        make, name=NODE_NAME, args=args, make_executor=lambda: MultiThreadedExecutor(2), done=done
    )


if __name__ == "__main__":
    import sys

    sys.exit(main())
