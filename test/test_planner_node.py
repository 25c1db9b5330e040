"""The planner node as a real process over DDS, on the tiny random-weight model.

What crosses DDS here is what a robot sees: images (and CompressedImage) in, goal strings in, ActionSequence,
nav_msgs/Path, predicted frames and diagnostics out. The model is random, so these tests check plumbing only
(stamps, frames, axis names, ids, which input produced which plan), never what the plans mean.

How "nothing was published for that input" is made checkable: every image carries a unique stamp and a plan
carries the stamp of the newest frame it used, so a plan made from a bad input would be recognisable. Before
the next good input is sent, the test waits until the node's diagnostics show that it processed the bad one
(its rejection counter went up) plus a margin longer than an inference, so a wrongly accepted bad input would
already have produced its (recognisable) plan instead of being silently replaced by the good one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from nav_msgs.msg import Path as PathMsg
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from cosmos_ros.images import rgb_to_compressed
from cosmos_ros.msg import ActionSequence
from cosmos_ros.nodes.conversions import sec_to_time, time_to_sec
from cosmos_ros.nodes.planner_node import GOAL_QOS
from cosmos_ros.testing.ros_harness import NodeProcess, TestPeer, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

MODULE = "cosmos_ros.nodes.planner_node"
# `python -m` puts the working directory first on sys.path; from the repository root that is the source tree,
# which lacks the generated cosmos_ros.msg. PYTHONSAFEPATH (Python >= 3.11) keeps the install space first.
NODE_ENV = {"PYTHONSAFEPATH": "1"}
STARTUP_S = 120.0  # import torch + diffusers and load the model on a loaded 2-core machine
PLAN_S = 60.0  # one tiny-model inference is ~1-3 s here; generous for a busy machine
UMI_AXES = ["x", "y", "z", "qx", "qy", "qz", "qw", "gripper"]
ARM7_AXES = [f"panda_joint{i}" for i in range(1, 8)] + ["gripper"]
COMMON_PARAMS: dict[str, Any] = {
    "num_inference_steps": 2,
    "chunk_size": 4,
    "max_plan_rate_hz": 50.0,
    "diagnostics_period_s": 0.2,
    "log_throttle_s": 0.5,
}


def _rgb(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def image_msg(stamp_s: float, rgb: np.ndarray | None = None, **override: Any) -> Image:
    """An rgb8 Image with ``stamp_s``; ``override`` replaces fields after they were filled consistently."""
    rgb = _rgb() if rgb is None else rgb
    msg = Image()
    msg.header.stamp = sec_to_time(stamp_s)
    msg.header.frame_id = "camera"
    msg.height, msg.width = rgb.shape[0], rgb.shape[1]
    msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, rgb.shape[1] * 3
    msg.data = rgb.tobytes()
    for k, v in override.items():
        setattr(msg, k, v)
    return msg


def compressed_msg(
    stamp_s: float, rgb: np.ndarray | None = None, data: bytes | None = None
) -> CompressedImage:
    fmt, payload = rgb_to_compressed(_rgb() if rgb is None else rgb, "png")
    msg = CompressedImage()
    msg.header.stamp = sec_to_time(stamp_s)
    msg.format = fmt
    msg.data = payload if data is None else data
    return msg


class PlannerRig:
    """One planner process (in its own namespace) and the test's publishers/recorders around it."""

    def __init__(self, peer: TestPeer, ns: str, node_name: str, cameras: dict[str, bool]) -> None:
        self.peer, self.ns, self.node_name = peer, ns, node_name
        self.plans = peer.record(ActionSequence, f"{ns}/action_sequence")
        self.paths = peer.record(PathMsg, f"{ns}/{node_name}/ee_path")
        self.frames = peer.record(Image, f"{ns}/{node_name}/predicted_frames", qos_profile_sensor_data)
        self.diags = peer.record(DiagnosticArray, "/diagnostics")
        self.goal_pub = peer.publisher(String, f"{ns}/goal", GOAL_QOS)
        self.cam_pubs = {
            t: peer.publisher(CompressedImage if c else Image, f"{ns}/{t}", qos_profile_sensor_data)
            for t, c in cameras.items()
        }
        self.proc: NodeProcess | None = None

    def diag(self) -> dict[str, str]:
        """The latest diagnostic values of this node ({} if none yet)."""
        for msg in reversed(self.diags.messages):
            for st in msg.status:
                if st.name == f"{self.node_name}: planner":
                    return {kv.key: kv.value for kv in st.values}
        return {}

    def count(self, key: str) -> int:
        return int(self.diag().get(key, "0"))

    def wait_ready(self) -> None:
        ok = wait_until(lambda: self.diag().get("active") == "True" or not self.proc.alive(), STARTUP_S)
        assert ok and self.proc.alive(), f"planner did not become active:\n{self.proc.output()[-4000:]}"
        for pub in [self.goal_pub, *self.cam_pubs.values()]:
            assert self.peer.wait_for_subscribers(pub, 1, timeout=30), "planner did not subscribe"

    def set_goal(self, goal: str) -> None:
        self.goal_pub.publish(String(data=goal))
        assert wait_until(lambda: self.diag().get("goal") == goal, 30), f"goal {goal!r} not applied"

    def send(self, topic: str, msg: Any) -> None:
        self.cam_pubs[topic].publish(msg)

    def wait_plan_with_stamp(self, stamp_s: float, timeout: float = PLAN_S) -> Any:
        def found() -> Any:
            return next((m for m in self.plans.messages if time_to_sec(m.header.stamp) == stamp_s), None)

        assert wait_until(lambda: found() is not None or not self.proc.alive(), timeout), (
            f"no plan for stamp {stamp_s}; diagnostics {self.diag()}\n{self.proc.output()[-3000:]}"
        )
        assert self.proc.alive(), self.proc.output()[-3000:]
        return found()

    def change_state(self, transition: int, timeout: float = 30.0) -> bool:
        """Request a lifecycle transition over the node's change_state service; True if it succeeded."""
        client = self.peer.node.create_client(ChangeState, f"{self.ns}/{self.node_name}/change_state")
        try:
            assert client.wait_for_service(timeout_sec=10.0), "no change_state service"
            fut = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
            assert wait_until(fut.done, timeout), f"transition {transition} timed out"
            return bool(fut.result().success)
        finally:
            self.peer.node.destroy_client(client)

    def set_param(self, name: str, value: int) -> tuple[bool, str]:
        client = self.peer.node.create_client(SetParameters, f"{self.ns}/{self.node_name}/set_parameters")
        try:
            assert client.wait_for_service(timeout_sec=10.0), "no set_parameters service"
            req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
            fut = client.call_async(req)
            assert wait_until(fut.done, 10.0), "set_parameters timed out"
            res = fut.result().results[0]
            return bool(res.successful), str(res.reason)
        finally:
            self.peer.node.destroy_client(client)

    def stamps_planned(self) -> list[float]:
        return [time_to_sec(m.header.stamp) for m in self.plans.messages]

    def wait_counter(self, key: str, above: int, timeout: float = 30.0) -> None:
        assert wait_until(lambda: self.count(key) > above, timeout), (
            f"{key} did not go above {above}: {self.diag()}\n{self.proc.output()[-3000:]}"
        )

    def settle(self) -> None:
        """Margin after a processed bad input: longer than a tiny-model inference plus publishing."""
        mean = float(self.diag().get("inference_time_mean_s", "0") or 0)
        time.sleep(max(2.0, 2.0 * mean))


