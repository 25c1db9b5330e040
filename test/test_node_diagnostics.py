"""The planner's and the simulator's diagnostics computations, tested without ROS (the safety node's are in
test_safety_node_core.py)."""

from __future__ import annotations

import pytest

from cosmos_ros.camera_watch import Silence
from cosmos_ros.diagnostics import Level
from cosmos_ros.frames import FrameStats
from cosmos_ros.inference_worker import FRAMES_DROPPED
from cosmos_ros.latency import LatencyStats
from cosmos_ros.planner_diagnostics import (
    MODEL_ERROR,
    PlannerSnapshot,
    count_errors,
    planner_diagnostics,
)
from cosmos_ros.sim.diagnostics import sim_diagnostics


def _snapshot(**overrides: object) -> PlannerSnapshot:
    fields: dict[str, object] = {
        "counts": {"plans_published": 4, FRAMES_DROPPED: 2, "rejected_image_encoding": 1, MODEL_ERROR: 1},
        "active": True,
        "goal": "touch the red cube",
        "plan_rate_hz": 0.5,
        "inference_last_s": 1.25,
        "inference_mean_s": 1.5,
        "latency": LatencyStats(count=3, last_s=1.3, mean_s=1.4, p95_s=1.6, max_s=1.7),
        "warmup_latency_s": None,
        "next_plan_id": 5,
        "last_errors": 2,
    }
    fields.update(overrides)
    return PlannerSnapshot(**fields)  # type: ignore[arg-type]


def test_values_in_order_with_counters_and_latency() -> None:
    result = planner_diagnostics(_snapshot())
    assert result.errors == 2 and result.report.level == Level.OK
    assert result.report.message == "planning"
    assert result.report.values == {
        "active": "True",
        "goal": "touch the red cube",
        "plan_rate_hz": "0.500",
        "inference_time_last_s": "1.2500",
        "inference_time_mean_s": "1.5000",
        "latency_samples": "3",
        "latency_last_s": "1.3000",
        "latency_mean_s": "1.4000",
        "latency_p95_s": "1.6000",
        "latency_max_s": "1.7000",
        "warmup_latency_s": "",
        "next_plan_id": "5",
        "errors_total": "2",
        "frame_sets_dropped": "2",
        "plans_published": "4",
        "rejected_image_encoding": "1",
        MODEL_ERROR: "1",
    }


def test_frames_server_and_silent_cameras() -> None:
    frames = FrameStats(received={"a": 10, "b": 8}, dropped={"a": 1}, out_of_order={"b": 2}, sets_taken=7)
    silent = (Silence("/cam_b", 3.04, ever_received=False),)
    report = planner_diagnostics(
        _snapshot(frames=frames, server={"connected": True}, silent_cameras=silent, warmup_latency_s=0.25)
    ).report
    v = report.values
    assert (v["frames_received"], v["frames_dropped_unsynced"]) == ("18", "3")
    assert v["server_connected"] == "True" and v["camera_silent_s:/cam_b"] == "3.0"
    assert v["warmup_latency_s"] == "0.2500"
    assert (report.level, report.message) == (Level.WARN, "no camera frames on /cam_b (see the log)")
    # Inactive: silence is not reported (nothing is expected then).
    inactive = planner_diagnostics(_snapshot(active=False, silent_cameras=silent)).report
    assert not any(k.startswith("camera_silent_s") for k in inactive.values)
    assert (inactive.level, inactive.message) == (Level.OK, "inactive")


@pytest.mark.parametrize(
    ("overrides", "level", "message"),
    [
        ({"last_errors": 0}, Level.WARN, "2 new errors/rejections"),
        ({"last_errors": 2}, Level.OK, "planning"),
        ({"goal": ""}, Level.OK, "idle (no goal)"),
        ({"last_errors": 0, "active": False}, Level.WARN, "2 new errors/rejections"),
    ],
)
def test_new_errors_warn_once(overrides: dict, level: Level, message: str) -> None:
    report = planner_diagnostics(_snapshot(**overrides)).report
    assert (report.level, report.message) == (level, message)


def test_errors_are_rejections_and_failures_not_successes() -> None:
    assert (
        count_errors({"rejected_goal_too_long": 2, "tile_error": 1, "server_error": 1, "publish_error": 1})
        == 5
    )
    assert count_errors({"plans_published": 9, "plans_late": 3, FRAMES_DROPPED: 4}) == 0


# --- simulator -------------------------------------------------------------------------------------------
def test_sim_diagnostics_warn_on_refused_setpoints() -> None:
    ok = sim_diagnostics(12.3456, 2, 1, {})
    assert (ok.level, ok.message) == (Level.OK, "ok")
    assert ok.values == {"sim_time_s": "12.346", "episodes_done": "2", "successes": "1"}
    refused = sim_diagnostics(0.0, 0, 0, {"stale": 2, "out_of_range": 1})
    assert (refused.level, refused.message) == (Level.WARN, "3 setpoints refused")
    assert list(refused.values)[-2:] == ["refused_out_of_range", "refused_stale"]
    assert refused.values["refused_stale"] == "2"
