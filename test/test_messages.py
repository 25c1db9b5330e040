"""The generated messages: field-for-field round trip across two processes over DDS, and the Plan mapping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosmos_ros.msg import ActionSequence, SafetyStatus
from cosmos_ros.nodes.conversions import msg_to_plan, plan_to_msg, sec_to_time, time_to_sec
from cosmos_ros.testing.ros_harness import TestPeer, ros_env, wait_until

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from publish_action_sequence import known_plan

pytestmark = pytest.mark.ros


def test_plan_round_trip_through_message() -> None:
    plan = known_plan()
    back = msg_to_plan(plan_to_msg(plan))
    assert back.axis_names == plan.axis_names
    np.testing.assert_array_equal(back.values, plan.values)
    assert back.plan_id == 42 and back.frame_id == "base_link" and back.goal == plan.goal
    assert back.step_period_s == pytest.approx(0.1, abs=1e-9)
    assert back.stamp_s == pytest.approx(plan.stamp_s, abs=1e-6)
    assert back.t0_s == pytest.approx(plan.t0_s, abs=1e-6)
    np.testing.assert_array_equal(back.raw_actions, plan.raw_actions)


def test_time_conversion_carries_rounding() -> None:
    t = sec_to_time(1.9999999999)
    assert (t.sec, t.nanosec) == (2, 0)
    assert time_to_sec(sec_to_time(12.5)) == 12.5
    with pytest.raises(ValueError, match="finite"):
        sec_to_time(float("nan"))


def test_message_to_plan_rejects_ragged_points() -> None:
    msg = plan_to_msg(known_plan())
    msg.trajectory.points[2].positions = [0.0]
    with pytest.raises(ValueError, match="positions"):
        msg_to_plan(msg)


def test_safety_status_constants() -> None:
    s = SafetyStatus()
    assert {s.DECISION_ACCEPTED, s.DECISION_CLAMPED, s.DECISION_REJECTED} == {1, 2, 3}
    assert s.OUTPUT_ESTOP == 4


def test_action_sequence_crosses_processes_field_for_field(domain_id: int) -> None:
    helper = Path(__file__).parent / "helpers" / "publish_action_sequence.py"
    expected = plan_to_msg(known_plan())
    with TestPeer(domain_id) as peer:
        rec = peer.record(ActionSequence, "roundtrip_plan")
        proc = subprocess.Popen(
            [sys.executable, str(helper), "roundtrip_plan", "30"],
            env=ros_env(domain_id),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert wait_until(lambda: len(rec) > 0, timeout=30), "no ActionSequence arrived over DDS"
        finally:
            proc.terminate()
            out = proc.communicate(timeout=15)[0].decode(errors="replace")
        got = rec.messages[0]
    assert got == expected, out  # rosidl messages compare every field
    assert got.trajectory.points[3].positions[1] == pytest.approx(0.6)
    assert got.ee_poses.poses[0].orientation.w == 1.0
    assert list(got.gripper) == pytest.approx([0.04, 0.03, 0.02, 0.01])
