"""The policy runtime end to end on the tiny random-weight Cosmos 3 pipeline (CPU, float32).

The model is loaded through ``DiffusionPipeline.from_pretrained`` like a real checkpoint. Its weights are
random: these tests check shapes, dtypes, determinism, plumbing and errors, never planning quality.
Plans use chunk 4 and 2 steps to keep CPU time low (about half a second each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the runtime needs diffusers to run Cosmos 3")
pytest.importorskip("accelerate", reason="diffusers needs accelerate to load Cosmos3OmniTransformer")

import torch

from cosmos_ros.action_space import ActionBlock, ActionSpaceProfile, Normalization
from cosmos_ros.runtime.loader import ModelLoadError
from cosmos_ros.runtime.options import PolicyOptions
from cosmos_ros.runtime.policy import PolicyRuntime

SMALL = PolicyOptions(num_inference_steps=2, chunk_size=4, seed=0)
GOAL = "pick up the red cup"
PROFILES = {
    "umi_pose_gripper": ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper"),
    "arm7_joints": (*(f"panda_joint{i}" for i in range(1, 8)), "gripper"),
}
# raw_actions[:2, :5] of the umi plan below, produced by running this configuration (tiny model weight seed 0,
# noise seed 0, torch 2.13 CPU float32, frame passed to the pipeline as a PIL image) and stable across
# processes. A change means the model, the pipeline call or the noise convention changed.
EXPECTED_SLICE = np.array(
    [
        [2.180454, 1.024799, 5.240427, -3.778152, 4.572783],
        [-1.160403, -0.762545, 1.671653, -3.055745, -1.466041],
    ],
    dtype=np.float32,
)


def _image(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def runtimes(tiny_model_dir: Path) -> dict[str, PolicyRuntime]:
    return {
        name: PolicyRuntime.from_config(tiny_model_dir, "cpu", "float32", profile=name, options=SMALL)
        for name in PROFILES
    }


@pytest.fixture(scope="module")
def umi_plan(runtimes):
    return runtimes["umi_pose_gripper"].plan(_image(), GOAL)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_plan_shape_dtype_and_metadata(runtimes, profile: str) -> None:
    rt = runtimes[profile]
    result = rt.plan(_image(), GOAL)
    assert result.values.shape == (4, 8) and result.values.dtype == np.float64
    assert result.raw_actions.shape == (4, 10) and result.raw_actions.dtype == np.float32
    assert np.all(np.isfinite(result.values))
    assert result.axis_names == PROFILES[profile]
    assert result.step_period_s == pytest.approx(1.0 / rt.profile.action_rate_hz)
    assert result.video is None
    assert result.backend == "diffusers" and result.profile == profile
    assert result.frame_id == rt.profile.frame_id
    for stage in ("total", "prepare", "encode_image", "denoise", "decode_actions", "plan_total"):
        assert result.timings[stage] > 0, stage
    assert result.timings["encode_image"] <= result.timings["prepare"] <= result.timings["total"]
    assert result.timings["decode_video"] == 0.0


def test_pose_plan_has_unit_quaternions(umi_plan) -> None:
    q = umi_plan.values[:, 3:7]
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-9)


def test_stored_output_slice(umi_plan) -> None:
    np.testing.assert_allclose(umi_plan.raw_actions[:2, :5], EXPECTED_SLICE, atol=1e-4, rtol=0)


def test_same_seed_same_actions_different_seed_differs(runtimes, umi_plan) -> None:
    rt = runtimes["umi_pose_gripper"]
    again = rt.plan(_image(), GOAL)
    np.testing.assert_array_equal(again.raw_actions, umi_plan.raw_actions)
    other = rt.plan(_image(), GOAL, seed=1)
    assert other.seed == 1
    assert np.abs(other.raw_actions - umi_plan.raw_actions).max() > 1e-3


def test_goal_and_image_condition_the_output(runtimes, umi_plan) -> None:
    rt = runtimes["umi_pose_gripper"]
    assert np.abs(rt.plan(_image(), "open the drawer").raw_actions - umi_plan.raw_actions).max() > 1e-4
    assert np.abs(rt.plan(_image(seed=5), GOAL).raw_actions - umi_plan.raw_actions).max() > 1e-4


def test_runtime_matches_a_direct_stock_pipeline_call(runtimes, umi_plan) -> None:
    """The backend must be the stock call, with the request's parameters, and nothing else."""
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import CosmosActionCondition
    from PIL import Image

    pipe = runtimes["umi_pose_gripper"].backend.pipe
    out = pipe(
        prompt=GOAL,
        action=CosmosActionCondition(
            mode="policy",
            chunk_size=4,
            domain_name="umi",
            resolution_tier=256,
            image=Image.fromarray(_image()),  # uint8 arrays are mis-scaled by diffusers 0.42.1; PIL is not
        ),
        fps=15.0,
        num_inference_steps=2,
        guidance_scale=1.0,
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="latent",
        enable_safety_check=False,
    )
    np.testing.assert_array_equal(out.action[0].numpy(), umi_plan.raw_actions)


