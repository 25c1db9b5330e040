"""Golden regression test of the real nodes: the demo bag replayed in lockstep into planner -> safety.

What runs: ``cosmos_ros.testing.node_replay.replay_into_nodes`` starts the planner (tiny random-weight model,
``arm7_joints``, seed 0) and the safety node (the repository's ``config/limits/arm7_joints.yaml``) as
processes on sim time and plays the generated demo bag into them with ``/clock`` in lockstep: one camera
frame per bag second, the bag clock frozen until the safety node has decided on the frame's plan, then
advanced on the 10 ms control grid one answered tick at a time. The recorded plans, safety decisions and
setpoints (resampled at 10 Hz of bag time) are compared with ``test/golden/demo_arm7.json`` within
``DEFAULT_TOLERANCES``.

The second test replays with one binding limit tightened (a copy of the limits file) and checks that the
comparison FAILS, and fails on the safety outputs, not on the plans: so the golden actually guards the
limits in ``config/``. The tiny model's actions are noise far outside the joint ranges (placeholder
statistics), so bounds and rate limits bind on every plan.

Refresh the golden after an intended change:
``COSMOS_ROS_UPDATE_GOLDEN=1 pytest test/test_regression_golden.py``
(then look at the diff and commit it). Plans here say nothing about planning quality: the model is random.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rclpy", reason="rclpy not importable (ROS 2 not installed or sourced)")
if importlib.util.find_spec("cosmos_ros.msg") is None:
    pytest.skip(reason="cosmos_ros.msg not built (run scripts/setup.sh)", allow_module_level=True)

from cosmos_ros.testing.golden import compare, read_golden
from cosmos_ros.testing.node_replay import (
    DEFAULT_RECORD_TOPICS,
    DEFAULT_TOLERANCES,
    NodeReplayConfig,
    compare_with_golden,
    load_for_golden,
    replay_into_nodes,
)
from cosmos_ros.tools.make_demo_bag import make_demo_bag

pytestmark = [pytest.mark.ros, pytest.mark.slow]

GOLDEN = Path(__file__).resolve().parent / "golden" / "demo_arm7.json"
PLAYED = ("/camera/image_raw", "/goal", "/joint_states")
# 3 frames (bag seconds 0, 1, 2) -> 3 plans of 16 steps at 15 Hz (1.07 s each): the stream never runs dry.
END_OFFSET_S = 2.5
LIMIT_TO_TIGHTEN = ("  - name: panda_joint1\n", "    max_velocity: 2.175\n", "    max_velocity: 0.5\n")


@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("golden") / "demo_bag"
    make_demo_bag(path)
    return path


def _replay(bag: Path, model: Path, limits: Path, out: Path, domain_id: int) -> Path:
    planner: dict[str, Any] = {
        "model_path": str(model),
        "action_space": "arm7_joints",
        "backend": "diffusers",
        "num_inference_steps": 2,
        "chunk_size": 16,
        "seed": 0,
        "camera_topics": ["/camera/image_raw"],
        "goal_topic": "/goal",
        "publish_diagnostics": False,
    }
    safety = {"limits_file": str(limits), "measured_state_topic": "joint_states"}
    config = NodeReplayConfig(
        bag=bag,
        planner_params=planner,
        safety_params=safety,
        topics=PLAYED,
        record_topics=DEFAULT_RECORD_TOPICS,
        out_dir=out,
        frame_interval_s=1.0,
        end_offset_s=END_OFFSET_S,
        domain_id=domain_id,
    )
    return replay_into_nodes(config)


def test_demo_replay_matches_golden(
    demo_bag: Path, tiny_model_dir: Path, repo_root: Path, tmp_path: Path, domain_id: int
) -> None:
    t0 = time.monotonic()
    recorded = _replay(
        demo_bag, tiny_model_dir, repo_root / "config/limits/arm7_joints.yaml", tmp_path, domain_id
    )
    result = compare_with_golden(recorded, GOLDEN, DEFAULT_TOLERANCES)
    print(f"replay + comparison in {time.monotonic() - t0:.1f} s: {result.report()}")
    # The golden holds what the test claims: 3 plans, a decision on each, a setpoint stream.
    golden = read_golden(GOLDEN)
    assert len(golden["/action_sequence"]["messages"]) == 3
    decisions = [m for m in golden["/safety_status"]["messages"] if m["plan_id"] > 0]
    assert [m["plan_id"] for m in decisions] == [1, 2, 3]
    assert len(golden["/forward_position_controller/commands@10Hz"]["messages"]) >= 30


def test_tightened_limit_breaks_the_golden(
    demo_bag: Path, tiny_model_dir: Path, repo_root: Path, tmp_path: Path, domain_id: int
) -> None:
    text = (repo_root / "config/limits/arm7_joints.yaml").read_text()
    axis, old, new = LIMIT_TO_TIGHTEN
    start = text.index(axis)
    at = text.index(old, start)
    assert at < text.index("  - name:", start + len(axis)), (
        "max_velocity of panda_joint1 not found in its block"
    )
    limits = tmp_path / "arm7_joints_tight.yaml"
    limits.write_text(text[:at] + new + text[at + len(old) :])
    recorded = _replay(demo_bag, tiny_model_dir, limits, tmp_path, domain_id)
    with pytest.raises(AssertionError, match="golden mismatch"):
        compare_with_golden(recorded, GOLDEN, DEFAULT_TOLERANCES, update=False)
    # It fails because of the limit: the plans still match, the safety outputs do not.
    result = compare(
        load_for_golden(recorded, DEFAULT_RECORD_TOPICS), read_golden(GOLDEN), DEFAULT_TOLERANCES
    )
    assert result.compared.get("/action_sequence") == 3
    assert not any(p.startswith("/action_sequence") for p in result.problems), result.report()
    assert any(p.startswith("/forward_position_controller/commands@10Hz") for p in result.problems)
