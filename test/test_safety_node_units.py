"""The safety node's own pure pieces, without a ROS graph: output adapters (with a recording publisher
factory), the parameter -> config mapping, the limits path rule, and the jitter histogram.

The node's behaviour over DDS is in test_safety_node.py; checks and clamps are the core's (test_safety_*).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from std_msgs.msg import Float64, Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from cosmos_ros.nodes.output_adapters import ADAPTER_KINDS, AdapterSettings, make_adapters, shadow_topic
from cosmos_ros.nodes.safety_node import (
    PARAMETERS,
    config_from_parameters,
    resolve_limits_path,
)
from cosmos_ros.safety.intervals import IntervalHistogram

pytestmark = pytest.mark.ros

JOINTS = ("j1", "j2", "gripper")
POSE = ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper")


class FakePub:
    def __init__(self, msg_type: Any, topic: str) -> None:
        self.msg_type, self.topic, self.sent = msg_type, topic, []

    def publish(self, msg: Any) -> None:
        assert isinstance(msg, self.msg_type)
        # Adapters reuse their message objects: keep a copy of what went out at this moment.
        self.sent.append(_copy(msg))


def _copy(msg: Any) -> Any:
    from rclpy.serialization import deserialize_message, serialize_message

    return deserialize_message(serialize_message(msg), type(msg))


class Factory:
    def __init__(self) -> None:
        self.pubs: dict[str, FakePub] = {}

    def __call__(self, msg_type: Any, topic: str) -> FakePub:
        assert topic not in self.pubs, f"topic {topic} created twice"
        self.pubs[topic] = FakePub(msg_type, topic)
        return self.pubs[topic]


STAMP = Time(sec=12, nanosec=500)


def test_float64_per_axis_one_topic_per_axis_in_axis_order() -> None:
    f = Factory()
    (a,) = make_adapters(["float64_per_axis"], f, JOINTS, AdapterSettings(), shadow=False)
    assert a.topics() == ["j1/setpoint", "j2/setpoint", "gripper/setpoint"]
    a.publish(np.array([0.1, -0.2, 0.03]), STAMP)
    a.publish([0.2, -0.3, 0.04], STAMP)
    assert [m.data for m in f.pubs["j1/setpoint"].sent] == [0.1, 0.2]
    assert [m.data for m in f.pubs["j2/setpoint"].sent] == [-0.2, -0.3]
    assert [m.data for m in f.pubs["gripper/setpoint"].sent] == [0.03, 0.04]
    assert all(p.msg_type is Float64 for p in f.pubs.values())


def test_float64_multi_array_and_joint_trajectory_content() -> None:
    f = Factory()
    settings = AdapterSettings(multi_array_topic="arm/commands", trajectory_time_from_start_s=0.02)
    adapters = make_adapters(["float64_multi_array", "joint_trajectory"], f, JOINTS, settings, shadow=False)
    for a in adapters:
        a.publish([1.0, 2.0, 0.5], STAMP)
    (arr,) = f.pubs["arm/commands"].sent
    assert isinstance(arr, Float64MultiArray) and list(arr.data) == [1.0, 2.0, 0.5]
    (traj,) = f.pubs["joint_trajectory_controller/joint_trajectory"].sent
    assert isinstance(traj, JointTrajectory)
    assert list(traj.joint_names) == list(JOINTS) and len(traj.points) == 1
    assert list(traj.points[0].positions) == [1.0, 2.0, 0.5]
    assert (traj.points[0].time_from_start.sec, traj.points[0].time_from_start.nanosec) == (0, 20_000_000)
    assert (traj.header.stamp.sec, traj.header.stamp.nanosec) == (0, 0)  # "start now" for JTC
    with pytest.raises(ValueError, match="expected 3 values"):
        adapters[0].publish([1.0, 2.0], STAMP)


def test_pose_stamped_maps_axes_by_name_and_sends_gripper_separately() -> None:
    f = Factory()
    (a,) = make_adapters(["pose_stamped"], f, POSE, AdapterSettings(pose_frame_id="world"), shadow=False)
    a.publish([0.1, 0.2, 0.3, 0.0, 0.0, 0.6, 0.8, 0.05], STAMP)
    (pose,) = f.pubs["target_frame"].sent
    assert isinstance(pose, PoseStamped) and pose.header.frame_id == "world"
    assert (pose.header.stamp.sec, pose.header.stamp.nanosec) == (12, 500)
    assert (pose.pose.position.x, pose.pose.position.y, pose.pose.position.z) == (0.1, 0.2, 0.3)
    o = pose.pose.orientation
    assert (o.x, o.y, o.z, o.w) == (0.0, 0.0, 0.6, 0.8)
    assert [m.data for m in f.pubs["gripper/setpoint"].sent] == [0.05]
    with pytest.raises(ValueError, match="missing"):
        make_adapters(["pose_stamped"], Factory(), JOINTS, AdapterSettings(), shadow=False)


def test_shadow_mode_moves_every_topic_under_the_private_namespace() -> None:
    f = Factory()
    adapters = make_adapters(list(ADAPTER_KINDS[:2]), f, JOINTS, AdapterSettings(), shadow=True)
    topics = [t for a in adapters for t in a.topics()]
    assert topics and all(t.startswith("~/shadow/") for t in topics)
    assert "~/shadow/forward_position_controller/commands" in topics
    assert shadow_topic("/abs/topic") == "~/shadow/abs/topic"


def test_adapter_selection_errors_name_the_valid_kinds() -> None:
    with pytest.raises(ValueError, match="float64_multi_array"):
        make_adapters(["float64"], Factory(), JOINTS, AdapterSettings(), shadow=False)
    with pytest.raises(ValueError, match="twice"):
        make_adapters(["float64_per_axis"] * 2, Factory(), JOINTS, AdapterSettings(), shadow=False)
    with pytest.raises(ValueError, match="at least one"):
        make_adapters([], Factory(), JOINTS, AdapterSettings(), shadow=False)
    with pytest.raises(ValueError, match="relative"):
        AdapterSettings(multi_array_topic="/arm/commands")
    with pytest.raises(ValueError, match="axis"):
        AdapterSettings(per_axis_topic_pattern="setpoint")


def _defaults() -> dict[str, Any]:
    """Parameter values as the node sees them with nothing set (a Parameter.Type default reads as None)."""
    return {k: (None if isinstance(d, Parameter.Type) else d) for k, (d, _) in PARAMETERS.items()}


def test_every_parameter_has_a_description_and_the_defaults_make_a_valid_config() -> None:
    for name, (_, desc) in PARAMETERS.items():
        assert desc.description, name
    cfg = config_from_parameters(_defaults().get)
    assert cfg.control_rate_hz is None  # unset: the limits file decides
    assert cfg.output_adapters == ("float64_per_axis",)
    assert PARAMETERS["limits_file"][1].read_only and PARAMETERS["shadow_mode"][1].read_only


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("watchdog_mode", "brake", "watchdog_mode"),
        ("measured_state_type", "odometry", "measured_state_type"),
        ("output_adapters", ["float64_per_axis", "bogus"], "output_adapters"),
        ("plan_topic", "/action_sequence", "plan_topic"),
        ("control_rate_hz", 5000.0, "control_rate_hz"),
        ("limits_file", "", "limits_file"),
        ("measured_state_type", "pose", "gripper_state_topic"),  # both default to joint_states
    ],
)
def test_bad_parameters_are_refused_with_their_name(name: str, value: Any, match: str) -> None:
    params = _defaults() | {name: value}
    with pytest.raises(ValueError, match=match):
        config_from_parameters(params.get)


def test_limits_path_relative_to_share_dir_absolute_as_is(tmp_path: Path) -> None:
    share = tmp_path / "share" / "cosmos_ros"
    (share / "config" / "limits").mkdir(parents=True)
    (share / "config" / "limits" / "a.yaml").write_text("{}")
    assert resolve_limits_path("config/limits/a.yaml", lambda: str(share)) == share / "config/limits/a.yaml"
    with pytest.raises(FileNotFoundError, match=r"unknown action space 'b'; valid: a"):
        resolve_limits_path("config/limits/b.yaml", lambda: str(share))

    def no_lookup() -> str:
        raise AssertionError("absolute paths must not need the share directory")

    assert resolve_limits_path(str(tmp_path / "l.yaml"), no_lookup) == tmp_path / "l.yaml"


def test_interval_histogram_percentiles() -> None:
    h = IntervalHistogram(bin_s=1e-5, max_s=0.25)
    assert math.isnan(h.percentile(50))
    for _ in range(98):
        h.record(0.010)
    h.record(0.012)
    h.record(0.300)  # beyond max_s: lands in the last bin, max still exact
    assert h.count == 100
    assert h.percentile(50) == pytest.approx(0.010, abs=1e-5)
    assert h.percentile(99) == pytest.approx(0.012, abs=1e-5)
    assert h.percentile(100) == pytest.approx(0.25, abs=1e-5)
    assert h.max_s == 0.300
    h.reset()
    assert h.count == 0 and math.isnan(h.percentile(99))


def test_interval_histogram_percentile_while_a_tick_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9 soak: the tick thread records between the diagnostics thread's snapshot of the bins and its
    read of ``count``. The percentile must come from the snapshot alone (it reported 250.005 ms, past the
    last bin and above the window's max, for a window of 30 ticks of 10 ms)."""
    import cosmos_ros.safety.intervals as sn

    h = IntervalHistogram(bin_s=1e-5, max_s=0.25)
    for _ in range(30):
        h.record(0.010)
    real_cumsum = np.cumsum

    def cumsum_then_a_tick(a: np.ndarray) -> np.ndarray:
        snapshot = real_cumsum(a)
        h.record(0.010)  # the tick thread runs right after the snapshot
        return snapshot

    monkeypatch.setattr(sn.np, "cumsum", cumsum_then_a_tick)
    assert h.percentile(99) == pytest.approx(0.010, abs=1e-5)