@pytest.fixture(scope="module")
def peer(domain_id: int) -> Iterator[TestPeer]:
    with TestPeer(domain_id, name="planner_test_peer") as p:
        yield p


_stamp = [1_700_000_000.0]


def next_stamp() -> float:
    """Unique, exactly representable stamps (quarter seconds), increasing."""
    _stamp[0] += 0.25
    return _stamp[0]


# ----------------------------------------------------------------------------------------------------------
# One camera, raw images: the main path, goals, and every bad-input case
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="class")
def single(peer: TestPeer, domain_id: int, tiny_model_dir: Path) -> Iterator[PlannerRig]:
    rig = PlannerRig(peer, "/arm_a", "planner_node", {"cam": False})
    params = dict(
        COMMON_PARAMS,
        model_path=str(tiny_model_dir),
        camera_topics=["cam"],
        max_image_pixels=100 * 100,
        max_goal_length=64,
        publish_ee_path=True,
    )
    rig.proc = NodeProcess(MODULE, domain_id, params=params, namespace="/arm_a", env=NODE_ENV).start()
    try:
        rig.wait_ready()
        yield rig
    finally:
        code = rig.proc.stop(timeout=20)
        out = rig.proc.output()
        assert code == 0, f"planner exit code {code}:\n{out[-3000:]}"
        assert "Traceback" not in out, out[-3000:]


