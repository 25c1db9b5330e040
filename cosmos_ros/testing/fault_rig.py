"""A test rig for faults of real processes: the safety node and the expert planner as processes over DDS, the
robot (the sim's PID controllers and physics, ``cosmos_ros.sim.scene.PandaSim``) inside the rig, and time
stepped by the rig.

Why the robot lives in the rig and not in the sim node: the rig must keep stepping the robot while a node it
talks to is killed, frozen or restarting, and must decide *at which sim tick* a fault happens. The sim node's
lockstep waits for the planner and the safety node (and can only time out on them); the rig knows which
process it broke and stops waiting for exactly that one, so a run is the same on a loaded or an idle machine.

Per tick ``t`` (sim time; the ROS time published is ``t`` plus the clock offset a clock-jump fault sets):

1. publish ``joint_states(t)`` and ``/clock(t)``; while the safety node is expected to stream, wait for its
   one setpoint of this tick (``forward_position_controller/commands``), then hand it to the sim's setpoint
   gate (the PID controllers' input, with its command time-out);
2. publish ``t`` on the planner's clock topic (the planner's ``/clock`` is remapped to it, so it sees ``t``
   only after the safety node ticked at ``t``, as in ``cosmos_ros/sim/lockstep.py``);
3. every ``frame_every`` ticks publish a camera frame stamped ``t``; while the planner is expected to answer,
   wait for its report on that frame and for the safety node's decision on the plan it published;
4. step the physics by one tick.

Every wait has a timeout; a wait that times out is counted in the trace (a deterministic run has none).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, String

from cosmos_ros.images import rgb_to_compressed
from cosmos_ros.msg import ActionSequence, PlannerState, SafetyStatus, SimEpisode
from cosmos_ros.sim.config import JOINT_NAMES, load_sim_config
from cosmos_ros.sim.scene import PandaSim
from cosmos_ros.testing.ros_harness import NodeProcess, Recorder, TestPeer, wait_active, wait_until

PLANNER_CLOCK = "/rig/planner_clock"
COMMANDS = "/forward_position_controller/commands"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(
    depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
DEEP = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class RigConfig:
    """Timing of the rig.

    Attributes:
        limits_file: safety limits YAML given to the safety node.
        seed: episode seed (cube positions, start pose).
        start_s: ROS time of tick 0 (s); far from 0 so a backwards clock jump stays positive.
        frame_every: ticks between camera frames (plans).
        wait_s: wall seconds any single wait may take before it is counted as timed out.
        settle_s: wall seconds between joint_states(t) and /clock(t) (the one un-acknowledged input; see
            ``cosmos_ros/sim/lockstep.py``).
        image_size: side of the (blank) camera image; the expert planner does not look at it.
        safety_params: extra safety node parameters.
        planner_prefix: command prefix of the planner process (e.g. ``ip netns exec <ns>``: another host).
        compressed: camera frames as ``sensor_msgs/CompressedImage`` (JPEG) on ``image_raw/compressed``, as
            a camera on another host than the planner should send them.
        link_device: network device of the link to the planner's host (``set_link`` takes it down / up).
    """

    limits_file: str
    seed: int = 1_000_000
    start_s: float = 100.0
    frame_every: int = 20
    wait_s: float = 30.0
    settle_s: float = 0.005
    image_size: int = 32
    safety_params: dict[str, Any] = field(default_factory=dict)
    planner_prefix: tuple[str, ...] = ()
    compressed: bool = False
    link_device: str = ""

    def __post_init__(self) -> None:
        if self.frame_every < 1:
            raise ValueError(f"frame_every must be >= 1, got {self.frame_every}")
        if not self.wait_s > 0:
            raise ValueError(f"wait_s must be > 0, got {self.wait_s}")
        if not self.start_s >= 10.0:
            raise ValueError(f"start_s must be >= 10 s (room for a backwards jump), got {self.start_s}")


@dataclass
class PrefixedProcess(NodeProcess):
    """A node process started under a command prefix (``ip netns exec <ns>``, which execs: same pid)."""

    prefix: tuple[str, ...] = ()

    def command(self) -> list[str]:
        return [*self.prefix, *super().command()]


@dataclass
class Tick:
    """One rig tick: sim time, the ROS time published, the safety node's setpoint (None: none came), and
    what the robot did."""

    k: int
    sim_s: float
    ros_ns: int
    setpoint: np.ndarray | None
    measured: np.ndarray
    velocity: np.ndarray
    gate_holding: bool
    segment: int  # which safety node process produced the setpoint (0, 1, ... after restarts)


@dataclass
class Trace:
    """What a rig run recorded (plain data; analysed by ``cosmos_ros.tools.fault_injection``)."""

    tick_s: float
    ticks: list[Tick] = field(default_factory=list)
    statuses: list[tuple[int, Any]] = field(default_factory=list)  # (rig tick at receipt, SafetyStatus)
    plans: list[tuple[int, Any]] = field(default_factory=list)  # (rig tick at receipt, ActionSequence)
    timeouts: dict[str, int] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)  # setpoints the sim's controller gate refused
    handshakes: list[tuple[int, int]] = field(default_factory=list)  # (tick, plan_id) of handshake plans
    events: list[tuple[int, str]] = field(default_factory=list)  # (tick, what the rig did)


def _time(ns: int) -> Any:
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _ns(t: Any) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


class FaultRig:
    """See the module docstring. Use as a context manager; ``up()`` starts the nodes and the episode."""

    def __init__(self, domain_id: int, config: RigConfig, env: dict[str, str] | None = None) -> None:
        self.cfg = config
        self.domain_id = domain_id
        self.env = env
        self.sim = PandaSim(load_sim_config())
        self.episode = self.sim.reset(config.seed)
        self.tick_s = self.sim.config.tick_s
        self.tick_ns = round(self.tick_s * 1e9)
        self.trace = Trace(self.tick_s)
        self.k = 0
        self.offset_ns = 0
        self.safety: NodeProcess | None = None
        self.planners: list[NodeProcess] = []
        self.safety_streams = False  # the rig waits for a setpoint each tick
        self.planner_answers = False  # the rig waits for a report on each frame
        self.segment = 0
        self._jump_tick = False  # the tick after a backwards /clock jump (rcl timers skip it: see _tick)
        self._newest_frame_ns = -1
        self._fresh_safety = False  # a restarted safety node: the planner may not have discovered it yet
        self.peer = TestPeer(domain_id, name="fault_rig")
        p = self.peer
        self.pub_clock = p.publisher(Clock, "/clock", RELIABLE)
        self.pub_pclock = p.publisher(Clock, PLANNER_CLOCK, RELIABLE)
        self.pub_joints = p.publisher(JointState, "/joint_states", RELIABLE)
        self.pub_image = p.publisher(Image, "/image_raw", RELIABLE)
        self.pub_compressed = p.publisher(CompressedImage, "/image_raw/compressed", RELIABLE)
        self.pub_goal = p.publisher(String, "/goal", LATCHED)
        self.pub_episode = p.publisher(SimEpisode, "/sim_episode", LATCHED)
        self.setpoints = p.record(Float64MultiArray, COMMANDS, DEEP)
        self.reports = p.record(PlannerState, "/planner_state", DEEP)
        self._statuses = Recorder()
        p.node.create_subscription(SafetyStatus, "/safety_status", self._on_status, DEEP)
        p.node.create_subscription(ActionSequence, "/action_sequence", self._on_plan, DEEP)

    # ---- processes ---------------------------------------------------------------------------------------
    def _on_status(self, msg: SafetyStatus) -> None:
        self.trace.statuses.append((self.k, msg))
        self._statuses(msg)

    def _on_plan(self, msg: ActionSequence) -> None:
        self.trace.plans.append((self.k, msg))

    def safety_process(self) -> NodeProcess:
        params = {
            "use_sim_time": True,
            "limits_file": self.cfg.limits_file,
            "output_adapters": ["float64_multi_array"],
            "diagnostics_period_s": 1.0,
            **self.cfg.safety_params,
        }
        return NodeProcess("cosmos_ros.nodes.safety_node", self.domain_id, params=params, env=self.env)

    def planner_process(self) -> NodeProcess:
        params = {
            "use_sim_time": True,
            "model_path": "scripted_expert",
            "action_space": "arm7_joints",
            "camera_topics": ["image_raw"],
            "publish_state": True,
            "max_plan_rate_hz": 100.0,
            "seed": 0,
        }
        if self.cfg.compressed:
            params.update(camera_topics=["image_raw/compressed"], compressed=True)
        return PrefixedProcess(
            "cosmos_ros.nodes.expert_planner_node",
            self.domain_id,
            params=params,
            remaps={"/clock": PLANNER_CLOCK},
            env=self.env,
            prefix=self.cfg.planner_prefix,
        )

    def up(self) -> None:
        """Start the safety node and one planner, publish the episode and goal, stream the first setpoint."""
        self.safety = self.safety_process().start()
        self.planners = [self.planner_process().start()]
        self._publish_episode()
        if not wait_active(self.peer, "safety_node", 120):
            raise RuntimeError("safety node not active:\n" + self.safety.output()[-3000:])
        self.start_planner_wait(self.planners[0])
        self.await_first_setpoint()

    def start_planner_wait(self, planner: NodeProcess) -> None:
        """Wait (sim time frozen) until ``planner`` is active and has acknowledged the goal."""
        goal = self.episode.goal_text
        n0 = len(self.reports)
        deadline = time.monotonic() + 180.0
        ok = False
        while not ok and time.monotonic() < deadline:
            # Re-sent until acknowledged: a report published before discovery matched is lost (volatile).
            self.pub_goal.publish(String(data=goal))
            ok = wait_until(
                lambda: any(
                    r.event == PlannerState.EVENT_GOAL and r.goal == goal for r in self.reports.messages[n0:]
                ),
                0.5,
                period=0.02,
            )
        if not ok:
            raise RuntimeError("planner did not take the goal:\n" + planner.output()[-3000:])
        self._handshake(planner)
        self.planner_answers = True

    def _handshake(self, planner: NodeProcess) -> None:
        """Wait (time frozen) until a plan of ``planner`` reaches the safety node, so that no plan of the run
        is lost to discovery (a volatile plan published before the planner matched the safety node's
        subscription is dropped). The frames are stamped 1 s in the past: the safety node rejects those plans
        as stale, so the handshake never moves the robot."""
        base = round(self.cfg.start_s * 1e9) + self.k * self.tick_ns + self.offset_ns - 1_000_000_000
        for i in range(300):
            if self._handshake_once(base + i * 1_000_000):
                # Plans of earlier tries whose report came late are handshake plans too.
                stamps = {base + j * 1_000_000 for j in range(i + 1)}
                self.trace.handshakes += [
                    (self.k, int(r.plan_id)) for r in self.reports.messages
                    if _ns(r.frame_stamp) in stamps and int(r.plan_id) > 0
                ]  # fmt: skip
                return
        raise RuntimeError("no plan of the planner reached the safety node:\n" + planner.output()[-3000:])

    def await_first_setpoint(self) -> None:
        """Step ROS time (robot, frames and trace standing still) until the (new) safety node streams.

        How long DDS discovery takes then never changes what happens at a given sim time. Which clock step
        produced the first setpoint is read from the node's state-change status (stamped with the tick that
        changed state), so a setpoint arriving after the short per-step wait is never taken for a later
        tick's.
        """
        n_status, n_sp = len(self._statuses), len(self.setpoints)

        def first_state() -> Any:
            return next(
                (m for m in self._statuses.messages[n_status:]
                 if int(m.plan_id) == 0 and int(m.output_state) in (1, 2, 3, 4)),
                None,
            )  # fmt: skip

        for _ in range(3000):
            self.offset_ns += self.tick_ns
            ros_ns = self._publish_state_and_clock()
            if wait_until(lambda: first_state() is not None, 0.2, period=0.002):
                break
        else:
            raise RuntimeError(
                "the safety node never streamed:\n" + (self.safety.output()[-3000:] if self.safety else "")
            )
        first_ns = _ns(first_state().header.stamp)
        expected = n_sp + (ros_ns - first_ns) // self.tick_ns + 1  # one setpoint per step since the first
        if not wait_until(lambda: len(self.setpoints) >= expected, self.cfg.wait_s, period=0.002):
            raise RuntimeError(f"expected {expected - n_sp} setpoints from the new safety node")
        self.safety_streams = True
        self._finish_tick(ros_ns, np.asarray(self.setpoints.messages[expected - 1].data, dtype=float))

    def _publish_episode(self) -> None:
        ep = self.episode
        from geometry_msgs.msg import Point

        msg = SimEpisode()
        msg.phase, msg.seed, msg.goal = SimEpisode.PHASE_RUNNING, ep.seed, ep.goal_text
        msg.object_names = list(ep.cubes)
        msg.object_positions = [Point(x=p[0], y=p[1], z=p[2]) for p, _ in ep.cubes.values()]
        self.pub_episode.publish(msg)
        self.pub_goal.publish(String(data=ep.goal_text))

    # ---- faults ------------------------------------------------------------------------------------------
    def event(self, text: str) -> None:
        self.trace.events.append((self.k, text))

    @staticmethod
    def signal(proc: NodeProcess, sig: int) -> None:
        assert proc.proc is not None
        os.kill(proc.proc.pid, sig)

    def kill_planner(self, index: int = 0) -> None:
        self.signal(self.planners[index], signal.SIGKILL)
        self.planners[index].wait_exit(10)
        self.planner_answers = False
        self.event("planner SIGKILL")

    def freeze_planner(self, index: int = 0) -> None:
        self.signal(self.planners[index], signal.SIGSTOP)
        self.planner_answers = False
        self.event("planner SIGSTOP")

    def resume_planner(self, index: int = 0, answers: bool = True) -> None:
        self.signal(self.planners[index], signal.SIGCONT)
        self.planner_answers = answers
        self.event("planner SIGCONT")

    def new_planner(self) -> NodeProcess:
        """A new planner process with the same node name (a new DDS participant); time frozen meanwhile."""
        proc = self.planner_process().start()
        self.planners.append(proc)
        self.event("planner process started")
        self.start_planner_wait(proc)
        return proc

    def kill_safety(self) -> None:
        assert self.safety is not None
        self.signal(self.safety, signal.SIGKILL)
        self.safety.wait_exit(10)
        self.safety_streams = False
        self.event("safety SIGKILL")

    def restart_safety(self) -> None:
        """A new safety node process (time frozen while it starts), then stream again."""
        self.segment += 1
        self.safety = self.safety_process().start()
        self._fresh_safety = True
        self.event("safety process started")
        if not wait_active(self.peer, "safety_node", 120):
            raise RuntimeError("restarted safety node not active:\n" + self.safety.output()[-3000:])
        self.await_first_setpoint()

    def set_link(self, up: bool) -> None:
        """Cut (``up=False``) or restore the link to the planner's host: ``ip link set <dev> down|up``."""
        import subprocess

        if not self.cfg.link_device:
            raise RuntimeError("set_link needs RigConfig.link_device")
        subprocess.run(["ip", "link", "set", self.cfg.link_device, "up" if up else "down"], check=True)
        self.planner_answers = up
        self.event(f"link {'restored' if up else 'cut'}")

    def jump_clock(self, delta_s: float) -> None:
        self.offset_ns += round(delta_s * 1e9)
        self._jump_tick = delta_s < 0
        self.event(f"/clock jumps {delta_s:+g} s")

    # ---- stepping ----------------------------------------------------------------------------------------
    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / self.tick_s)):
            self._tick(wait_setpoint_s=self.cfg.wait_s if self.safety_streams else 0.0)

    def _publish_state_and_clock(self) -> int:
        """Publish joint_states and /clock of the current tick; returns its ROS time (ns)."""
        sim = self.sim
        ros_ns = round(self.cfg.start_s * 1e9) + self.k * self.tick_ns + self.offset_ns
        js = JointState(name=list(JOINT_NAMES))
        js.header.stamp = _time(ros_ns)
        js.position = [float(v) for v in sim.joint_positions()]
        js.velocity = [float(v) for v in sim.joint_velocities()]
        self.pub_joints.publish(js)
        time.sleep(self.cfg.settle_s)
        self.pub_clock.publish(Clock(clock=_time(ros_ns)))
        return ros_ns

    def _tick(self, wait_setpoint_s: float) -> None:
        """One tick (see the module docstring)."""
        n0 = len(self.setpoints)
        ros_ns = self._publish_state_and_clock()
        setpoint = None
        jump_tick, self._jump_tick = self._jump_tick, False
        if jump_tick and wait_setpoint_s > 0:
            # An rcl timer on ROS time re-arms itself on a backwards jump (next call = now + period), so the
            # safety node does not tick at the first stamp after the jump; a short look, not a timeout.
            wait_setpoint_s = 0.5
        if wait_setpoint_s > 0:
            if wait_until(lambda: len(self.setpoints) > n0, wait_setpoint_s, period=0.001):
                setpoint = np.asarray(self.setpoints.messages[n0].data, dtype=float)
            elif jump_tick:
                self.event("no setpoint at the first tick after the backwards jump")
            elif self.safety_streams:
                self._timeout("setpoint")
        self._finish_tick(ros_ns, setpoint)

    def _finish_tick(self, ros_ns: int, setpoint: np.ndarray | None) -> None:
        """Setpoint to the controllers, planner clock, camera frame, physics step, trace."""
        sim = self.sim
        if setpoint is not None:
            refusal = sim.command(list(JOINT_NAMES), setpoint)
            if refusal is not None:  # the sim's gate refused it (and kept holding): counted apart
                self.trace.refusals[refusal.reason] = self.trace.refusals.get(refusal.reason, 0) + 1
        stamp = _time(ros_ns)
        self.pub_pclock.publish(Clock(clock=stamp))
        if self.k % self.cfg.frame_every == 0:
            self._frame(stamp, ros_ns)
        sim.tick()
        assert sim.gate is not None
        self.trace.ticks.append(
            Tick(self.k, self.k * self.tick_s, ros_ns, setpoint, sim.joint_positions(),
                 sim.joint_velocities(), bool(sim.gate.holding.all()), self.segment)
        )  # fmt: skip
        self.k += 1

    def _handshake_once(self, ns: int) -> bool:
        """One handshake frame stamped ``ns``: True if its plan got a decision from the safety node."""
        n_rep, n_status = len(self.reports), len(self._statuses)
        self._publish_frame(_time(ns))

        def report() -> Any:
            return next(
                (r for r in self.reports.messages[n_rep:]
                 if r.event == PlannerState.EVENT_DONE and _ns(r.frame_stamp) == ns),
                None,
            )  # fmt: skip

        if not wait_until(lambda: report() is not None, 5.0, period=0.005):
            return False
        plan_id = int(report().plan_id)
        return plan_id > 0 and wait_until(
            lambda: any(int(m.plan_id) == plan_id for m in self._statuses.messages[n_status:]),
            1.0,
            period=0.005,
        )

    def _frame(self, stamp: Any, ros_ns: int) -> None:
        self._publish_frame(stamp)
        # The planner refuses a frame not newer than one it holds (out of order, after a backwards /clock
        # jump) and reports nothing on it: no wait for those.
        newer, self._newest_frame_ns = ros_ns > self._newest_frame_ns, max(ros_ns, self._newest_frame_ns)
        if not self.planner_answers or not newer:
            return
        self._await_plan(ros_ns)

    def _publish_frame(self, stamp: Any) -> None:
        n = self.cfg.image_size
        if self.cfg.compressed:
            fmt, data = rgb_to_compressed(np.zeros((n, n, 3), dtype=np.uint8), "jpeg")
            cimg = CompressedImage(format=fmt, data=data)
            cimg.header.stamp, cimg.header.frame_id = stamp, "rig_camera"
            self.pub_compressed.publish(cimg)
        else:
            img = Image(height=n, width=n, encoding="rgb8", is_bigendian=0, step=3 * n)
            img.header.stamp, img.header.frame_id = stamp, "rig_camera"
            img.data = bytes(3 * n * n)
            self.pub_image.publish(img)

    def _await_plan(self, ros_ns: int) -> None:
        """The planner's report on the frame stamped ``ros_ns``, and the safety decision on its plan."""

        def report() -> Any:
            return next(
                (r for r in self.reports.messages
                 if r.event == PlannerState.EVENT_DONE and _ns(r.frame_stamp) == ros_ns),
                None,
            )  # fmt: skip

        if not wait_until(lambda: report() is not None, self.cfg.wait_s, period=0.002):
            self._timeout("planner_report")
            return
        plan_id = int(report().plan_id)
        if plan_id > 0 and self.safety_streams:
            done = wait_until(
                lambda: any(int(s.plan_id) == plan_id for s in self._statuses.messages[-50:]),
                min(self.cfg.wait_s, 5.0) if self._fresh_safety else self.cfg.wait_s,
                period=0.002,
            )
            if done:
                self._fresh_safety = False
            elif self._fresh_safety:
                # DDS discovery of a new participant is not synchronous: a plan published before the
                # planner matched the new node's subscription is lost (volatile). An outcome, not a fault.
                self.event(f"plan {plan_id} not received by the new safety node (discovery)")
            else:
                self._timeout("safety_decision")

    def _timeout(self, what: str) -> None:
        self.trace.timeouts[what] = self.trace.timeouts.get(what, 0) + 1

    # ---- teardown ----------------------------------------------------------------------------------------
    def logs(self) -> str:
        procs = ([self.safety] if self.safety else []) + self.planners
        return "\n".join(f"--- {p.module}\n{p.output()[-2500:]}" for p in procs)

    def close(self) -> None:
        for p in self.planners:
            if p.alive():
                with contextlib.suppress(ProcessLookupError):
                    self.signal(p, signal.SIGCONT)  # a stopped process cannot handle SIGINT
            p.stop(timeout=5)
        if self.safety is not None:
            self.safety.stop(timeout=5)
        self.peer.close()
        self.sim.close()

    def __enter__(self) -> FaultRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_limits_file() -> str:
    """The package's arm limits (installed share dir, or the source checkout)."""
    from cosmos_ros.tools.eval_closed_loop import _limits_path

    return str(_limits_path())


__all__ = ["FaultRig", "RigConfig", "Tick", "Trace", "default_limits_file"]