def test_params_file_is_the_one_generated_from_the_schema(repo_root: Path) -> None:
    """config/safety.yaml is derived from schemas/safety_node.yaml; editing one without the other fails."""
    from cosmos_ros.parameter_schema import generated_params_file

    committed = (repo_root / "config" / "safety.yaml").read_text()
    assert committed == generated_params_file("config/safety.yaml"), (
        "config/safety.yaml differs from its schema; run: python -m cosmos_ros.parameter_schema --write"
    )


def test_descriptors_and_choices_come_from_the_schema_and_the_core_registries() -> None:
    from cosmos_ros.nodes.output_adapters import ADAPTER_KINDS
    from cosmos_ros.safety.scheduler import BLEND_MODES
    from cosmos_ros.safety.supervisor import WATCHDOG_MODES

    assert PARAMETERS["watchdog_mode"][1].additional_constraints == "one of: " + ", ".join(WATCHDOG_MODES)
    assert PARAMETERS["blend_mode"][1].additional_constraints == "one of: " + ", ".join(BLEND_MODES)
    assert ", ".join(ADAPTER_KINDS) in PARAMETERS["output_adapters"][1].additional_constraints
    rate = PARAMETERS["control_rate_hz"][1].floating_point_range[0]
    assert (rate.from_value, rate.to_value) == (1.0, 1000.0)
    assert PARAMETERS["control_rate_hz"][0] == Parameter.Type.DOUBLE  # declared unset: the limits file's