def test_decode_video_returns_frames_and_same_actions(tiny_model_dir: Path, umi_plan) -> None:
    opts = PolicyOptions(num_inference_steps=2, chunk_size=4, seed=0, decode_video=True)
    rt = PolicyRuntime.from_config(tiny_model_dir, profile="umi_pose_gripper", options=opts)
    result = rt.plan(_image(), GOAL)
    assert result.video is not None
    assert result.video.dtype == np.uint8 and result.video.shape == (5, 48, 64, 3)
    assert result.timings["decode_video"] > 0
    np.testing.assert_array_equal(result.raw_actions, umi_plan.raw_actions)


def test_guidance_runs_the_unconditional_pass(tiny_model_dir: Path, umi_plan) -> None:
    opts = PolicyOptions(num_inference_steps=2, chunk_size=4, seed=0, guidance_scale=3.0)
    rt = PolicyRuntime.from_config(tiny_model_dir, profile="umi_pose_gripper", options=opts)
    result = rt.plan(_image(), GOAL)
    assert result.raw_actions.shape == (4, 10)
    assert np.abs(result.raw_actions - umi_plan.raw_actions).max() > 1e-4


@pytest.mark.parametrize(
    ("image", "goal", "match"),
    [
        (np.zeros((48, 64), np.uint8), GOAL, r"image must be a \[H, W, 3\] uint8 array"),
        (np.zeros((48, 64, 3), np.float32), GOAL, r"image must be a \[H, W, 3\] uint8 array"),
        (np.zeros((1, 64, 3), np.uint8), GOAL, "at least 2x2"),
        (_image(), "", "goal must be a non-empty string"),
        (_image(), "   ", "goal must be a non-empty string"),
    ],
)
def test_bad_inputs_raise_before_the_model_runs(runtimes, image, goal, match) -> None:
    with pytest.raises(ValueError, match=match):
        runtimes["umi_pose_gripper"].plan(image, goal)


def test_read_only_and_strided_images_plan_like_normal_ones(runtimes, umi_plan) -> None:
    ro = _image()
    ro.flags.writeable = False  # e.g. a view of a ROS message buffer
    np.testing.assert_array_equal(
        runtimes["umi_pose_gripper"].plan(ro, GOAL).raw_actions, umi_plan.raw_actions
    )
    wide = np.repeat(_image(), 2, axis=1)[:, ::2]  # non-contiguous view with the same pixels
    assert not wide.flags.c_contiguous
    np.testing.assert_array_equal(
        runtimes["umi_pose_gripper"].plan(wide, GOAL).raw_actions, umi_plan.raw_actions
    )


def test_to_plan(umi_plan) -> None:
    plan = umi_plan.to_plan(plan_id=3, stamp_s=100.0)
    assert plan.plan_id == 3 and plan.stamp_s == 100.0
    assert plan.t0_s == pytest.approx(100.0 + umi_plan.action_delay_s)
    assert plan.axis_names == umi_plan.axis_names and plan.num_steps == 4
    assert plan.goal == GOAL and plan.backend == "diffusers" and plan.action_space == "umi_pose_gripper"
    assert plan.inference_time_s == pytest.approx(umi_plan.timings["plan_total"])


def test_model_without_actions_is_rejected_by_from_config(tiny_model_no_action_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="no action generation"):
        PolicyRuntime.from_config(tiny_model_no_action_dir, profile="umi_pose_gripper")


def test_profile_width_must_match_its_domain(tiny_model_dir: Path) -> None:
    narrow = ActionSpaceProfile(
        name="bad",
        domain_name="umi",
        blocks=(ActionBlock("position", 3, ("x", "y", "z")), ActionBlock("gripper", 1, ("gripper",))),
        normalization=Normalization("none"),
    )
    with pytest.raises(ValueError, match="lays out 4 columns but domain 'umi' has raw width 10"):
        PolicyRuntime.from_config(tiny_model_dir, profile=narrow)


def test_bad_options_fail_before_loading(tmp_path: Path) -> None:
    # The model path does not exist: an options error proves options are checked first.
    with pytest.raises(ValueError, match="chunk_size must be a positive multiple of 4"):
        PolicyRuntime.from_config(tmp_path / "missing", options={"chunk_size": 6})


def test_custom_backend_factory(tiny_model_dir: Path) -> None:
    from cosmos_ros.runtime.diffusers_backend import DiffusersPolicyBackend

    made = []

    def factory(pipe, **kw):
        made.append(kw)
        return DiffusersPolicyBackend(pipe)

    rt = PolicyRuntime.from_config(
        tiny_model_dir, profile="arm7_joints", backend=factory, backend_options={"k": 1}, options=SMALL
    )
    assert made == [{"k": 1}]
    assert rt.plan(_image(), GOAL).values.shape == (4, 8)
