"""The simulator's side of the lockstep protocol (pure): which waits a planner's reports end, and when."""

from __future__ import annotations

import pytest

from cosmos_ros.sim.lockstep import LinkState, LockstepError, PlannerLink, Report, camera_due, seconds_to_ns


def test_frame_then_done_with_a_plan_returns_the_plan_to_await():
    link = PlannerLink()
    link.frame_sent(10)
    assert link.waiting and link.state is LinkState.AWAITING
    assert link.on_report(Report("done", frame_stamp_ns=10, plan_id=7)) == 7
    assert link.state is LinkState.IDLE and not link.waiting and link.plans == 1


def test_done_without_plan_counts_the_reason():
    link = PlannerLink()
    link.frame_sent(10)
    assert link.on_report(Report("done", frame_stamp_ns=10, detail="no_goal")) is None
    assert link.no_plan == {"no_goal": 1} and link.state is LinkState.IDLE


def test_held_plan_lets_time_run_until_its_release_tick():
    link = PlannerLink()
    link.frame_sent(100)
    assert link.on_report(Report("held", frame_stamp_ns=100, release_at_ns=350)) is None
    assert link.state is LinkState.HELD and not link.waiting
    assert not link.release_due(340)  # time runs, no wait
    assert link.release_due(350) and link.waiting  # the first tick at or past the release: wait for DONE
    assert link.on_report(Report("done", frame_stamp_ns=100, plan_id=3)) == 3
    assert link.state is LinkState.IDLE


@pytest.mark.parametrize(
    "report",
    [
        Report("done", frame_stamp_ns=11, plan_id=1),  # about another frame
        Report("held", frame_stamp_ns=10, release_at_ns=5),  # released before it was taken
    ],
)
def test_reports_that_do_not_fit_are_errors(report):
    link = PlannerLink()
    link.frame_sent(10)
    with pytest.raises(LockstepError):
        link.on_report(report)


def test_no_frame_to_a_busy_planner_and_no_report_for_an_idle_one():
    link = PlannerLink()
    with pytest.raises(LockstepError):
        link.on_report(Report("done", frame_stamp_ns=0))
    link.frame_sent(0)
    with pytest.raises(LockstepError):
        link.frame_sent(10)
    assert link.on_report(Report("goal", goal="x")) is None  # goal acks are not about frames


def test_camera_grid_and_times():
    assert [k for k in range(0, 120) if camera_due(k, 50)] == [0, 50, 100]
    with pytest.raises(ValueError):
        camera_due(0, 0)
    assert seconds_to_ns(0.01) == 10_000_000 and seconds_to_ns(1234.56) == 1_234_560_000_000
    with pytest.raises(ValueError):
        Report("other")