class TestSingleCamera:
    def test_image_and_goal_give_plan_with_stamp_frame_axes(self, single: PlannerRig) -> None:
        single.set_goal("pick up the red block")
        s = next_stamp() + 0.123456789  # a stamp with nanoseconds
        single.send("cam", image_msg(s))
        plan = single.wait_plan_with_stamp(s)
        assert (plan.header.stamp.sec, plan.header.stamp.nanosec) == (
            sec_to_time(s).sec,
            sec_to_time(s).nanosec,
        )
        assert plan.header.frame_id == "base_link"  # the umi_pose_gripper profile's frame
        assert list(plan.trajectory.joint_names) == UMI_AXES
        assert len(plan.trajectory.points) == 4 and all(len(p.positions) == 8 for p in plan.trajectory.points)
        assert plan.goal == "pick up the red block"
        assert plan.action_space == "umi_pose_gripper" and plan.backend == "diffusers"
        assert plan.model_id == str(single.proc.params["model_path"])
        assert plan.inference_time_s > 0 and plan.queue_time_s >= 0
        # Latency accounting (node clock): this plan's own latency is in the p95; no prefix (off by default).
        assert plan.latency_p95_s > 0 and plan.expected_latency_s >= 0 and plan.prefix_steps == 0
        diag = single.diag()
        assert float(diag["warmup_latency_s"]) > 0, diag  # the warm-up ran at configure
        assert wait_until(lambda: int(single.diag().get("latency_samples", "0")) >= 1, 10), single.diag()
        assert len(plan.ee_poses.poses) == 4
        # The debug path of the same plan: one pose per step, in the plan's frame.
        assert wait_until(lambda: len(single.paths) > 0, 10), "no ee_path"
        path = single.paths.messages[-1]
        assert path.header.frame_id == "base_link" and len(path.poses) == 4
        assert path.poses[0].pose == plan.ee_poses.poses[0]

    def test_goal_change_next_plan_carries_new_goal(self, single: PlannerRig) -> None:
        single.set_goal("open the drawer")
        s1 = next_stamp()
        single.send("cam", image_msg(s1))
        assert single.wait_plan_with_stamp(s1).goal == "open the drawer"
        single.set_goal("close the drawer")
        s2 = next_stamp()
        single.send("cam", image_msg(s2))
        assert single.wait_plan_with_stamp(s2).goal == "close the drawer"

    def test_empty_goal_stops_output(self, single: PlannerRig) -> None:
        single.set_goal("stack the cups")
        s1 = next_stamp()
        single.send("cam", image_msg(s1))
        single.wait_plan_with_stamp(s1)
        single.set_goal("")
        n_plans = len(single.plans)
        ignored = single.count("frames_ignored")
        stamps = [next_stamp() for _ in range(3)]
        for s in stamps:
            single.send("cam", image_msg(s))
            time.sleep(0.05)
        single.wait_counter("frames_ignored", ignored + 2)  # the node saw them ...
        single.settle()
        assert len(single.plans) == n_plans, (
            "a plan was published after the empty goal"
        )  # ... and planned none
        # Planning resumes with the next goal.
        single.set_goal("stack the cups again")
        s2 = next_stamp()
        single.send("cam", image_msg(s2))
        assert single.wait_plan_with_stamp(s2).goal == "stack the cups again"
        assert not set(stamps) & set(single.stamps_planned())

    @pytest.mark.parametrize(
        ("case", "counter"),
        [
            ("unsupported_encoding", "rejected_image_encoding"),
            ("zero_size", "rejected_image_size"),
            ("step_size_mismatch", "rejected_image_data_length"),
            ("step_shorter_than_row", "rejected_image_step"),
            ("too_many_pixels", "rejected_image_too_large"),
            ("model_exception", "model_error"),
        ],
    )
    def test_bad_image_survived_no_plan_then_next_good_plans(
        self, single: PlannerRig, case: str, counter: str
    ) -> None:
        single.set_goal("pick up the red block")
        s_bad = next_stamp()
        bad = {
            "unsupported_encoding": lambda: image_msg(s_bad, encoding="32FC1"),
            "zero_size": lambda: image_msg(s_bad, _rgb(1, 1), height=0, width=0, step=0, data=b""),
            "step_size_mismatch": lambda: image_msg(s_bad, data=_rgb().tobytes()[:-5]),
            "step_shorter_than_row": lambda: image_msg(s_bad, step=64 * 3 - 3),
            "too_many_pixels": lambda: image_msg(s_bad, _rgb(101, 100)),  # 10100 > max_image_pixels 10000
            # A 1x1 frame is a valid Image message, but the policy cannot condition on it: the runtime raises
            # inside the worker's model call, the same path as an exception from the pipeline itself.
            "model_exception": lambda: image_msg(s_bad, _rgb(1, 1)),
        }[case]()
        before = single.count(counter)
        single.send("cam", bad)
        single.wait_counter(counter, before)
        single.settle()
        assert single.proc.alive()
        s_good = next_stamp()
        single.send("cam", image_msg(s_good))
        plan = single.wait_plan_with_stamp(s_good)
        assert plan.goal == "pick up the red block"
        assert s_bad not in single.stamps_planned(), f"{case}: the bad input produced a plan"
        assert "Traceback" not in single.proc.output()

    def test_goal_too_long_rejected_and_stops_planning(self, single: PlannerRig) -> None:
        single.set_goal("valid goal")
        before = single.count("rejected_goal_too_long")
        single.goal_pub.publish(String(data="x" * 65))  # max_goal_length 64
        single.wait_counter("rejected_goal_too_long", before)
        assert single.diag().get("goal") == ""  # neither the long goal nor the old one is planned on
        ignored = single.count("frames_ignored")
        s_bad = next_stamp()
        single.send("cam", image_msg(s_bad))
        single.wait_counter("frames_ignored", ignored)
        single.settle()
        assert s_bad not in single.stamps_planned()
        single.set_goal("x" * 64)  # at the limit: accepted
        s_good = next_stamp()
        single.send("cam", image_msg(s_good))
        assert single.wait_plan_with_stamp(s_good).goal == "x" * 64

    def test_repeated_rejections_are_counted_each_but_logged_throttled(self, single: PlannerRig) -> None:
        before = single.count("rejected_image_encoding")
        lines_before = single.proc.output().count("rejected (encoding)")
        for _ in range(10):
            single.send("cam", image_msg(next_stamp(), encoding="32FC1"))  # float images: refused
            time.sleep(0.01)
        single.wait_counter("rejected_image_encoding", before + 9)
        time.sleep(0.3)
        logged = single.proc.output().count("rejected (encoding)") - lines_before
        assert 0 <= logged <= 2, f"{logged} log lines for 10 rejections within ~0.1 s (log_throttle_s 0.5)"

    def test_lifecycle_deactivate_activate_cleanup_configure(self, single: PlannerRig) -> None:
        single.set_goal("sort the parts")
        assert single.change_state(Transition.TRANSITION_DEACTIVATE)
        assert wait_until(lambda: single.diag().get("active") == "False", 10)
        s_inactive = next_stamp()
        single.send("cam", image_msg(s_inactive))
        # Parameters are read at configure: refused while configured, with the reason.
        ok, reason = single.set_param("max_goal_length", 64)
        assert not ok and "configured" in reason
        time.sleep(2.0)
        assert s_inactive not in single.stamps_planned()
        # Re-activation keeps the goal.
        assert single.change_state(Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: single.diag().get("active") == "True", 10)
        assert single.diag().get("goal") == "sort the parts"
        s1 = next_stamp()
        single.send("cam", image_msg(s1))
        single.wait_plan_with_stamp(s1)
        # Cleanup frees the model; configure loads it again; the plan ids keep increasing (checked below).
        assert single.change_state(Transition.TRANSITION_DEACTIVATE)
        assert single.change_state(Transition.TRANSITION_CLEANUP)
        assert single.set_param("max_goal_length", 64) == (True, "")
        n_diag = len(single.diags)
        assert single.change_state(Transition.TRANSITION_CONFIGURE, timeout=STARTUP_S)
        assert single.change_state(Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: len(single.diags) > n_diag and single.diag().get("active") == "True", 30)
        # The goal topic is transient-local (depth 1): a fresh configuration gets the last goal published.
        assert wait_until(lambda: single.diag().get("goal") == "sort the parts", 10), single.diag()
        single.set_goal("sort the parts")
        s2 = next_stamp()
        single.send("cam", image_msg(s2))
        single.wait_plan_with_stamp(s2)

    def test_plan_ids_increase_from_1_and_diagnostics_count_them(self, single: PlannerRig) -> None:
        ids = [m.plan_id for m in single.plans.messages]
        assert ids == list(range(1, len(ids) + 1)), ids
        assert wait_until(lambda: single.count("plans_published") == len(ids), 10), single.diag()
        d = single.diag()
        assert int(d["errors_total"]) >= 7 + 10
        out = single.proc.output()
        assert "model_error: ValueError" in out and "goal rejected" in out


