"""The safety node's pure parts, tested without ROS: measured-state assembly and the diagnostics function."""

from __future__ import annotations

import numpy as np
import pytest

from cosmos_ros.diagnostics import Level
from cosmos_ros.safety.diagnostics import (
    NodeCounters,
    RateWindow,
    SafetySnapshot,
    safety_diagnostics,
)
from cosmos_ros.safety.intervals import IntervalHistogram
from cosmos_ros.safety.measured import MeasuredState
from cosmos_ros.safety.supervisor import OutputState, SupervisorCounters

JOINTS = ("j1", "j2", "gripper")
POSE = ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper")


# --- MeasuredState ---------------------------------------------------------------------------------------
def test_joint_states_are_matched_by_name_from_several_publishers() -> None:
    m = MeasuredState(JOINTS, "base_link")
    assert not m.complete and m.missing() == list(JOINTS)
    assert m.update_joint_state(["other", "j2", "j1"], [9.0, 0.2, 0.1])  # arm driver, its own order
    assert not m.complete and m.missing() == ["gripper"]
    assert m.update_joint_state(["gripper"], [0.04])  # gripper driver
    assert m.complete
    np.testing.assert_array_equal(m.values(), [0.1, 0.2, 0.04])
    m.values()[0] = 5.0  # a copy: the caller cannot change the state
    assert m.values()[0] == 0.1
    assert m.rejected == 0


def test_unusable_joint_states_are_counted_or_ignored() -> None:
    m = MeasuredState(JOINTS, "base_link")
    assert not m.update_joint_state(["j1", "j2"], [])  # effort-only message: no positions
    assert m.rejected == 1
    assert not m.update_joint_state(["elbow"], [1.0])  # no known joint: not used, not an error
    assert m.rejected == 1 and m.missing() == list(JOINTS)


def test_pose_in_the_limits_frame_only() -> None:
    m = MeasuredState(POSE, "base_link")
    assert not m.update_pose("camera", (1, 2, 3, 0, 0, 0, 1))
    assert m.rejected == 1 and m.missing() == list(POSE)
    assert m.update_pose("base_link", (1, 2, 3, 0, 0, 0, 1))
    assert m.missing() == ["gripper"]
    m.update_joint_state(["gripper"], [0.02])
    np.testing.assert_array_equal(m.values(), [1, 2, 3, 0, 0, 0, 1, 0.02])


# --- diagnostics -----------------------------------------------------------------------------------------
def _snapshot(**overrides: object) -> SafetySnapshot:
    window, total = IntervalHistogram(), IntervalHistogram()
    for dt in (0.010053, 0.010053, 0.012053):  # off the bin edges: 10 us bins, centre reported
        window.record(dt)
        total.record(dt)
    total.record(0.05)
    fields: dict[str, object] = {
        "counters": SupervisorCounters(
            plans_received=5,
            plans_accepted=2,
            plans_clamped=1,
            plans_rejected=2,
            rejections_by_reason={"stale": 2},
            limited_by_reason={"velocity": 3},
            measured_rejected_by_reason={"jump": 1},
            estop_resets_refused=1,
        ),
        "output_state": OutputState.STREAMING,
        "estop_latched": False,
        "measured_problem": "",
        "active": True,
        "shadow_mode": False,
        "control_rate_hz": 100.0,
        "missing_axes": (),
        "node": NodeCounters(node_rejections={"shape": 1, "stale": 1}, measured_rejected=4, setpoints_sent=7),
        "window": RateWindow(seconds=2.0, ticks=200, setpoints=198, plans=3),
        "window_intervals": window,
        "total_intervals": total,
    }
    fields.update(overrides)
    return SafetySnapshot(**fields)  # type: ignore[arg-type]


def test_values_combine_core_and_node_counters() -> None:
    r = safety_diagnostics(_snapshot())
    assert (r.level, r.message) == (Level.OK, "streaming")
    v = r.values
    # Plans the node rejected itself (malformed) count as received and rejected, by reason too.
    assert (v["plans_received"], v["plans_rejected"], v["plans_accepted"]) == ("7", "4", "2")
    assert (v["rejected.stale"], v["rejected.shape"]) == ("3", "1")
    assert (v["limited_ticks.velocity"], v["measured_rejected.jump"], v["measured_rejected"]) == (
        "3",
        "1",
        "4",
    )
    assert (v["tick_rate_hz"], v["setpoint_rate_hz"], v["plan_rate_hz"]) == ("100.00", "99.00", "1.500")
    assert v["control_rate_hz"] == "100" and v["setpoints_sent"] == "7" and v["estop_resets_refused"] == "1"
    assert v["tick_interval_p50_ms"] == "10.055" and v["tick_interval_max_ms"] == "12.053"
    assert (v["tick_interval_total_count"], v["tick_interval_total_max_ms"]) == ("4", "50.000")
    assert v["internal_errors"] == "0" and not any(k.startswith("internal_error.") for k in v)
    assert all(isinstance(x, str) for x in v.values())


@pytest.mark.parametrize(
    ("overrides", "level", "message"),
    [
        ({"estop_latched": True, "measured_problem": "jump"}, Level.ERROR, "e-stop latched"),
        (
            {"measured_problem": "x jumped"},
            Level.ERROR,
            "measured state implausible, nothing streamed: x jumped",
        ),
        ({"node": NodeCounters(errors={"tick": 2, "plan": 1})}, Level.WARN, "3 internal errors (held)"),
        (
            {"output_state": OutputState.WAITING_FOR_STATE, "missing_axes": ("gripper",)},
            Level.WARN,
            "no measured state yet for ['gripper']",
        ),
        ({"output_state": OutputState.DECELERATING}, Level.WARN, "watchdog: decelerating"),
        ({"output_state": OutputState.IDLE, "active": False}, Level.OK, "inactive"),
        ({"output_state": OutputState.WAITING_FOR_STATE, "active": False}, Level.OK, "inactive"),
    ],
)
def test_the_most_severe_condition_is_the_summary(overrides: dict, level: Level, message: str) -> None:
    r = safety_diagnostics(_snapshot(**overrides))
    assert (r.level, r.message) == (level, message)


def test_internal_errors_are_listed_by_callback() -> None:
    v = safety_diagnostics(_snapshot(node=NodeCounters(errors={"tick": 2, "plan": 1}))).values
    assert (v["internal_errors"], v["internal_error.tick"], v["internal_error.plan"]) == ("3", "2", "1")
    assert v["output_state"] == "streaming"


def test_empty_histograms_and_waiting_state_names() -> None:
    v = safety_diagnostics(
        _snapshot(
            output_state=OutputState.WAITING_FOR_STATE,
            window_intervals=IntervalHistogram(),
            total_intervals=IntervalHistogram(),
        )
    ).values
    assert v["output_state"] == "waiting_for_state"
    assert v["tick_interval_p99_ms"] == "nan" and v["tick_interval_total_count"] == "0"


def test_a_rate_window_must_have_a_length() -> None:
    with pytest.raises(ValueError, match="seconds must be > 0, got 0"):
        RateWindow(seconds=0.0)
