"""The analysis of the process-fault tool on made-up traces (no ROS): the limit check can fail, a soft start
from a measured state just outside a bound is told apart from a violation, and rest / recovery are found."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from cosmos_ros.tools import process_faults as pf

LIMITS = str(Path(__file__).resolve().parents[1] / "config" / "limits" / "arm7_joints.yaml")
DT = 0.01
HOME = np.array([0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0, 0.04])


def trace(setpoints: list[np.ndarray | None], segments: list[int] | None = None) -> SimpleNamespace:
    ticks = [
        SimpleNamespace(k=k, sim_s=k * DT, ros_ns=k * 10_000_000, setpoint=sp,
                        measured=HOME if sp is None else sp, velocity=np.zeros(8), gate_holding=sp is None,
                        segment=(segments or [0] * len(setpoints))[k])
        for k, sp in enumerate(setpoints)
    ]  # fmt: skip
    return SimpleNamespace(tick_s=DT, ticks=ticks, statuses=[], plans=[], timeouts={}, refusals={},
                           events=[], handshakes=[])  # fmt: skip


def test_a_jump_is_a_violation() -> None:
    sps = [HOME.copy() for _ in range(10)]
    sps[5] = HOME + np.array([0.5, 0, 0, 0, 0, 0, 0, 0])  # 50 rad/s for one tick
    problems, soft = pf.check_segments(trace(sps), LIMITS)  # type: ignore[arg-type]
    assert problems and not soft
    assert not pf.analyse("jump", trace(sps), 0, LIMITS).within_limits  # type: ignore[arg-type]


def test_soft_start_just_outside_a_bound_is_reported_apart() -> None:
    over = HOME.copy()
    over[7] = 0.08005  # gripper 5e-5 m over its 0.08 m bound, as measured at the soft start
    inside = over.copy()
    inside[7] = 0.08  # then back on the bound (0.5 m/s^2 for one tick: within the gripper's 1 m/s^2)
    sps = [over, over, over] + [inside] * 5
    problems, soft = pf.check_segments(trace(sps), LIMITS)  # type: ignore[arg-type]
    assert soft and all("position of axis 7" in s for s in soft)
    assert not problems, problems


def test_controllers_holding_with_the_arm_still_is_rest() -> None:
    sps: list[np.ndarray | None] = [HOME.copy() for _ in range(5)] + [None] * 30
    result = pf.analyse("killed", trace(sps), 5, LIMITS)  # type: ignore[arg-type]
    assert result.within_limits and result.time_to_rest_s is not None and result.time_to_recover_s is None
    assert "nothing 0.30 s" in result.streamed