# ----------------------------------------------------------------------------------------------------------
# Two cameras (one raw, one compressed) tiled into concat_view; profile and frame override; predicted frames
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="class")
def tiled(peer: TestPeer, domain_id: int, tiny_model_dir: Path) -> Iterator[PlannerRig]:
    rig = PlannerRig(peer, "/arm_b", "planner_b", {"left": False, "right": True})
    params = dict(
        COMMON_PARAMS,
        model_path=str(tiny_model_dir),
        camera_topics=["left", "right"],
        compressed=[False, True],
        action_space="arm7_joints",
        frame_id="world",
        stamp_tolerance_s=0.05,
        decode_video=True,
        publish_predicted_frames=True,
        predicted_frames_max_rate_hz=50.0,
    )
    rig.proc = NodeProcess(
        MODULE, domain_id, params=params, name="planner_b", namespace="/arm_b", env=NODE_ENV
    ).start()
    try:
        rig.wait_ready()
        yield rig
    finally:
        code = rig.proc.stop(timeout=20)
        assert code == 0, f"planner exit code {code}:\n{rig.proc.output()[-3000:]}"


class TestTwoCamerasTiled:
    def test_two_cameras_tiled_plan_has_newest_stamp_and_overridden_frame(self, tiled: PlannerRig) -> None:
        tiled.set_goal("wipe the table")
        s = next_stamp()
        tiled.send("left", image_msg(s))
        time.sleep(0.3)
        assert s not in tiled.stamps_planned()  # one camera alone is not a set
        tiled.send("right", compressed_msg(s + 0.01, _rgb(seed=1)))
        plan = tiled.wait_plan_with_stamp(s + 0.01)  # the newest frame of the set
        assert plan.header.frame_id == "world"
        assert list(plan.trajectory.joint_names) == ARM7_AXES
        assert plan.action_space == "arm7_joints" and len(plan.ee_poses.poses) == 0
        # Predicted frames have the size of the conditioning content: two 64x48 views side by side are 128x48
        # (one view alone would give 64x48).
        assert wait_until(lambda: len(tiled.frames) > 0, 10), "no predicted frames"
        f = tiled.frames.messages[0]
        assert (f.encoding, f.width, f.height) == ("rgb8", 128, 48)

    def test_out_of_sync_cameras_give_no_plan(self, tiled: PlannerRig) -> None:
        tiled.set_goal("wipe the table")
        s = next_stamp()
        tiled.send("left", image_msg(s))
        tiled.send("right", compressed_msg(s + 0.125))  # 0.125 s apart > stamp_tolerance_s 0.05
        time.sleep(0.5)
        s_ok = next_stamp()  # s + 0.25: still out of sync with right @ s + 0.125, until right @ s_ok comes
        tiled.send("left", image_msg(s_ok))
        time.sleep(0.3)
        tiled.send("right", compressed_msg(s_ok))
        tiled.wait_plan_with_stamp(s_ok)
        assert s not in tiled.stamps_planned() and s + 0.125 not in tiled.stamps_planned()

    def test_corrupt_compressed_image_rejects_the_set(self, tiled: PlannerRig) -> None:
        tiled.set_goal("wipe the table")
        before = tiled.count("rejected_image_decode")
        s_bad = next_stamp()
        tiled.send("right", compressed_msg(s_bad, data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 40))
        tiled.wait_counter("rejected_image_decode", before)
        tiled.send("left", image_msg(s_bad))  # pairs with the rejected frame's moment: no plan
        tiled.wait_counter("rejected_set_with_bad_image", 0)
        tiled.settle()
        assert s_bad not in tiled.stamps_planned()
        s_good = next_stamp()
        tiled.send("right", compressed_msg(s_good))
        tiled.send("left", image_msg(s_good))
        tiled.wait_plan_with_stamp(s_good)


