"""The safety-bounds node: the only path from a plan to a controller topic.

A thin rclpy layer over ``cosmos_ros.safety`` (the pure-Python core that checks, clamps, schedules and
watches). This module only converts messages, keeps time, publishes, and survives: every check and clamp lives
in the core, so it is unit-tested without a ROS graph and this node cannot drift from it.

Lifecycle (``rclpy.lifecycle``, Humble..Kilted):

- ``configure``: reads the parameters, loads and validates the limits file, builds the supervisor and the
  publishers/subscriptions. A bad limits file is logged at ERROR and the transition FAILS (the node stays
  unconfigured); with ``autostart`` the process then exits with status 1 so a launch file ends on it.
- ``activate``: the supervisor starts from the *measured* state (soft start) and the control-rate timer
  streams setpoints.
- ``deactivate``: the timer stops; nothing more is sent, so the controllers hold their last setpoint.
- ``cleanup``/``shutdown``: everything made in configure is destroyed.

Threads: the control-rate timer runs on its own executor and thread (``Ticker``; why not a callback group of
a MultiThreadedExecutor is measured and explained there); plans, measured state, e-stop, reset and
diagnostics run in one mutually exclusive callback group on the node's executor. So checking a plan never
delays a tick beyond the GIL's switch interval. The supervisor is shared between the two threads and is only
touched under ``self._core_lock`` (held for the core call only, never while publishing).

Errors: every callback catches its exceptions, logs them (throttled) and counts them under ``internal_error``
in the diagnostics. A tick that fails publishes nothing (the controllers hold); a plan that cannot be
converted or checked is rejected, reported, and sends nothing.

E-stop reset: ``~/reset_estop`` (``std_srvs/Trigger``). A service, not a topic, so the caller learns whether
the reset was accepted and a stale latched message on a topic can never clear a stop.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import (
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterUninitializedException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from cosmos_ros.msg import ActionSequence, SafetyStatus
from cosmos_ros.nodes.conversions import msg_to_plan, report_to_status
from cosmos_ros.nodes.output_adapters import OutputAdapter, make_adapters
from cosmos_ros.nodes.parameters import declarations
from cosmos_ros.nodes.spin import bring_up, run_nodes
from cosmos_ros.nodes.ticker import Ticker
from cosmos_ros.safety import (
    Decision,
    PlanDecision,
    SafetyLimits,
    SafetySupervisor,
    SupervisorConfig,
    SupervisorCounters,
    load_limits,
)
from cosmos_ros.safety.diagnostics import NodeCounters, RateWindow, SafetySnapshot, safety_diagnostics
from cosmos_ros.safety.intervals import IntervalHistogram
from cosmos_ros.safety.measured import MeasuredState
from cosmos_ros.safety_node_config import SCHEMA, config_from_parameters

# --- QoS -------------------------------------------------------------------------------------------------
# Plans: reliable (a plan is a unit; losing one silently would look like a stall), shallow queue (an old plan
# is about to be superseded anyway), volatile (a plan from before we started is stale by definition).
PLAN_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
# E-stop: reliable, volatile. Volatile on the subscriber side matches both volatile and transient-local
# publishers; a best-effort e-stop publisher is refused by design (an e-stop must not be droppable).
ESTOP_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Controller topics: what ros2_control's forward_command_controller / JointTrajectoryController subscribe
# with (rclcpp::SystemDefaultsQoS: reliable, keep last 10).
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
STATUS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
# Measured state: qos_profile_sensor_data (best effort) is compatible with reliable and best-effort
# publishers alike (joint_state_broadcaster publishes reliable, many drivers best effort).
STATE_QOS = qos_profile_sensor_data

OUTPUT_STATE_NAMES = {
    SafetyStatus.OUTPUT_IDLE: "idle",
    SafetyStatus.OUTPUT_STREAMING: "streaming",
    SafetyStatus.OUTPUT_HOLDING: "holding",
    SafetyStatus.OUTPUT_DECELERATING: "decelerating",
    SafetyStatus.OUTPUT_ESTOP: "estop",
}


SHIPPED_LIMITS_DIR = Path("config/limits")  # relative to the share directory: one YAML per action space


def resolve_limits_path(name: str, share_dir: Callable[[], str]) -> Path:
    """An absolute path as is; a relative one against the package share directory (``config/limits/...``).

    Args:
        name: the ``limits_file`` parameter.
        share_dir: returns the package share directory (``get_package_share_directory('cosmos_ros')``);
            a function so that it is only looked up when needed and tests can pass their own.

    Raises:
        ValueError: empty name.
        FileNotFoundError: ``config/limits/<space>.yaml`` (what the launch file derives from ``action_space``)
            does not exist: the message says the action space is unknown and lists the ones with limits.
    """
    if not name:
        raise ValueError("limits_file must name a limits YAML file, got ''")
    p = Path(name)
    if p.is_absolute():
        return p
    path = Path(share_dir()) / p
    if not path.exists() and p.parent == SHIPPED_LIMITS_DIR:
        valid = sorted(f.stem for f in path.parent.glob("*.yaml"))
        raise FileNotFoundError(
            f"unknown action space {p.stem!r}; valid: {', '.join(valid) or '(none)'} "
            f"(no limits file {path}; pass limits_file for your own)"
        )
    return path


def _share_dir() -> str:
    from ament_index_python.packages import get_package_share_directory

    return str(get_package_share_directory("cosmos_ros"))


# name -> (default, or a Parameter.Type for "unset unless given"; descriptor), from schemas/safety_node.yaml.
# Read in on_configure only; config/safety.yaml is generated from the same schema.
PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = declarations(SCHEMA)


class SafetyNode(LifecycleNode):
    """Lifecycle node streaming checked setpoints; see the module docstring.

    Args:
        node_name: ROS node name.
        **kwargs: passed to ``rclpy.lifecycle.Node`` (e.g. ``context``, ``parameter_overrides``).
    """

    def __init__(self, node_name: str = "safety_node", *, tick_thread: bool = True, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        # False: the control-rate timer is a plain timer of this node in its own mutually exclusive callback
        # group, run by whatever executor spins the node. Kept only so bench_jitter can measure the
        # difference (see Ticker); the node and main() always use the dedicated thread.
        self._tick_thread = tick_thread
        self._core_lock = threading.Lock()
        self._io_group = MutuallyExclusiveCallbackGroup()
        # Before declaring: a bad parameter override raises there, and rclpy then still destroys this node.
        self._reset_state()
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        # After declaring: the callback refuses changes that would silently not apply (see _on_set_params).
        self.add_on_set_parameters_callback(self._on_set_params)

    # --- state made in configure and freed in cleanup ------------------------------------------------
    def _reset_state(self) -> None:
        self._configured = False
        self.finalized = False  # set by on_shutdown; main() then ends the process (nodes/spin.py)
        self._active = False
        self._supervisor: SafetySupervisor | None = None
        self._limits: SafetyLimits | None = None
        self._measured: MeasuredState | None = None
        self._adapters: list[OutputAdapter] = []
        self._made_lifecycle_pubs: list[Any] = []
        self._made_pubs: list[Any] = []
        self._made_subs: list[Any] = []
        self._made_services: list[Any] = []
        self._made_timers: list[Any] = []
        self._ticker: Ticker | None = None
        self._tick_timer: Any = None
        self._status_pub: Any = None
        self._diag_pub: Any = None
        self._shadow = False
        self._period_s = 0.01
        # Node-side counters (the core counts its own decisions, see SupervisorCounters).
        self._errors: Counter[str] = Counter()
        self._node_rejections: Counter[str] = Counter()  # plans the core never saw (malformed message)
        self._measured_rejected = 0
        self._published_state: tuple[int, bool] = (-1, False)
        self._hist_total = IntervalHistogram()
        self._hist_window = IntervalHistogram()
        self._last_tick_perf: float | None = None
        self._last_diag_perf = time.perf_counter()
        self._window_ticks = 0
        self._window_setpoints = 0
        self._window_plans = 0
        self._setpoints_sent = 0
        self._log_times: dict[str, float] = {}

    # --- parameters ----------------------------------------------------------------------------------
    def _on_set_params(self, params: list[Any]) -> SetParametersResult:
        # Ours are read on configure only; a change while configured would silently not apply, so refuse it.
        # Parameters of rclpy itself (use_sim_time, ...) are not ours to police.
        ours = [p.name for p in params if p.name in PARAMETERS]
        if self._configured and ours:
            return SetParametersResult(
                successful=False,
                reason=f"read on configure; clean up the node before changing {', '.join(ours)}",
            )
        return SetParametersResult(successful=True)

    # --- lifecycle -----------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # any failure must end in FAILURE with the reason logged
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            self._destroy_entities()
            self._reset_state()
            return TransitionCallbackReturn.FAILURE
        self._configured = True
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        def get(name: str) -> Any:
            try:
                return self.get_parameter(name).value
            except ParameterUninitializedException:  # declared by type only, not given: "unset"
                return None

        cfg = config_from_parameters(get)
        path = resolve_limits_path(cfg.limits_file, _share_dir)
        limits = load_limits(path)
        expected_type = "pose" if limits.kind == "pose" else "joint_state"
        if cfg.measured_state_type != expected_type:
            raise ValueError(
                f"measured_state_type is {cfg.measured_state_type!r} but {path.name} is a "
                f"{limits.kind} space; set measured_state_type: {expected_type}"
            )
        adapter_settings = replace(cfg.adapters, pose_frame_id=limits.frame_id)
        supervisor = SafetySupervisor(
            limits,
            SupervisorConfig(
                control_rate_hz=cfg.control_rate_hz,
                watchdog_mode=cfg.watchdog_mode,
                estop_mode=cfg.estop_mode,
                blend_mode=cfg.blend_mode,
                blend_time_s=cfg.blend_time_s,
                estop_release_hold_s=cfg.estop_release_hold_s,
            ),
        )
        self._supervisor, self._limits = supervisor, limits
        self._period_s = float(supervisor.dt)
        self._shadow = cfg.shadow_mode
        axes = tuple(limits.axis_names)
        self._measured = MeasuredState(axes, limits.frame_id)

        def create(msg_type: Any, topic: str) -> Any:
            pub = self.create_lifecycle_publisher(msg_type, topic, OUTPUT_QOS)
            self._made_lifecycle_pubs.append(pub)
            return pub

        self._adapters = make_adapters(cfg.output_adapters, create, axes, adapter_settings, cfg.shadow_mode)
        # Status and diagnostics are plain publishers: they also report while inactive.
        self._status_pub = self.create_publisher(SafetyStatus, cfg.status_topic, STATUS_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._made_pubs += [self._status_pub, self._diag_pub]

        g = self._io_group
        subs = self._made_subs
        subs.append(
            self.create_subscription(
                ActionSequence, cfg.plan_topic, self._on_plan, PLAN_QOS, callback_group=g
            )
        )
        if cfg.measured_state_type == "joint_state":
            subs.append(
                self.create_subscription(
                    JointState, cfg.measured_state_topic, self._on_joint_state, STATE_QOS, callback_group=g
                )
            )
        else:
            subs.append(
                self.create_subscription(
                    PoseStamped, cfg.measured_state_topic, self._on_pose_state, STATE_QOS, callback_group=g
                )
            )
            if "gripper" in axes:
                subs.append(
                    self.create_subscription(
                        JointState, cfg.gripper_state_topic, self._on_joint_state, STATE_QOS, callback_group=g
                    )
                )
        subs.append(
            self.create_subscription(Bool, cfg.estop_topic, self._on_estop, ESTOP_QOS, callback_group=g)
        )
        self._made_services.append(
            self.create_service(Trigger, "~/reset_estop", self._on_reset, callback_group=g)
        )
        self._made_timers.append(
            self.create_timer(cfg.diagnostics_period_s, self._on_diagnostics, callback_group=g)
        )
        topics = [t for a in self._adapters for t in a.topics()]
        self.get_logger().info(
            f"configured: {limits.action_space} ({len(axes)} axes, frame {limits.frame_id}) from {path}; "
            f"{1.0 / self._period_s:g} Hz, watchdog {cfg.watchdog_mode}, e-stop {cfg.estop_mode}, "
            f"blend {cfg.blend_mode} {cfg.blend_time_s:g} s; "
            f"{'SHADOW MODE (nothing to controllers), ' if self._shadow else ''}outputs {topics}"
        )

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        # Enable the lifecycle publishers first (base class), so the first tick can already publish.
        ret = super().on_activate(state)
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        try:
            with self._core_lock:
                self._core.activate(self._now_s())
            self._last_tick_perf = None
            self._active = True
            if self._tick_thread:
                if self._ticker is None:  # made once per configure, paused while inactive (see Ticker.pause)
                    self._ticker = Ticker(self, self._period_s, self._on_tick)
                else:
                    self._ticker.resume()
            else:
                self._tick_timer = self.create_timer(
                    self._period_s, self._on_tick, callback_group=MutuallyExclusiveCallbackGroup()
                )
        except Exception as exc:
            self._active = False
            self.get_logger().error(f"activate failed: {type(exc).__name__}: {exc}")
            super().on_deactivate(state)
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("active: streaming starts from the measured state (soft start)")
        self._publish_state_status()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False  # checked by a tick that is already running
        self._pause_ticking()
        try:
            with self._core_lock:
                self._core.deactivate(self._now_s())
        except Exception as exc:  # deactivation must not fail; nothing streams any more
            self._count_error("deactivate", exc)
        self.get_logger().info("inactive: streaming stopped, the controllers hold their last setpoint")
        self._publish_state_status()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._destroy_entities()
        self._reset_state()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        self._destroy_entities()
        self._reset_state()
        self.finalized = True
        self.get_logger().info("finalized (lifecycle shutdown): exiting")
        return TransitionCallbackReturn.SUCCESS

    def _pause_ticking(self) -> None:
        """Deactivate: no tick runs after this returns; the ticker is kept for the next activation."""
        if self._ticker is not None:
            self._ticker.pause()
        if self._tick_timer is not None:
            self.destroy_timer(self._tick_timer)
            self._tick_timer = None

    def _stop_ticking(self) -> None:
        """Stop the control-rate tick (dedicated thread or, with tick_thread=False, the executor timer)."""
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        if self._tick_timer is not None:
            self.destroy_timer(self._tick_timer)
            self._tick_timer = None

    def _destroy_entities(self) -> None:
        self._stop_ticking()
        for t in self._made_timers:
            self.destroy_timer(t)
        for s in self._made_subs:
            self.destroy_subscription(s)
        for srv in self._made_services:
            self.destroy_service(srv)
        for p in self._made_pubs:
            self.destroy_publisher(p)
        for p in self._made_lifecycle_pubs:
            self.destroy_lifecycle_publisher(p)
        self._made_timers, self._made_subs, self._made_services = [], [], []
        self._made_pubs, self._made_lifecycle_pubs, self._adapters = [], [], []
        self._status_pub = self._diag_pub = None

    def destroy_node(self) -> None:
        """Stop the ticker thread before the node goes (it runs on this node's clock and context)."""
        self._active = False
        self._stop_ticking()
        super().destroy_node()

    def tick_interval_stats(self) -> dict[str, float]:
        """Timer-side tick intervals since activation: count, p50/p99/max in seconds (for benchmarks)."""
        h = self._hist_total
        return {"count": h.count, "p50": h.percentile(50), "p99": h.percentile(99), "max": h.max_s}

    def bring_up(self) -> bool:
        """configure + activate (the ``autostart`` path); False, with the reason logged, if either fails."""
        return bring_up(self)

    @property
    def _core(self) -> SafetySupervisor:
        """The supervisor. Only callbacks made in configure use it, and each catches and counts errors."""
        if self._supervisor is None:
            raise RuntimeError("the safety node is not configured")
        return self._supervisor

    # --- time and logging ----------------------------------------------------------------------------
    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _throttled(self, key: str, period_s: float = 2.0) -> bool:
        t = time.monotonic()
        if t - self._log_times.get(key, -math.inf) >= period_s:
            self._log_times[key] = t
            return True
        return False

    def _count_error(self, where: str, exc: BaseException) -> None:
        self._errors[where] += 1
        if self._throttled("error:" + where):
            self.get_logger().error(
                f"internal error in {where} (x{self._errors[where]} so far): {type(exc).__name__}: {exc}; "
                "nothing was sent for it (controllers hold)"
            )

    # --- the streaming path --------------------------------------------------------------------------
    def _on_tick(self) -> None:
        if not self._active:
            return
        t = time.perf_counter()
        if self._last_tick_perf is not None:
            dt = t - self._last_tick_perf
            self._hist_total.record(dt)
            self._hist_window.record(dt)
        self._last_tick_perf = t
        self._window_ticks += 1
        try:
            stamp = self.get_clock().now()
            with self._core_lock:
                setpoint = self._core.tick(stamp.nanoseconds * 1e-9)
                state = (int(self._core.output_state), bool(self._core.estop_latched))
            if setpoint is not None and self._active:
                msg_stamp = stamp.to_msg()
                for adapter in self._adapters:
                    adapter.publish(setpoint.positions, msg_stamp)
                self._setpoints_sent += 1
                self._window_setpoints += 1
            if state != self._published_state:
                # Stamped with the tick that changed state, not the (later) publish time: deterministic under
                # a stepped /clock and the honest time of the change.
                self._publish_state_status(stamp.to_msg())
        except Exception as exc:  # never die in the control loop; nothing is sent for this tick
            self._count_error("tick", exc)

    # --- inputs --------------------------------------------------------------------------------------
    def _on_plan(self, msg: ActionSequence) -> None:
        self._window_plans += 1
        try:
            now = self._now_s()
            try:
                plan = msg_to_plan(msg)
            except ValueError as exc:
                self._publish_node_rejection(msg, "shape", f"malformed plan message: {exc}")
                return
            sup = self._core
            with self._core_lock:
                basis = sup.basis()
            # Checking and clamping (O(steps)) run outside the lock the tick takes, so a long plan never
            # holds the control loop; commit re-checks what may have changed meanwhile.
            prepared = sup.prepare(plan, now, basis)
            with self._core_lock:
                decision = sup.commit(prepared, self._now_s())
                counters = sup.counters
            self._publish_decision(decision, counters)
            self._log_decision(decision)
        except Exception as exc:
            self._count_error("plan", exc)
            try:
                self._publish_node_rejection(msg, "internal_error", f"internal error while checking: {exc}")
            except Exception as exc2:
                self._count_error("status", exc2)

    def _log_decision(self, d: PlanDecision) -> None:
        if d.decision == Decision.REJECTED and self._throttled("rejected:" + ",".join(d.reasons)):
            self.get_logger().warning(f"plan {d.plan_id} rejected ({', '.join(d.reasons)}): {d.message}")
        elif d.decision == Decision.CLAMPED and self._throttled("clamped"):
            self.get_logger().info(f"plan {d.plan_id} clamped: {d.message}")

    def _use_measured(self) -> None:
        assert self._measured is not None
        if not self._measured.complete:
            return
        with self._core_lock:
            ok = self._core.set_measured(self._measured.values(), self._now_s())
        if not ok:
            self._measured_rejected += 1

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            assert self._measured is not None
            if self._measured.update_joint_state(list(msg.name), msg.position):
                self._use_measured()
        except Exception as exc:
            self._count_error("measured_state", exc)

    def _on_pose_state(self, msg: PoseStamped) -> None:
        try:
            assert self._measured is not None
            p, q = msg.pose.position, msg.pose.orientation
            if self._measured.update_pose(msg.header.frame_id, (p.x, p.y, p.z, q.x, q.y, q.z, q.w)):
                self._use_measured()
            elif self._throttled("pose_frame"):
                self.get_logger().warning(
                    f"measured pose in frame {msg.header.frame_id!r} ignored: the limits are in "
                    f"{self._measured.frame_id!r}"
                )
        except Exception as exc:
            self._count_error("measured_state", exc)

    def _on_estop(self, msg: Bool) -> None:
        try:
            if not msg.data:
                # False never clears a stop (only ~/reset_estop does); it allows a later reset.
                with self._core_lock:
                    self._core.estop_input_released(self._now_s())
                return
            with self._core_lock:
                was = self._core.estop_latched
                self._core.estop(self._now_s())
            if not was:
                self.get_logger().warning("E-STOP latched: new plans are rejected; clear with ~/reset_estop")
            self._publish_state_status()
        except Exception as exc:
            self._count_error("estop", exc)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            if self._supervisor is None:
                response.success, response.message = False, "not configured"
                return response
            with self._core_lock:
                result = self._supervisor.reset_estop(self._now_s())
            response.success = bool(result.cleared)
            response.message = result.message if result.cleared else f"e-stop NOT cleared: {result.message}"
            if result.cleared:
                self.get_logger().info(response.message)
            else:
                self.get_logger().warning(response.message)
            self._publish_state_status()
        except Exception as exc:
            self._count_error("reset_estop", exc)
            response.success = False
            response.message = f"e-stop NOT cleared: {type(exc).__name__}: {exc}"
        return response

    # --- status and diagnostics ----------------------------------------------------------------------
    def _fill_state(
        self, status: SafetyStatus, counters: SupervisorCounters | None, stamp: Any = None
    ) -> SafetyStatus:
        status.header.stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
        status.header.frame_id = self._limits.frame_id if self._limits is not None else ""
        status.shadow_mode = self._shadow
        sup = self._supervisor
        state = int(sup.output_state) if sup is not None else SafetyStatus.OUTPUT_IDLE
        # The core's WAITING_FOR_STATE (active, no measured state yet) is reported as IDLE: nothing streams.
        status.output_state = state if state in OUTPUT_STATE_NAMES else SafetyStatus.OUTPUT_IDLE
        status.estop_latched = bool(sup.estop_latched) if sup is not None else False
        status.watchdog_active = bool(sup.watchdog_active) if sup is not None else False
        if counters is not None:
            status.plans_received = counters.plans_received + sum(self._node_rejections.values())
            status.plans_rejected = counters.plans_rejected + sum(self._node_rejections.values())
            status.plans_clamped = counters.plans_clamped
        return status

    def _publish_decision(self, d: PlanDecision, counters: SupervisorCounters) -> None:
        status = SafetyStatus(
            plan_id=int(d.plan_id),
            decision=int(d.decision),
            reasons=list(d.reasons),
            message=d.message,
            axis_names=list(d.axis_names),
            max_correction=[float(x) for x in d.max_correction],
            num_steps=int(d.num_steps),
            steps_skipped=int(d.steps_skipped),
        )
        self._status_pub.publish(self._fill_state(status, counters))

    def _publish_node_rejection(self, msg: ActionSequence, reason: str, text: str) -> None:
        """A plan the core never saw (malformed message, internal error): rejected, reported, nothing sent."""
        self._node_rejections[reason] += 1
        if self._throttled("node_rejection:" + reason):
            self.get_logger().warning(f"plan {msg.plan_id} rejected ({reason}): {text}")
        status = SafetyStatus(
            plan_id=int(msg.plan_id),
            decision=SafetyStatus.DECISION_REJECTED,
            reasons=[reason],
            message=text,
            num_steps=len(msg.trajectory.points),
        )
        with self._core_lock:
            counters = self._supervisor.counters if self._supervisor is not None else None
        self._status_pub.publish(self._fill_state(status, counters))

    def _publish_state_status(self, stamp: Any = None) -> None:
        """A state change (plan_id 0): activation, e-stop, watchdog. ``stamp``: time of the change (now)."""
        if self._status_pub is None or self._supervisor is None:
            return
        with self._core_lock:
            counters = self._supervisor.counters
            self._published_state = (int(self._supervisor.output_state), bool(self._supervisor.estop_latched))
        status = self._fill_state(SafetyStatus(plan_id=0), counters, stamp)
        problem = self._supervisor.measured_problem
        if problem:
            status.reasons = ["measured_state"]
            status.message = f"measured state refused as implausible, nothing is streamed: {problem}"
        elif self._supervisor.output_state not in OUTPUT_STATE_NAMES:
            status.message = "waiting for a complete measured state (soft start); nothing is streamed"
        self._status_pub.publish(status)

    def _on_diagnostics(self) -> None:
        try:
            self._diag_pub.publish(self._diagnostics())
        except Exception as exc:
            self._count_error("diagnostics", exc)

    def _diagnostics(self) -> DiagnosticArray:
        t = time.perf_counter()
        window = RateWindow(
            max(t - self._last_diag_perf, 1e-9),
            self._window_ticks,
            self._window_setpoints,
            self._window_plans,
        )
        self._last_diag_perf = t
        sup = self._core
        with self._core_lock:
            counters, state = sup.counters, sup.output_state
            estop, problem = bool(sup.estop_latched), sup.measured_problem
        measured = self._measured
        report = safety_diagnostics(
            SafetySnapshot(
                counters=counters,
                output_state=state,
                estop_latched=estop,
                measured_problem=problem,
                active=self._active,
                shadow_mode=self._shadow,
                control_rate_hz=1.0 / self._period_s,
                missing_axes=tuple(measured.missing()) if measured is not None else (),
                node=NodeCounters(
                    errors=dict(self._errors),
                    node_rejections=dict(self._node_rejections),
                    measured_rejected=self._measured_rejected + (measured.rejected if measured else 0),
                    setpoints_sent=self._setpoints_sent,
                ),
                window=window,
                window_intervals=self._hist_window,
                total_intervals=self._hist_total,
            )
        )
        # A fresh window histogram (one allocation per period, off the tick path's critical section).
        self._hist_window = IntervalHistogram()
        self._window_ticks = self._window_setpoints = self._window_plans = 0
        hardware_id = self._limits.action_space if self._limits is not None else ""
        status = report_to_status(report, f"{self.get_fully_qualified_name()}: safety", hardware_id)
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        return arr


def main(args: list[str] | None = None) -> int:
    """Run the safety node; with ``autostart`` (default) configure and activate it right away.

    Returns:
        The exit status of :func:`~cosmos_ros.nodes.spin.run_nodes` (0 normal end, 1 autostart failed,
        2 the node could not be created).
    """
    # Process-wide, hence set in the entry point, not in the node: a thread that wants the GIL waits up to the
    # switch interval (default 5 ms, 2.5 periods at 500 Hz) while plan checking computes; a shorter interval
    # keeps the tick thread on time (bench_jitter measures it).
    sys.setswitchinterval(0.0005)
    # The ticks have their own executor thread (Ticker); everything else is light and serial.
    return run_nodes(lambda: [SafetyNode()], name="safety_node", args=args)


if __name__ == "__main__":
    sys.exit(main())
