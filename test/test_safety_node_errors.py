"""Internal errors inside the node's callbacks: caught, counted, logged, and never a motion command.

White-box and in-process on purpose: an internal error cannot be provoked from outside a healthy node, so
these tests make the core raise (monkeypatched) and drive the callbacks directly, with the ticker stopped so
that only the test calls ``_on_tick``. Outputs and status go to recording fakes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState

from cosmos_ros.msg import SafetyStatus
from cosmos_ros.nodes.conversions import plan_to_msg
from cosmos_ros.nodes.safety_node import SafetyNode
from cosmos_ros.plan import Plan

pytestmark = pytest.mark.ros

AXES = ("j1", "j2")
MEASURED = [0.2, -0.3]


class Sink:
    """Stands in for an output adapter / the status publisher; records what would have gone out."""

    kind = "sink"

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def topics(self) -> list[str]:
        return ["sink"]

    def publish(self, values: Any, stamp: Any = None) -> None:
        self.sent.append(np.array(values, copy=True) if stamp is not None else values)


@pytest.fixture
def node(tmp_path: Path, unit_domain_id: int) -> Iterator[SafetyNode]:
    limits = tmp_path / "limits.yaml"
    axes = "\n".join(
        f"  - {{name: {n}, unit: rad, min_position: -1.0, max_position: 1.0, max_velocity: 1.0, "
        "max_acceleration: 10.0, max_jerk: 1000.0, max_step_from_measured: null, "
        "measured_plausibility_margin: 0.1}"
        for n in AXES
    )
    limits.write_text(
        f"action_space: t\nkind: joint\nframe_id: base_link\nstaleness_limit_s: 2.0\ncontrol_rate_hz: 100.0\n"
        f"max_plan_steps: 256\nmeasured_max_speed_factor: 2.0\naxes:\n{axes}\n"
    )
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=unit_domain_id)
    n = SafetyNode(
        context=ctx,
        parameter_overrides=[
            Parameter("limits_file", value=str(limits)),
            Parameter("autostart", value=False),
            Parameter("output_adapters", value=["float64_multi_array"]),
        ],
    )
    try:
        assert n.bring_up()
        assert n._ticker is not None
        n._ticker.stop()  # only the test ticks from here on
        n._ticker = None
        n._adapters = [Sink()]  # type: ignore[list-item]
        n._status_pub = Sink()
        n._on_joint_state(JointState(name=list(reversed(AXES)), position=list(reversed(MEASURED))))
        yield n
    finally:
        n.destroy_node()
        rclpy.shutdown(context=ctx)


def _sent(n: SafetyNode) -> list[np.ndarray]:
    return n._adapters[0].sent  # type: ignore[attr-defined, no-any-return]


def test_a_tick_that_raises_publishes_nothing_and_is_counted(node: SafetyNode, monkeypatch: Any) -> None:
    node._on_tick()
    assert len(_sent(node)) == 1
    np.testing.assert_array_equal(_sent(node)[0], MEASURED)  # soft start: the measured state

    def boom(now: float) -> None:
        raise RuntimeError("core exploded")

    monkeypatch.setattr(node._supervisor, "tick", boom)
    for _ in range(5):
        node._on_tick()  # must not raise
    assert len(_sent(node)) == 1, "a failing tick published something"
    assert node._errors["tick"] == 5
    values = {kv.key: kv.value for kv in node._diagnostics().status[0].values}
    assert values["internal_error.tick"] == "5" and values["internal_errors"] == "5"

    monkeypatch.undo()
    node._on_tick()  # the core works again: streaming resumes from where it was (hold)
    assert len(_sent(node)) == 2
    np.testing.assert_array_equal(_sent(node)[1], MEASURED)


def test_an_adapter_that_raises_does_not_kill_the_tick(node: SafetyNode) -> None:
    class Broken(Sink):
        def publish(self, values: Any, stamp: Any = None) -> None:
            raise ValueError("publisher gone")

    node._adapters = [Broken()]  # type: ignore[list-item]
    node._on_tick()
    assert node._errors["tick"] == 1


def test_a_plan_whose_check_raises_is_reported_rejected_and_not_streamed(
    node: SafetyNode, monkeypatch: Any
) -> None:
    node._on_tick()

    def boom(plan: Plan, now: float) -> None:
        raise RuntimeError("checker exploded")

    monkeypatch.setattr(node._supervisor, "prepare", boom)  # the node checks via prepare + commit
    now = node.get_clock().now().nanoseconds * 1e-9
    plan = Plan(
        plan_id=1,
        stamp_s=now,
        t0_s=now,
        step_period_s=0.1,
        axis_names=AXES,
        values=np.full((10, 2), 0.9),
        frame_id="base_link",
        action_space="t",
    )
    node._on_plan(plan_to_msg(plan))  # must not raise
    (status,) = [s for s in node._status_pub.sent if s.plan_id != 0]  # plan_id 0: state changes
    assert status.plan_id == 1 and status.decision == SafetyStatus.DECISION_REJECTED
    assert list(status.reasons) == ["internal_error"]
    assert node._errors["plan"] == 1
    for _ in range(20):
        node._on_tick()
    assert all(np.array_equal(v, MEASURED) for v in _sent(node)), "the failed plan moved the output"


def test_configure_fails_when_the_measured_state_type_does_not_fit_the_space(unit_domain_id: int) -> None:
    """A pose space fed JointStates could never get a measured state: refuse at configure, not at runtime."""
    from rclpy.lifecycle import TransitionCallbackReturn

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=unit_domain_id)
    n = SafetyNode(
        context=ctx,
        parameter_overrides=[
            Parameter("limits_file", value="config/limits/umi_pose_gripper.yaml"),
            Parameter("measured_state_type", value="joint_state"),
        ],
    )
    try:
        assert n.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert n._supervisor is None and not n._made_subs  # nothing left behind
        # Unconfigured: parameters may change. PoseStamped and JointState cannot share a topic.
        n.set_parameters([Parameter("measured_state_type", value="pose")])
        assert n.trigger_configure() == TransitionCallbackReturn.FAILURE
        n.set_parameters([Parameter("measured_state_topic", value="ee_pose")])
        assert n.trigger_configure() == TransitionCallbackReturn.SUCCESS
    finally:
        n.destroy_node()
        rclpy.shutdown(context=ctx)