# ----------------------------------------------------------------------------------------------------------
# Two cameras configured, one selected
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="class")
def selected(peer: TestPeer, domain_id: int, tiny_model_dir: Path) -> Iterator[PlannerRig]:
    rig = PlannerRig(peer, "/arm_c", "planner_c", {"left": False, "right": False})
    params = dict(
        COMMON_PARAMS,
        model_path=str(tiny_model_dir),
        camera_topics=["left", "right"],
        camera_combine="select",
        selected_camera="right",
        camera_timeout_s=1.0,
        decode_video=True,
        publish_predicted_frames=True,
        predicted_frames_max_rate_hz=50.0,
    )
    rig.proc = NodeProcess(
        MODULE, domain_id, params=params, name="planner_c", namespace="/arm_c", env=NODE_ENV
    ).start()
    try:
        ok = wait_until(lambda: rig.diag().get("active") == "True" or not rig.proc.alive(), STARTUP_S)
        assert ok and rig.proc.alive(), rig.proc.output()[-3000:]
        assert peer.wait_for_subscribers(rig.cam_pubs["right"], 1, timeout=30)
        yield rig
    finally:
        code = rig.proc.stop(timeout=20)
        assert code == 0, f"planner exit code {code}:\n{rig.proc.output()[-3000:]}"


