"""The pure half of the launch file (cosmos_ros.launch_support): arguments, their mapping onto node
parameters, the failure reason read from a node's output, and the README's launch commands against them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cosmos_ros.launch_support import (
    ARGUMENTS,
    last_error_line,
    node_parameters,
    sim_arguments,
    sim_parameters,
    with_defaults,
)

REPO = Path(__file__).resolve().parents[1]


def test_reason_is_the_last_error_line_without_colours_and_prefix() -> None:
    out = (
        "\x1b[0m[INFO] [1796087710.1] [safety_node]: starting\x1b[0m\n"
        "\x1b[31m[ERROR] [1796087710.684592593] [safety_node]: configure failed: unknown action space 'x'; "
        "valid: arm7_joints, umi_pose_gripper\x1b[0m\n"
        "\x1b[31m[ERROR] [1796087710.6] [safety_node]: autostart failed (reason above); exiting\x1b[0m\n"
    )
    assert last_error_line(out) == (
        "configure failed: unknown action space 'x'; valid: arm7_joints, umi_pose_gripper"
    )
    assert last_error_line("[FATAL] [1.5] [planner_node]: boom") == "boom"


def test_no_error_line_gives_empty_reason() -> None:
    assert last_error_line("[INFO] [1.0] [n]: fine\n[WARN] [2.0] [n]: careful\nplain text\n") == ""
    assert last_error_line("[ERROR] [1.0] [n]: autostart: configure failed (see above); exiting") == ""


def test_cpu_defaults_and_inference_arguments() -> None:
    planner, safety = node_parameters(with_defaults({"model_path": "/m"}))
    # The defaults a first run on a CPU gets: the demo's fast backend and 8 steps, not 30 reference steps.
    assert (planner["backend"], planner["device"], planner["num_inference_steps"]) == ("fast", "cpu", 8)
    assert "chunk_size" not in planner and "guidance_scale" not in planner  # empty: the params file's
    assert safety["limits_file"] == "config/limits/arm7_joints.yaml"
    planner, _ = node_parameters(
        with_defaults({"num_inference_steps": "30", "chunk_size": "8", "guidance_scale": "2.5"})
    )
    assert (planner["num_inference_steps"], planner["chunk_size"], planner["guidance_scale"]) == (30, 8, 2.5)
    assert isinstance(planner["num_inference_steps"], int) and isinstance(planner["guidance_scale"], float)


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"chunk_size": "sixteen"}, "launch argument chunk_size must be int, got 'sixteen'"),
        ({"guidance_scale": "x"}, "guidance_scale must be double"),
        ({"chunk_size": "6"}, "chunk_size must be a multiple of 4, got 6"),  # the schema's validation
        ({"backend": "onnx"}, r"backend must be one of \['diffusers', 'fast', 'tensorrt', 'server'\]"),
        ({"precision": "fp4"}, r"precision must be one of \['bf16', 'fp8'\], got 'fp4'"),
        ({"shadow_mode": "maybe"}, "launch argument shadow_mode must be true or false, got 'maybe'"),
    ],
)
def test_bad_argument_values_name_the_argument(given: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        node_parameters(with_defaults(given))


def test_unknown_argument_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown launch argument\(s\) \['num_steps'\]; valid: model_path"):
        with_defaults({"num_steps": "4"})


def test_pass_through_arguments_are_described_by_the_schema() -> None:
    """The planner arguments' help is the parameter's description and choices, never a restated copy."""
    from cosmos_ros.planner_node_config import SCHEMA

    assert ARGUMENTS["backend"][1].startswith(SCHEMA["backend"].description)
    assert "one of: diffusers, fast, tensorrt, server" in ARGUMENTS["backend"][1]
    assert "one of: bf16, fp8" in ARGUMENTS["precision"][1] and ARGUMENTS["precision"][0] == ""
    planner, _ = node_parameters(with_defaults({"precision": "fp8", "camera_topics": "a, b"}))
    assert planner["precision"] == "fp8" and planner["camera_topics"] == ["a", "b"]
    assert "precision" not in node_parameters(with_defaults({}))[0]  # empty: the params file's


def test_sim_launch_arguments_are_typed_and_checked_by_the_node_schemas() -> None:
    args = sim_arguments()
    given = sim_parameters({name: default for name, (default, _) in args.items()})
    assert given["sim_node"] == {
        "goal": "",  # always passed: empty means the seeded colour, not "keep"
        "first_seed": 1000000,
        "num_episodes": 0,
        "real_time_factor": 1.0,
        "camera_rate_hz": 5.0,
    }
    assert given["planner_node"] == {"num_inference_steps": 10, "max_plan_rate_hz": 2.0}
    assert "Lower it when the model is slow" in args["real_time_factor"][1]
    with pytest.raises(ValueError, match=r"camera_rate_hz must be in \[0.1, 100.0\], got 500.0"):
        sim_parameters({name: default for name, (default, _) in args.items()} | {"camera_rate_hz": "500"})
    text = (REPO / "launch" / "sim.launch.py").read_text()
    assert "**sim_arguments()" in text and "sim_parameters(arg)" in text


def test_launch_file_declares_the_shared_table() -> None:
    text = (REPO / "launch" / "planner.launch.py").read_text()
    assert "from cosmos_ros.launch_support import ARGUMENTS" in text
    assert "DeclareLaunchArgument(name, default_value=default, description=doc)" in text
    for name in ("num_inference_steps", "chunk_size", "guidance_scale"):
        assert ARGUMENTS[name][1], f"{name} has no description"


def readme_launch_commands() -> list[dict[str, str]]:
    """The `ros2 launch cosmos_ros planner.launch.py ...` commands of the README, as argument dicts."""
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        m = re.search(r"ros2 launch cosmos_ros planner\.launch\.py(.*)$", line)
        if m and ":=" in m.group(1):
            words = shlex.split(m.group(1).split("#")[0])
            found.append(dict(w.split(":=", 1) for w in words if ":=" in w))
    return found


def test_readme_launch_commands_use_declared_arguments() -> None:
    commands = readme_launch_commands()
    assert len(commands) >= 2, commands  # "On a robot", "Launch and composition"
    for args in commands:
        node_parameters(with_defaults(args))  # raises on an undeclared name or a bad value
