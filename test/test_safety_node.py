"""The safety node as a real process over DDS: what a controller on the other end of the topics sees.

A test peer (another process from the node's point of view) publishes plans, measured JointStates and
e-stops, and records the controller topics, SafetyStatus and diagnostics. Checks: setpoints arrive at the
control rate, an out-of-bounds plan arrives clamped (within bounds and within the velocity limit step to
step), the watchdog reports and brakes/holds without a jump when the planner goes silent, a NaN plan is
rejected and changes nothing on the controller topic, the e-stop latches until ``~/reset_estop``, shadow mode
leaves the controller topics silent, a bad limits file ends the process with the reason, and with
``autostart: false`` nothing streams until a lifecycle manager configures and activates the node.

How the limits are checked independently of the node: from the recorded setpoints themselves, by finite
differences at the nominal control period (the core's limiter is defined on exactly that discrete model).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger

from cosmos_ros.msg import ActionSequence, SafetyStatus
from cosmos_ros.nodes.conversions import plan_to_msg
from cosmos_ros.plan import Plan
from cosmos_ros.testing.ros_harness import NodeProcess, TestPeer, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

MODULE = "cosmos_ros.nodes.safety_node"
# `python -m` from the repository root would put the source tree (without cosmos_ros.msg) first on sys.path.
NODE_ENV = {"PYTHONSAFEPATH": "1"}
STARTUP_S = 30.0
RATE_HZ = 100.0
DT = 1.0 / RATE_HZ
AXES = ("j1", "j2", "gripper")
LO = np.array([-1.0, -1.0, 0.0])
HI = np.array([1.0, 1.0, 0.08])
VMAX = np.array([1.0, 1.0, 0.1])
AMAX = np.array([10.0, 10.0, 1.0])
JMAX = np.array([1000.0, 1000.0, 100.0])
MEASURED = np.array([0.2, -0.3, 0.04])
COMMANDS = "forward_position_controller/commands"
FRAME = "base_link"
SPACE = "test_arm2"
# As config/limits: the longest plan a limits file allows (issue 9, defect 2).
MAX_PLAN_STEPS = 256


def _axis(name: str, unit: str, i: int) -> str:
    return (
        f"  - {{name: {name}, unit: {unit}, min_position: {LO[i]}, max_position: {HI[i]}, "
        f"max_velocity: {VMAX[i]}, max_acceleration: {AMAX[i]}, max_jerk: {JMAX[i]}, "
        "max_step_from_measured: null, measured_plausibility_margin: 0.1}"
    )


@pytest.fixture(scope="module")
def limits_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("limits") / "test_arm2.yaml"
    axes = "\n".join(_axis(n, "m" if n == "gripper" else "rad", i) for i, n in enumerate(AXES))
    path.write_text(
        f"action_space: {SPACE}\nkind: joint\nframe_id: {FRAME}\nstaleness_limit_s: 2.0\n"
        f"control_rate_hz: 50.0\nmax_plan_steps: {MAX_PLAN_STEPS}\nmeasured_max_speed_factor: 2.0\n"
        f"axes:\n{axes}\n"
    )
    return path


class Rig:
    """A node process plus the peer that feeds and records it."""

    def __init__(self, peer: TestPeer, node: NodeProcess) -> None:
        self.peer, self.node = peer, node
        self.commands = peer.record(Float64MultiArray, COMMANDS)
        self.status = peer.record(SafetyStatus, "safety_status")
        self.diagnostics = peer.record(DiagnosticArray, "/diagnostics")
        self.plans = peer.publisher(ActionSequence, "action_sequence")
        self.estop = peer.publisher(Bool, "estop")
        self.joints = peer.publisher(JointState, "joint_states")
        self.next_id = 1
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        # Names in another order than the limits file, plus a joint the node does not know: the node must map
        # by NAME. 50 Hz like a joint_state_broadcaster.
        msg = JointState(
            name=["gripper", "other_joint", "j2", "j1"],
            position=[float(MEASURED[2]), 9.0, float(MEASURED[1]), float(MEASURED[0])],
        )
        while not self._stop.is_set():
            self.joints.publish(msg)
            self._stop.wait(0.02)

    def values(self) -> np.ndarray:
        return np.array([list(m.data) for m in self.commands.messages]).reshape(-1, len(AXES))

    def send_plan(
        self, values: np.ndarray, step_period_s: float = 0.1, t0_delay_s: float = 0.05, **kw: Any
    ) -> int:
        now = self.peer.now_s()
        plan = Plan(
            plan_id=kw.pop("plan_id", self.next_id),
            stamp_s=now,
            t0_s=now + t0_delay_s,
            step_period_s=step_period_s,
            axis_names=kw.pop("axis_names", AXES),
            values=np.asarray(values, dtype=np.float64),
            frame_id=kw.pop("frame_id", FRAME),
            action_space=kw.pop("action_space", SPACE),
        )
        self.next_id = plan.plan_id + 1
        self.plans.publish(plan_to_msg(plan))
        return plan.plan_id

    def status_for(self, plan_id: int, timeout: float = 10.0) -> SafetyStatus:
        def find() -> SafetyStatus | None:
            return next((s for s in self.status.messages if s.plan_id == plan_id), None)

        assert wait_until(lambda: find() is not None, timeout), (
            f"no SafetyStatus for plan {plan_id}\n{self.log()}"
        )
        found = find()
        assert found is not None
        return found

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 10.0) -> Any:
        cli = self.peer.node.create_client(srv_type, name)
        try:
            assert cli.wait_for_service(timeout_sec=timeout), f"service {name} not available"
            fut = cli.call_async(request)
            assert wait_until(fut.done, timeout), f"no answer from {name}"
            return fut.result()
        finally:
            self.peer.node.destroy_client(cli)

    def log(self) -> str:
        return "--- node log ---\n" + self.node.output()[-4000:]

    def close(self) -> None:
        self._stop.set()
        self._feeder.join(timeout=2)


@pytest.fixture
def rig_factory(domain_id: int, limits_file: Path) -> Iterator[Any]:
    made: list[tuple[Rig, TestPeer, NodeProcess]] = []

    def make(**params: Any) -> Rig:
        base = {
            "limits_file": str(limits_file),
            "control_rate_hz": RATE_HZ,
            "output_adapters": ["float64_multi_array", "float64_per_axis"],
            "diagnostics_period_s": 0.5,
        }
        node = NodeProcess(MODULE, domain_id, params=base | params, env=NODE_ENV).start()
        peer = TestPeer(domain_id)
        rig = Rig(peer, node)
        made.append((rig, peer, node))
        return rig

    yield make
    for rig, peer, node in made:
        rig.close()
        code = node.stop()
        peer.close()
        assert code == 0, f"node did not shut down cleanly (exit {code})\n{node.output()[-3000:]}"


def _wait_streaming(rig: Rig) -> None:
    assert wait_until(lambda: len(rig.commands) >= 10, STARTUP_S), f"no setpoints\n{rig.log()}"


def _assert_within_limits(v: np.ndarray, where: str) -> None:
    """Bounds and velocity by finite differences of the streamed setpoints (tolerance: float rounding)."""
    assert np.all(v >= LO - 1e-9) and np.all(v <= HI + 1e-9), f"{where}: setpoint out of bounds"
    if len(v) > 1:
        vel = np.abs(np.diff(v, axis=0)) / DT
        assert np.all(vel <= VMAX * (1 + 1e-6) + 1e-9), f"{where}: velocity {vel.max(axis=0)} > {VMAX}"


def test_soft_starts_from_measured_state_on_every_adapter(rig_factory: Any) -> None:
    rig = rig_factory()
    _wait_streaming(rig)
    v = rig.values()
    # Soft start: with no plan, the output is the measured state (mapped by joint name), not zero.
    np.testing.assert_allclose(v, np.tile(MEASURED, (len(v), 1)), atol=1e-9)
    per_axis = rig.peer.record(Float64, "j2/setpoint")
    assert wait_until(lambda: len(per_axis) > 5, 5.0), "no Float64 per-axis setpoints"
    assert per_axis.messages[-1].data == pytest.approx(MEASURED[1])


def test_streams_one_setpoint_per_control_period_of_its_clock(rig_factory: Any) -> None:
    """The control rate without a wall clock: on ROS time, the test advances /clock by one control period
    at a time and waits (with a timeout) for that tick's setpoint: exactly one per period.
    (A wall-clock count of setpoints in 3 s depended on the machine's load.)"""
    rig = rig_factory(use_sim_time=True)
    clock = rig.peer.publisher(Clock, "/clock")
    period_ns = round(1e9 / RATE_HZ)
    t_ns = 1_000 * 10**9

    def tick() -> None:
        nonlocal t_ns
        t_ns += period_ns
        clock.publish(Clock(clock=TimeMsg(sec=t_ns // 10**9, nanosec=t_ns % 10**9)))

    # Start-up: advance the clock until the node streams (activation and its first measured state).
    deadline = time.monotonic() + STARTUP_S
    while not rig.commands.messages and time.monotonic() < deadline:
        tick()
        time.sleep(0.02)
    assert rig.commands.messages, f"no setpoints on ROS time\n{rig.log()}"
    # Settle: no setpoint of a start-up tick may still be in flight when the count starts.
    n0 = -1
    while n0 != len(rig.commands) and time.monotonic() < deadline + 10.0:
        n0 = len(rig.commands)
        time.sleep(0.5)
    for _ in range(50):
        n = len(rig.commands)
        tick()
        assert wait_until(lambda n=n: len(rig.commands) > n, 10.0), f"no setpoint for this tick\n{rig.log()}"
    time.sleep(0.3)  # a second setpoint for any of those ticks would arrive meanwhile
    assert len(rig.commands) - n0 == 50, f"{len(rig.commands) - n0} setpoints for 50 control periods"


def test_out_of_bounds_plan_arrives_clamped_then_watchdog_brakes_without_jump(rig_factory: Any) -> None:
    rig = rig_factory()
    _wait_streaming(rig)
    rig.commands.clear()
    # 1 s plan asking j1 to go to 5 rad (bound 1) and j2 to -4 rad (bound -1), gripper past its range.
    target = np.array([5.0, -4.0, 0.5])
    plan_id = rig.send_plan(np.tile(target, (10, 1)), step_period_s=0.1)
    st = rig.status_for(plan_id)
    assert st.decision == SafetyStatus.DECISION_CLAMPED, (st.decision, list(st.reasons), st.message)
    assert "position_bound" in st.reasons, list(st.reasons)
    # Let it run out (1 s plan): the watchdog takes over and reports it (a state status, plan_id 0).
    after = len(rig.status)

    def watchdog_reported() -> bool:
        return any(s.watchdog_active and s.plan_id == 0 for s in rig.status.messages[after:])

    assert wait_until(watchdog_reported, 10.0), f"watchdog never reported\n{rig.log()}"
    time.sleep(1.0)
    v = rig.values()
    assert len(v) > 100
    _assert_within_limits(v, "clamped plan + watchdog")
    # It moved toward the target, and never past the bounds.
    assert v[:, 0].max() > MEASURED[0] + 0.1 and v[:, 1].min() < MEASURED[1] - 0.1
    wd = [s for s in rig.status.messages[after:] if s.watchdog_active]
    assert wd[-1].output_state in (SafetyStatus.OUTPUT_HOLDING, SafetyStatus.OUTPUT_DECELERATING)
    # After braking, the output comes to rest: the last setpoints no longer change.
    tail = v[-20:]
    assert np.ptp(tail, axis=0).max() < 1e-9, tail


def test_nan_plan_is_rejected_and_changes_nothing_on_the_controller_topic(rig_factory: Any) -> None:
    rig = rig_factory()
    _wait_streaming(rig)
    values = np.tile(MEASURED + 0.1, (10, 1))
    values[4, 1] = np.nan
    rig.commands.clear()
    plan_id = rig.send_plan(values)
    st = rig.status_for(plan_id)
    assert st.decision == SafetyStatus.DECISION_REJECTED and "nonfinite" in st.reasons, (
        list(st.reasons),
        st.message,
    )
    time.sleep(1.5)  # the plan would have been streaming for 1.5 s
    v = rig.values()
    assert len(v) > 50
    # Nothing deviates from hold: every setpoint equals the measured state the node was holding.
    np.testing.assert_array_equal(v, np.tile(MEASURED, (len(v), 1)))
    # The node is alive and counts it.
    assert rig.node.alive()
    assert wait_until(lambda: _diag(rig).get("rejected.nonfinite") == "1", 5.0), _diag(rig)


def _diag(rig: Rig) -> dict[str, str]:
    own = [s for m in rig.diagnostics.messages for s in m.status if s.name.endswith(": safety")]
    return {kv.key: kv.value for kv in own[-1].values} if own else {}


def test_estop_latches_until_reset_service(rig_factory: Any) -> None:
    rig = rig_factory(estop_release_hold_s=2.0)
    _wait_streaming(rig)
    rig.estop.publish(Bool(data=True))
    assert wait_until(lambda: any(s.estop_latched for s in rig.status.messages), 5.0), rig.log()
    rig.estop.publish(Bool(data=False))  # False never clears a latched stop
    time.sleep(0.3)
    # Within estop_release_hold_s of the last true input (or before the false arrived): refused.
    refused = rig.call(Trigger, "/safety_node/reset_estop", Trigger.Request())
    assert not refused.success and "NOT cleared" in refused.message, refused.message
    rig.commands.clear()
    plan_id = rig.send_plan(np.tile(MEASURED + 0.2, (10, 1)))
    st = rig.status_for(plan_id)
    assert st.decision == SafetyStatus.DECISION_REJECTED and "estop" in st.reasons, (
        list(st.reasons),
        st.message,
    )
    assert st.estop_latched and st.output_state == SafetyStatus.OUTPUT_ESTOP
    time.sleep(1.0)
    v = rig.values()
    assert len(v) > 50
    np.testing.assert_array_equal(v, np.tile(MEASURED, (len(v), 1)))  # at rest: hold, nothing else

    answers: list[Any] = []

    def reset() -> bool:
        answers.append(rig.call(Trigger, "/safety_node/reset_estop", Trigger.Request()))
        return bool(answers[-1].success)

    assert wait_until(reset, 15.0, period=0.2), [a.message for a in answers[-3:]]  # once the hold has passed
    rig.commands.clear()
    plan_id = rig.send_plan(np.tile(MEASURED + 0.2, (20, 1)))
    st = rig.status_for(plan_id)
    assert st.decision in (SafetyStatus.DECISION_ACCEPTED, SafetyStatus.DECISION_CLAMPED), list(st.reasons)
    assert not st.estop_latched
    assert wait_until(lambda: len(rig.values()) > 0 and rig.values()[-1][0] > MEASURED[0] + 0.05, 5.0)
    _assert_within_limits(rig.values(), "after reset")


def test_shadow_mode_publishes_nothing_on_controller_topics(rig_factory: Any) -> None:
    rig = rig_factory(shadow_mode=True)
    shadow = rig.peer.record(Float64MultiArray, "/safety_node/shadow/" + COMMANDS)
    per_axis = rig.peer.record(Float64, "j1/setpoint")
    assert wait_until(lambda: len(shadow) >= 10, STARTUP_S), f"no shadow setpoints\n{rig.log()}"
    plan_id = rig.send_plan(np.tile(MEASURED + 0.2, (10, 1)))
    st = rig.status_for(plan_id)
    assert st.shadow_mode and st.decision != SafetyStatus.DECISION_REJECTED, list(st.reasons)
    assert wait_until(lambda: shadow.messages[-1].data[0] > MEASURED[0] + 0.05, 5.0)
    assert len(rig.commands) == 0 and len(per_axis) == 0
    assert rig.peer.node.count_publishers(COMMANDS) == 0


def test_bad_limits_file_fails_configure_and_exits_with_the_reason(
    domain_id: int, tmp_path: Path, limits_file: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(limits_file.read_text().replace("max_velocity: 1.0", "max_velocity: -1.0", 1))
    node = NodeProcess(MODULE, domain_id, params={"limits_file": str(bad)}, env=NODE_ENV).start()
    try:
        code = node.wait_exit(STARTUP_S)
    finally:
        node.stop()
    out = node.output()
    assert code == 1, out
    assert "configure failed" in out and "max_velocity" in out, out
    assert "ERROR" in out, out


def _set_param(rig: Rig, name: str, value: str) -> Any:
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    value_msg = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    req = SetParameters.Request(parameters=[ParameterMsg(name=name, value=value_msg)])
    return rig.call(SetParameters, "/safety_node/set_parameters", req).results[0]


def test_without_autostart_nothing_streams_until_lifecycle_transitions(rig_factory: Any) -> None:
    rig = rig_factory(autostart=False)
    state = rig.call(GetState, "/safety_node/get_state", GetState.Request(), timeout=STARTUP_S)
    assert state.current_state.label == "unconfigured"
    time.sleep(0.5)
    assert len(rig.commands) == 0
    assert _set_param(rig, "watchdog_mode", "hold").successful  # unconfigured: parameters may change
    for tid in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        resp = rig.call(
            ChangeState, "/safety_node/change_state", ChangeState.Request(transition=Transition(id=tid))
        )
        assert resp.success, f"transition {tid} failed\n{rig.log()}"
    _wait_streaming(rig)
    refused = _set_param(rig, "watchdog_mode", "decelerate")  # configured: would silently not apply
    assert not refused.successful and "configure" in refused.reason
    resp = rig.call(
        ChangeState,
        "/safety_node/change_state",
        ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE)),
    )
    assert resp.success
    time.sleep(0.3)
    rig.commands.clear()
    time.sleep(0.5)
    assert len(rig.commands) == 0  # inactive: nothing streams, the controllers hold


def test_malformed_plan_message_is_rejected_as_shape_and_the_node_lives(rig_factory: Any) -> None:
    rig = rig_factory()
    _wait_streaming(rig)
    msg = plan_to_msg(
        Plan(
            plan_id=1,
            stamp_s=rig.peer.now_s(),
            t0_s=rig.peer.now_s(),
            step_period_s=0.1,
            axis_names=AXES,
            values=np.tile(MEASURED + 0.1, (5, 1)),
            frame_id=FRAME,
            action_space=SPACE,
        )
    )
    msg.trajectory.points[2].positions = [0.5]  # ragged: cannot even become a Plan
    rig.commands.clear()
    rig.plans.publish(msg)
    st = rig.status_for(1)
    assert st.decision == SafetyStatus.DECISION_REJECTED and list(st.reasons) == ["shape"], st.message
    time.sleep(0.5)
    v = rig.values()
    assert len(v) > 20 and rig.node.alive()
    np.testing.assert_array_equal(v, np.tile(MEASURED, (len(v), 1)))


def test_pose_space_measured_pose_in_limits_frame_only_and_pose_stamped_output(domain_id: int) -> None:
    """umi_pose_gripper from the package's config (relative limits path), PoseStamped in and out."""
    params = {
        "limits_file": "config/limits/umi_pose_gripper.yaml",
        "measured_state_type": "pose",
        "measured_state_topic": "ee_pose",
        "gripper_state_topic": "gripper_states",
        "output_adapters": ["pose_stamped"],
    }
    from geometry_msgs.msg import PoseStamped

    measured = PoseStamped()
    measured.header.frame_id = "base_link"
    measured.pose.position.x, measured.pose.position.y, measured.pose.position.z = 0.5, 0.1, 0.3
    measured.pose.orientation.x, measured.pose.orientation.w = 1.0, 0.0  # tool down: the cone's reference
    wrong = PoseStamped()
    wrong.header.frame_id = "camera"  # another frame: must be ignored, not mixed in
    wrong.pose.position.x, wrong.pose.orientation.w = 9.0, 1.0
    with NodeProcess(MODULE, domain_id, params=params, env=NODE_ENV) as node, TestPeer(domain_id) as peer:
        out = peer.record(PoseStamped, "target_frame")
        grip = peer.record(Float64, "gripper/setpoint")
        pose_pub = peer.publisher(PoseStamped, "ee_pose")
        grip_pub = peer.publisher(JointState, "gripper_states")
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline and len(out) < 20:
            pose_pub.publish(wrong)
            pose_pub.publish(measured)
            grip_pub.publish(JointState(name=["gripper"], position=[0.04]))
            time.sleep(0.02)
        assert len(out) >= 20, "no PoseStamped setpoints\n" + node.output()[-3000:]
        last = out.messages[-1]
        assert last.header.frame_id == "base_link"
        p, q = last.pose.position, last.pose.orientation
        assert (p.x, p.y, p.z) == pytest.approx((0.5, 0.1, 0.3), abs=1e-9)
        assert (q.x, q.y, q.z, q.w) == pytest.approx((1.0, 0.0, 0.0, 0.0), abs=1e-9)
        assert grip.messages[-1].data == pytest.approx(0.04)
        assert all(m.pose.position.x < 1.0 for m in out.messages), "a pose from the wrong frame leaked in"


def test_out_of_range_parameter_exits_with_the_reason(domain_id: int) -> None:
    node = NodeProcess(MODULE, domain_id, params={"control_rate_hz": 5000.0}, env=NODE_ENV).start()
    try:
        code = node.wait_exit(STARTUP_S)
    finally:
        node.stop()
    out = node.output()
    assert code == 2, out
    assert "control_rate_hz" in out and "Traceback" not in out, out


def _diag_values(msg: DiagnosticArray) -> dict[str, str]:
    return {kv.key: kv.value for kv in msg.status[0].values}


def test_longest_allowed_plan_does_not_stall_the_tick(rig_factory: Any) -> None:
    """A max_plan_steps plan over DDS is checked and streamed; one step longer is rejected (plan_length).

    The largest tick gap while such plans arrive (the node's tick-interval diagnostics) is printed, not
    asserted: on a shared CI machine it measures the OS scheduler as much as the node. That the check never
    holds the tick is shown without a clock in
    test_safety_node_units.py::test_a_plan_being_checked_does_not_hold_the_control_tick.
    """
    rig = rig_factory(diagnostics_period_s=0.25)
    _wait_streaming(rig)
    rig.diagnostics.clear()
    assert wait_until(lambda: len(rig.diagnostics) >= 4, 10.0), rig.log()
    baseline = max(float(_diag_values(m)["tick_interval_max_ms"]) for m in rig.diagnostics.messages[1:])
    n = MAX_PLAN_STEPS
    values = np.tile(MEASURED, (n, 1))
    values[:, 0] = MEASURED[0] + 0.2 * np.sin(np.linspace(0.0, 20.0, n))  # within bounds and rates
    too_long = rig.send_plan(np.tile(MEASURED, (n + 1, 1)), step_period_s=0.01)
    st = rig.status_for(too_long, timeout=30.0)
    assert st.decision == SafetyStatus.DECISION_REJECTED and list(st.reasons) == ["plan_length"], st.message
    gaps: list[float] = []
    for _ in range(3):
        rig.diagnostics.clear()
        plan_id = rig.send_plan(values, step_period_s=0.01)
        st = rig.status_for(plan_id, timeout=30.0)
        assert st.decision in (SafetyStatus.DECISION_ACCEPTED, SafetyStatus.DECISION_CLAMPED), st.message
        # Two more windows after the decision, so the windows covering the whole check are in.
        assert wait_until(lambda: len(rig.diagnostics) >= 3, 10.0), rig.log()
        gaps += [float(_diag_values(m)["tick_interval_max_ms"]) for m in rig.diagnostics.messages]
    print(
        f"largest tick gap while {n}-step plans arrived: {max(gaps):.2f} ms; without plans {baseline:.2f} ms "
        f"(period {DT * 1e3:g} ms)"
    )
    assert gaps, rig.log()
