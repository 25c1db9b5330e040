"""cosmos_ros.testing.golden on synthetic recorded bags: passes on equal data, fails on each change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cosmos_ros.replay import BagRecorder
from cosmos_ros.replay.types import ensure_type, make_typestore
from cosmos_ros.testing.golden import (
    UPDATE_ENV,
    Tolerance,
    assert_matches_golden,
    check_golden,
    compare,
    flatten,
    load_recorded,
    load_timed,
    read_golden,
    resample,
)
from cosmos_ros.testing.node_replay import load_for_golden, resampled_name

PLAN = "cosmos_ros/msg/ActionSequence"
SETPOINT = "std_msgs/msg/Float64MultiArray"
STORE = make_typestore()
ensure_type(STORE, PLAN)
T = STORE.types


def stamp(t_s: float) -> Any:
    ns = round(t_s * 1e9)
    return T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def plan(k: int, offset: float = 0.0, goal: str = "pick", inference: float = 0.1) -> Any:
    header = T["std_msgs/msg/Header"](stamp=stamp(100.0 + 0.5 * k), frame_id="panda_link0")
    points = [
        T["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=np.array([0.1 * k + 0.01 * s + offset, -0.2 * s], dtype=np.float64),
            velocities=np.zeros(0),
            accelerations=np.zeros(0),
            effort=np.zeros(0),
            time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=66_666_667 * s),
        )
        for s in range(4)
    ]
    return T[PLAN](
        header=header,
        plan_id=k + 1,
        goal=goal,
        action_space="arm7_joints",
        model_id=f"/tmp/model_{k}",  # a local path: ignored by default
        backend="diffusers",
        step_period=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=66_666_667),
        trajectory=T["trajectory_msgs/msg/JointTrajectory"](
            header=header, joint_names=["j1", "j2"], points=points
        ),
        ee_poses=T["geometry_msgs/msg/PoseArray"](header=header, poses=[]),
        gripper=np.zeros(0),
        raw_width=2,
        raw_actions=np.array([0.5, -0.5] * 4, dtype=np.float32),
        inference_time_s=inference,
        queue_time_s=0.01 * k,
        expected_latency_s=0.0,
        latency_p95_s=0.0,
        prefix_steps=0,
        planner_session_id=0,
    )


def setpoint(k: int, offset: float = 0.0) -> Any:
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return T[SETPOINT](layout=layout, data=np.array([0.01 * k + offset, 1.0 - 0.01 * k]))


def record(path: Path, n_plans: int = 3, n_setpoints: int = 20, **changes: Any) -> Path:
    skip_sp = set(changes.pop("skip_setpoints", ()))
    sp_offset = changes.pop("sp_offset", 0.0)
    with BagRecorder(path, {"/plan": PLAN, "/setpoints": SETPOINT}) as rec:
        for k in range(n_plans):
            rec.write("/plan", 10**9 * k, bytes(STORE.serialize_cdr(plan(k, **changes), PLAN)))
        for k in range(n_setpoints):
            if k not in skip_sp:
                rec.write(
                    "/setpoints", 10**8 * k, bytes(STORE.serialize_cdr(setpoint(k, sp_offset), SETPOINT))
                )
    return rec.path


TOPICS = ("/plan", "/setpoints")
TOL = {"/plan": Tolerance(atol=1e-4, rtol=0.0), "/setpoints": Tolerance(atol=1e-3, rtol=0.0)}


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    path = tmp_path / "golden" / "demo.json"
    result = check_golden(record(tmp_path / "ref"), path, TOPICS, TOL, update=True)
    assert result.ok and result.updated and result.compared == {"/plan": 3, "/setpoints": 20}
    return path


def test_flatten_paths() -> None:
    flat = flatten(plan(1))
    assert flat["plan_id"] == 2 and flat["goal"] == "pick"
    assert flat["trajectory.points.3.positions"] == pytest.approx([0.13, -0.6])
    assert flat["trajectory.joint_names"] == ["j1", "j2"]
    assert flat["header.stamp.sec"] == 100 and flat["ee_poses.poses"] == []
    assert flat["raw_actions"] == pytest.approx([0.5, -0.5] * 4)


def test_golden_file_is_readable_json_with_stated_tolerances(golden: Path) -> None:
    doc = json.loads(golden.read_text())
    assert doc["tolerances"]["/plan"]["atol"] == 1e-4
    assert len(doc["topics"]["/plan"]["messages"]) == 3
    assert read_golden(golden)["/setpoints"]["type"] == SETPOINT


def test_same_run_matches(golden: Path, tmp_path: Path) -> None:
    result = assert_matches_golden(record(tmp_path / "run"), golden, TOPICS, TOL, update=False)
    assert result.ok and result.compared == {"/plan": 3, "/setpoints": 20}
    assert "matches golden" in result.report()


def test_changes_within_tolerance_and_ignored_fields_pass(golden: Path, tmp_path: Path) -> None:
    bag = record(tmp_path / "run", offset=5e-5, inference=3.0, sp_offset=5e-4)
    assert check_golden(bag, golden, TOPICS, TOL, update=False).ok


@pytest.mark.parametrize(
    ("changes", "expect"),
    [
        ({"offset": 2e-4}, "/plan[0].trajectory.points.0.positions[0]"),
        ({"sp_offset": 2e-3}, "/setpoints[0].data[0]"),
        ({"goal": "place"}, "/plan[0].goal: 'place' != golden 'pick'"),
        ({"n_plans": 2}, "/plan: 2 messages recorded, golden has 3"),
        ({"skip_setpoints": (7,)}, "/setpoints: 19 messages recorded, golden has 20"),
    ],
)
def test_changes_beyond_tolerance_fail_and_say_where(
    golden: Path, tmp_path: Path, changes: dict, expect: str
) -> None:
    result = check_golden(record(tmp_path / "run", **changes), golden, TOPICS, TOL, update=False)
    assert not result.ok
    assert any(expect in p for p in result.problems), result.problems
    with pytest.raises(AssertionError, match="golden mismatch"):
        assert_matches_golden(record(tmp_path / "run2", **changes), golden, TOPICS, TOL, update=False)


def test_ignored_fields_are_configurable(golden: Path, tmp_path: Path) -> None:
    bag = record(tmp_path / "run", inference=3.0)
    strict = {**TOL, "/plan": Tolerance(atol=1e-4, rtol=0.0, ignore=())}
    result = check_golden(bag, golden, TOPICS, strict, update=False)
    assert not result.ok
    assert any("inference_time_s" in p for p in result.problems)
    assert not any("model_id" in p for p in result.problems)  # still ignored: same k, same id here


def test_count_tolerance_and_stamp_alignment(golden: Path, tmp_path: Path) -> None:
    # one plan lost at the start: index alignment would compare plan 1 with plan 0 -> fails even with
    # count_tolerance; stamp alignment pairs by header stamp and passes with count_tolerance=1
    recorded = load_recorded(record(tmp_path / "run"), TOPICS)
    recorded["/plan"]["messages"] = recorded["/plan"]["messages"][1:]
    ref = read_golden(golden)
    by_index = compare(recorded, ref, {**TOL, "/plan": Tolerance(atol=1e-4, count_tolerance=1)})
    assert not by_index.ok
    by_stamp = compare(
        recorded, ref, {**TOL, "/plan": Tolerance(atol=1e-4, count_tolerance=1, align="stamp")}
    )
    assert by_stamp.ok, by_stamp.problems
    assert by_stamp.compared["/plan"] == 2
    recorded["/plan"]["messages"] = recorded["/plan"]["messages"][1:]
    assert not compare(
        recorded, ref, {**TOL, "/plan": Tolerance(atol=1e-4, count_tolerance=1, align="stamp")}
    ).ok
    # stamp alignment without stamps is an error, not a pass
    no_stamp = compare(recorded, ref, {**TOL, "/setpoints": Tolerance(align="stamp")})
    assert any("needs header.stamp" in p for p in no_stamp.problems)


def test_topic_sets_must_agree(golden: Path, tmp_path: Path) -> None:
    recorded = load_recorded(record(tmp_path / "run"), TOPICS)
    ref = read_golden(golden)
    del recorded["/setpoints"]
    result = compare(recorded, ref, TOL)
    assert any("/setpoints: in the golden file but not recorded" in p for p in result.problems)
    recorded["/extra"] = {"type": SETPOINT, "messages": []}
    assert any("/extra: recorded but not in the golden" in p for p in compare(recorded, ref, TOL).problems)


def test_missing_golden_fails_with_hint_and_env_var_creates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = record(tmp_path / "run")
    path = tmp_path / "new.json"
    monkeypatch.delenv(UPDATE_ENV, raising=False)
    result = check_golden(bag, path, TOPICS)
    assert not result.ok and UPDATE_ENV in result.problems[0] and not path.exists()
    monkeypatch.setenv(UPDATE_ENV, "1")
    assert check_golden(bag, path, TOPICS).updated and path.is_file()
    monkeypatch.setenv(UPDATE_ENV, "0")
    assert check_golden(bag, path, TOPICS).ok and not check_golden(bag, path, TOPICS).updated


def test_nan_handling(golden: Path, tmp_path: Path) -> None:
    recorded = load_recorded(record(tmp_path / "run"), TOPICS)
    ref = read_golden(golden)
    recorded["/setpoints"]["messages"][3]["data"][0] = float("nan")
    result = compare(recorded, ref, TOL)
    assert not result.ok and any("/setpoints[3].data[0]: nan" in p for p in result.problems)
    ref["/setpoints"]["messages"][3]["data"][0] = float("nan")
    assert compare(recorded, ref, TOL).ok  # NaN where the golden has NaN is a match


def test_tolerance_validation() -> None:
    with pytest.raises(ValueError, match="atol"):
        Tolerance(atol=-1.0)
    with pytest.raises(ValueError, match="align"):
        Tolerance(align="time")
    with pytest.raises(ValueError, match="count_tolerance"):
        Tolerance(count_tolerance=-1)


def test_resample_holds_the_last_value_at_fixed_bag_times() -> None:
    msgs = [{"data": [float(k)]} for k in range(4)]
    times = [1_000_000_000 + d for d in (30_000_000, 120_000_000, 150_000_000, 410_000_000)]
    out = resample(times, msgs, 0.1)
    # samples at 1.1, 1.2, 1.3, 1.4 s (first multiple of 0.1 s after the first message, to the last)
    assert [round(m["t_s"], 6) for m in out] == [1.1, 1.2, 1.3, 1.4]
    assert [m["data"] for m in out] == [[0.0], [2.0], [2.0], [2.0]]
    assert [m["data"] for m in resample(times, msgs, 0.1, end_ns=1_500_000_000)][-1] == [3.0]
    # a message exactly at a sample time is in force at that time
    assert resample([2 * 10**9, 2 * 10**9 + 10**8], msgs[:2], 0.1)[1]["data"] == [1.0]
    assert resample([], [], 0.1) == []
    with pytest.raises(ValueError, match="period_s"):
        resample(times, msgs, 0.0)
    with pytest.raises(ValueError, match="sorted"):
        resample(times[::-1], msgs, 0.1)


def test_load_for_golden_resamples_setpoint_topics(tmp_path: Path) -> None:
    bag = record(tmp_path / "rec", n_setpoints=20)  # setpoints every 0.1 s from t = 0
    timed = load_timed(bag, ["/setpoints"])
    assert timed["/setpoints"]["times_ns"] == [10**8 * k for k in range(20)]
    data = load_for_golden(bag, ["/plan:" + PLAN, "/setpoints"], {"/setpoints": 5.0})
    name = resampled_name("/setpoints", 5.0)
    assert set(data) == {"/plan", name} and name == "/setpoints@5Hz"
    samples = data[name]["messages"]
    # 5 Hz from 0 s up to the last recorded message (plans at 0, 1, 2 s): 0.0, 0.2, ... 2.0 s
    assert [round(m["t_s"], 6) for m in samples] == [round(0.2 * k, 6) for k in range(11)]
    assert samples[1]["data"] == pytest.approx([0.02, 0.98])  # the setpoint sent at 0.2 s
    assert samples[-1]["data"] == pytest.approx([0.19, 0.81])  # the last one, held after 1.9 s


def test_state_change_statuses_lose_their_stamps_plan_decisions_keep_them(tmp_path: Path) -> None:
    status_type = "cosmos_ros/msg/SafetyStatus"
    ensure_type(STORE, status_type)

    def status(plan_id: int, t_s: float) -> bytes:
        msg = T[status_type](
            header=T["std_msgs/msg/Header"](stamp=stamp(t_s), frame_id="panda_link0"),
            plan_id=plan_id,
            decision=2 if plan_id else 0,
            reasons=["velocity"] if plan_id else [],
            message="",
            axis_names=["j1"] if plan_id else [],
            max_correction=np.array([0.5] if plan_id else [], dtype=np.float64),
            num_steps=16 if plan_id else 0,
            steps_skipped=0,
            output_state=1,
            estop_latched=False,
            watchdog_active=False,
            shadow_mode=False,
            plans_received=plan_id,
            plans_rejected=0,
            plans_clamped=plan_id,
        )
        return bytes(STORE.serialize_cdr(msg, status_type))

    with BagRecorder(tmp_path / "st", {"/safety_status": status_type}) as rec:
        rec.write("/safety_status", 10**9, status(1, 1.0))
        rec.write("/safety_status", 2 * 10**9, status(0, 2.01))
    msgs = load_for_golden(rec.path, ["/safety_status"])["/safety_status"]["messages"]
    assert msgs[0]["header.stamp.sec"] == 1 and msgs[0]["max_correction"] == [0.5]
    assert "header.stamp.sec" not in msgs[1] and "header.stamp.nanosec" not in msgs[1]
    assert (
        msgs[1]["plan_id"] == 0
        and msgs[1]["output_state"] == 1
        and msgs[1]["header.frame_id"] == "panda_link0"
    )
    kept = load_for_golden(rec.path, ["/safety_status"], status_topic=None)["/safety_status"]["messages"]
    assert kept[1]["header.stamp.nanosec"] == 10_000_000