class TestSelectedCamera:
    def test_silent_camera_is_reported_with_its_publishers_and_the_fix(self, selected: PlannerRig) -> None:
        # No frame has been sent yet: after camera_timeout_s of node time the planner says so, on the log
        # (naming the resolved topic, the test peer's publisher and the Fast DDS profile) and on /diagnostics.
        expected = "no frame on camera topic '/arm_c/right'"
        assert wait_until(lambda: expected in selected.proc.output(), 30), selected.proc.output()[-3000:]
        line = next(ln for ln in selected.proc.output().splitlines() if expected in ln)
        assert "publishers: 1 (/planner_test_peer [sensor_msgs/msg/Image" in line
        assert "fastdds_large_frames.xml" in line and "CompressedImage" in line
        assert wait_until(lambda: "camera_silent_s:right" in selected.diag(), 10), selected.diag()

    def test_only_the_selected_camera_is_used(self, selected: PlannerRig) -> None:
        assert selected.cam_pubs["left"].get_subscription_count() == 0  # not even subscribed
        selected.set_goal("pour the water")
        s = next_stamp()
        selected.send("right", image_msg(s, _rgb(48, 80)))
        plan = selected.wait_plan_with_stamp(s)
        assert plan.goal == "pour the water"
        # The model was conditioned on the right camera's 80x48 image alone.
        assert wait_until(lambda: len(selected.frames) > 0, 10), "no predicted frames"
        f = selected.frames.messages[0]
        assert (f.width, f.height) == (80, 48)