def test_params_file_carries_every_parameter_with_its_declared_default(repo_root: Path) -> None:
    """config/safety.yaml and PARAMETERS must not drift: same names, same defaults (control_rate_hz is
    deliberately absent from the file: unset means "the limits file's rate")."""
    import yaml

    data = yaml.safe_load((repo_root / "config" / "safety.yaml").read_text())
    params = data["/**"]["ros__parameters"]
    declared = {k: d for k, (d, _) in PARAMETERS.items() if not isinstance(d, Parameter.Type)}
    assert set(params) == set(declared), set(params) ^ set(declared)
    for name, default in declared.items():
        assert params[name] == default, (name, params[name], default)
    config_from_parameters(params.get)  # and they make a valid config


def test_activation_cycles_reuse_one_ticker_and_do_not_grow_memory(unit_domain_id: int) -> None:
    """Issue 9 soak: the safety node's memory grew ~0.9 MiB a minute while the sim re-activated it every
    episode; a new Ticker (hidden node, executor, thread) per activation leaked ~90 KiB each time. One ticker
    per configure, paused (timer cancelled) while inactive: the same object across cycles, and 100 cycles grow
    resident memory by less than a third of what the leak did (9 MiB)."""
    import os

    import rclpy

    from cosmos_ros.nodes.safety_node import SafetyNode

    def rss_mib() -> float:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise AssertionError("no VmRSS")

    limits = Path(__file__).resolve().parents[1] / "config" / "limits" / "arm7_joints.yaml"
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=unit_domain_id)
    node = SafetyNode(context=ctx, parameter_overrides=[Parameter("limits_file", value=str(limits))])
    try:
        assert node.bring_up()
        ticker = node._ticker
        assert ticker is not None
        for _ in range(10):  # warm-up (first-call allocations)
            node.trigger_deactivate()
            node.trigger_activate()
        before = rss_mib()
        for _ in range(100):
            node.trigger_deactivate()
            assert node._ticker is ticker and ticker._timer.is_canceled()
            node.trigger_activate()
        assert node._ticker is ticker
        assert rss_mib() - before < 3.0
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def test_a_plan_being_checked_does_not_hold_the_control_tick(unit_domain_id: int) -> None:
    """Issue 9 defect 2 without a clock: while a plan's check and clamp (``prepare``) is held inside the plan
    callback, a control tick runs to completion; with the check under the tick's lock it would wait for the
    check (here: forever, until the test releases it). After the release the plan is committed."""
    import threading

    import rclpy

    from cosmos_ros.msg import SafetyStatus
    from cosmos_ros.nodes.conversions import plan_to_msg
    from cosmos_ros.nodes.safety_node import SafetyNode
    from cosmos_ros.plan import Plan
    from cosmos_ros.safety import load_limits

    limits_path = Path(__file__).resolve().parents[1] / "config" / "limits" / "arm7_joints.yaml"
    limits = load_limits(limits_path)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=unit_domain_id)
    node = SafetyNode(context=ctx, parameter_overrides=[Parameter("limits_file", value=str(limits_path))])
    entered, release = threading.Event(), threading.Event()
    try:
        assert node.bring_up()
        sup = node._supervisor
        real_prepare = sup.prepare

        def held_prepare(*args: Any, **kwargs: Any) -> Any:
            entered.set()
            release.wait(60.0)
            return real_prepare(*args, **kwargs)

        sup.prepare = held_prepare  # instance attribute: this node's supervisor only
        decisions: list[Any] = []
        node._publish_decision = lambda d, _c: decisions.append(d)  # type: ignore[method-assign]
        plan = Plan(
            plan_id=1,
            stamp_s=0.0,
            t0_s=0.0,
            step_period_s=0.1,
            axis_names=limits.axis_names,
            values=np.zeros((limits.max_plan_steps, len(limits.axis_names))),
            frame_id=limits.frame_id,
            action_space=limits.action_space,
        )
        checker = threading.Thread(target=node._on_plan, args=(plan_to_msg(plan),), daemon=True)
        checker.start()
        assert entered.wait(30.0), "the plan callback never reached prepare"
        tick = threading.Thread(target=node._on_tick, daemon=True)
        tick.start()
        tick.join(30.0)
        assert not tick.is_alive(), "a control tick waited for the plan check"
        assert not decisions, "the plan was committed before its check ended"
        release.set()
        checker.join(30.0)
        assert not checker.is_alive() and len(decisions) == 1
        assert decisions[0].plan_id == 1 and int(decisions[0].decision) != SafetyStatus.DECISION_NONE
    finally:
        release.set()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