# ----------------------------------------------------------------------------------------------------------
# Configure failure
# ----------------------------------------------------------------------------------------------------------
def test_bad_model_dir_fails_configure_with_loader_error(domain_id: int, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    proc = NodeProcess(
        MODULE, domain_id, params={"model_path": str(missing)}, name="planner_bad", env=NODE_ENV
    )
    with proc:
        code = proc.wait_exit(STARTUP_S)
    out = proc.output()
    assert code == 1, f"exit code {code}:\n{out[-3000:]}"
    assert "[ERROR]" in out and "model directory does not exist" in out and str(missing) in out, out[-3000:]
    assert "Traceback" not in out


def test_fp8_on_a_device_without_fp8_fails_configure_with_the_reason(
    domain_id: int, tiny_model_dir: Path
) -> None:
    """precision fp8 is refused at configure (exit 1, the reason at ERROR), never a crash."""
    params = {"model_path": str(tiny_model_dir), "backend": "fast", "precision": "fp8", "device": "cpu"}
    proc = NodeProcess(MODULE, domain_id, params=params, name="planner_fp8", env=NODE_ENV)
    with proc:
        code = proc.wait_exit(STARTUP_S)
    out = proc.output()
    assert code == 1, f"exit code {code}:\n{out[-3000:]}"
    assert "[ERROR]" in out and "precision 'fp8' needs a CUDA GPU with FP8 tensor cores" in out, out[-3000:]
    assert "Traceback" not in out


def test_the_configured_precision_reaches_the_fast_backend_factory(tiny_model_dir: Path) -> None:
    """What the node hands PolicyRuntime.from_config: a fp8 config's factory options make the fast backend
    refuse a device without FP8 (the CPU here; a GPU below compute capability 8.9 the same way), while bf16
    builds. A GPU with FP8 is exercised by bench_fast on the GPU machine, not here."""
    from cosmos_ros.planner_node_config import PlannerConfig
    from cosmos_ros.runtime.fp8 import Fp8UnsupportedError
    from cosmos_ros.runtime.policy import PolicyRuntime

    def load(precision: str) -> PolicyRuntime:
        cfg = PlannerConfig(
            model_path=str(tiny_model_dir), backend="fast", device="cuda", precision=precision
        )
        return PolicyRuntime.from_config(
            tiny_model_dir,
            device="cpu",
            profile="umi_pose_gripper",
            backend="fast",
            backend_options=cfg.factory_options(),
        )

    with pytest.raises(Fp8UnsupportedError, match="precision fp8: device cpu has no FP8 tensor cores"):
        load("fp8")
    assert load("bf16").backend.name == "fast"
