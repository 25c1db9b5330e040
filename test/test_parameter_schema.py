"""cosmos_ros.parameter_schema: the generate_parameter_library-format schemas, their validation, the params
files, launch values and node configs derived from them. Pure: no rclpy, no message packages (fast tier)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cosmos_ros.parameter_schema import (
    PARAMS_FILES,
    SCHEMA_DIR,
    ParameterSchema,
    SchemaError,
    launch_argument,
    parse_launch_value,
)

REPO = Path(__file__).resolve().parents[1]

EXAMPLE = textwrap.dedent(
    """
    demo_node:
      rate_hz:
        type: double
        default_value: 10.0
        description: Loop rate (Hz)
        validation:
          bounds<>: [1.0, 100.0]
      mode:
        type: string
        default_value: "hold"
        description: What to do
        validation:
          one_of<>: [[hold, decelerate]]
      backend:
        type: string
        default_value: "fast"
        description: From a core registry, plus a literal
        validation:
          cosmos_ros::one_of_registry: [auto, "cosmos_ros.runtime.policy:BACKENDS"]
      steps:
        type: int
        default_value: 8
        description: A multiple of 4
        validation:
          gt_eq<>: [4]
          cosmos_ros::multiple_of: [4]
      offset:
        type: double
        description: Unset unless given
      topics:
        type: string_array
        default_value: ["a"]
        description: Relative topics
        validation:
          not_empty<>: []
          unique<>: []
          cosmos_ros::relative_name: []
      flags:
        type: bool
        default_value: false
        description: One bool or one per topic
        dynamic_typing: true
      out:
        topic:
          type: string
          default_value: "cmd"
          description: A nested group gives a dotted name
    """
)


@pytest.fixture(scope="module")
def demo() -> ParameterSchema:
    return ParameterSchema.from_text(EXAMPLE, "demo")


def test_generate_parameter_library_format_is_read_with_dotted_nested_names(demo: ParameterSchema) -> None:
    assert list(demo) == ["rate_hz", "mode", "backend", "steps", "offset", "topics", "flags", "out.topic"]
    assert demo.node == "demo_node" and demo["out.topic"].default == "cmd"
    assert demo["offset"].default is None and demo.check("offset", None) is None  # declared unset
    assert demo.default("topics") == ("a",)  # arrays as tuples: usable as frozen dataclass defaults


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("rate_hz", 0.5, r"rate_hz must be in \[1.0, 100.0\], got 0.5"),
        ("rate_hz", float("inf"), "rate_hz must be a finite number, got inf"),
        ("rate_hz", "fast", "rate_hz must be a number, got 'fast'"),
        ("rate_hz", True, "rate_hz must be a number, got True"),  # a bool is not a number here
        ("mode", "brake", r"mode must be one of \['hold', 'decelerate'\], got 'brake'"),
        ("backend", "onnx", r"backend must be one of \['auto', 'diffusers', 'fast', 'tensorrt', 'server'\]"),
        ("steps", 2, r"steps must be in \[4, inf\], got 2"),
        ("steps", 6, "steps must be a multiple of 4, got 6"),
        ("steps", 8.0, "steps must be an integer, got 8.0"),
        ("topics", [], r"topics must list one or more values, got \[\]"),
        ("topics", ["a", "a"], r"topics must be unique, got \['a', 'a'\]"),
        ("topics", ["/abs"], r"topics must be a non-empty relative topic name, got \['/abs'\]"),
        ("topics", "a", "topics must be an array of strings, got 'a'"),
        ("flags", [True, 1], r"flags must be a bool or an array of them, got \[True, 1\]"),
        ("mode", None, r"mode must be set \(string\), got None"),
    ],
)
def test_bad_values_are_refused_naming_parameter_and_value(
    demo: ParameterSchema, name: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        demo.check(name, value)


def test_good_values_come_back_typed(demo: ParameterSchema) -> None:
    assert demo.check("rate_hz", 5) == 5.0 and isinstance(demo.check("rate_hz", 5), float)
    assert demo.check("backend", "auto") == "auto" and demo.check("backend", "server") == "server"
    assert demo.check("flags", True) is True and demo.check("flags", [True, False]) == (True, False)
    assert demo.check("topics", ["a", "b"]) == ("a", "b")
    assert demo["steps"].constraints_text() == "in [4, inf]; a multiple of 4"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x: {type: float, description: d}", "type must be one of"),
        ("x: {type: int, default_value: 1}", "needs a description"),
        ("x: {type: int, default_value: 1, description: d, units: s}", r"unknown key\(s\) \['units'\]"),
        (
            "x: {type: int, default_value: 1, description: d, validation: {in_range<>: [0, 2]}}",
            "unknown validator",
        ),
        ("x: {type: int, default_value: 9, description: d, validation: {bounds<>: [0, 2]}}", "fails its own"),
    ],
)
def test_malformed_schemas_are_refused(body: str, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        ParameterSchema.from_text("n:\n  " + body)


def test_a_registry_is_imported_when_first_used_and_a_bad_one_is_found_by_check_defaults() -> None:
    bad = ParameterSchema.from_text(
        "n:\n  x: {type: string, default_value: a, description: d, "
        'validation: {"cosmos_ros::one_of_registry": ["cosmos_ros.no_such_module:X"]}}'
    )  # reading it imports nothing
    with pytest.raises(SchemaError, match="no_such_module"):
        bad.check_defaults()


@pytest.mark.parametrize("node", sorted(p.stem for p in SCHEMA_DIR.glob("*.yaml")))
def test_the_package_schemas_are_complete_and_their_defaults_valid(node: str) -> None:
    schema = ParameterSchema.load(node)
    schema.check_defaults()  # registries resolved, every default within its own validation
    assert schema.node == node and len(schema.parameters) > 10


def test_the_planner_schema_restates_no_registry() -> None:
    """Choice lists of the core are named, never copied: the YAML holds no backend, dtype or precision."""
    text = (SCHEMA_DIR / "planner_node.yaml").read_text()
    for literal in ("tensorrt", "bfloat16", "fp8]", "third_person_view", "linear"):
        assert f"[{literal}" not in text and f", {literal}" not in text, literal
    from cosmos_ros.runtime.loader import DTYPES
    from cosmos_ros.runtime.policy import BACKENDS, PRECISIONS

    planner = ParameterSchema.load("planner_node")
    assert planner["backend"].choices == tuple(BACKENDS)
    assert planner["dtype"].choices == DTYPES and planner["precision"].choices == PRECISIONS
    assert planner.default("precision") == "bf16"


def test_the_planner_schema_loads_without_torch_or_rclpy() -> None:
    """Configuration must not pull the ML stack or ROS (the server backend's node has no torch)."""
    code = (
        "import sys\n"
        "from cosmos_ros.planner_node_config import SCHEMA, PlannerConfig\n"
        "PlannerConfig(model_path='/m', backend='server', server_address='unix:///s').factory_options()\n"
        "SCHEMA.check_defaults()\n"
        "print(sorted(m for m in ('torch', 'rclpy', 'diffusers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_committed_params_files_are_the_generated_ones() -> None:
    assert {"config/planner.yaml", "config/safety.yaml"} <= set(PARAMS_FILES)
    r = subprocess.run(
        [sys.executable, "-m", "cosmos_ros.parameter_schema", str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_generator_finds_a_stale_file_and_rewrites_it(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "planner.yaml").write_text("stale\n")
    cmd = [sys.executable, "-m", "cosmos_ros.parameter_schema"]
    r = subprocess.run([*cmd, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "config/planner.yaml differs from its schema" in r.stdout
    r = subprocess.run([*cmd, "--write", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    assert subprocess.run([*cmd, str(tmp_path)], capture_output=True, timeout=120).returncode == 0


def test_launch_values_parse_as_the_parameter_type(demo: ParameterSchema) -> None:
    assert parse_launch_value(demo["steps"], " 12 ") == 12
    assert parse_launch_value(demo["flags"], "on") is True
    assert parse_launch_value(demo["topics"], "[a, b]") == ["a", "b"]
    with pytest.raises(ValueError, match="launch argument steps must be int, got 'x'"):
        parse_launch_value(demo["steps"], "x")
    with pytest.raises(ValueError, match="steps must be a multiple of 4, got 10"):
        parse_launch_value(demo["steps"], "10")
    default, doc = launch_argument(demo["mode"])
    assert default == "" and doc == "What to do (one of: hold, decelerate); empty: the params file's."
    assert launch_argument(demo["rate_hz"], "5.0", "Why.")[1] == "Loop rate (Hz) (in [1.0, 100.0]). Why."


# ---- the node configs built from the schemas (pure modules) ----------------------------------------------
def test_sim_config_defaults_are_valid_and_bad_values_name_the_parameter() -> None:
    from cosmos_ros.sim_node_config import SCHEMA, config_from_parameters

    values = {name: SCHEMA.default(name) for name in SCHEMA} | {"planner_clock_topic": "planner/clock"}
    cfg = config_from_parameters(values.get)
    assert cfg.command_interfaces == ("float64_per_axis", "float64_multi_array") and cfg.lockstep
    for name, value, message in (
        ("command_interfaces", ["float64_per_axis", "bogus"], "command_interfaces must be one of"),
        ("command_interfaces", ["float64_per_axis"] * 2, "command_interfaces must be unique"),
        ("camera_rate_hz", 0.0, r"camera_rate_hz must be in \[0.1, 100.0\], got 0.0"),
        ("planner_clock_topic", "", "lockstep needs planner_clock_topic"),
    ):
        with pytest.raises(ValueError, match=message):
            config_from_parameters((values | {name: value}).get)


def test_safety_config_and_adapter_settings_take_their_defaults_and_checks_from_the_schema() -> None:
    from cosmos_ros.safety_node_config import SCHEMA, AdapterSettings, config_from_parameters

    cfg = config_from_parameters({name: SCHEMA.default(name) for name in SCHEMA}.get, frame_id="world")
    assert cfg.adapters == AdapterSettings(pose_frame_id="world")  # the same defaults, one source
    assert AdapterSettings().multi_array_topic == SCHEMA.default("float64_multi_array.topic")
    with pytest.raises(
        ValueError, match=r"float64_multi_array\.topic must be a non-empty relative topic name"
    ):
        AdapterSettings(multi_array_topic="/arm/commands")
    with pytest.raises(ValueError, match=r"joint_trajectory.time_from_start_s must be in \[0.0001, 1.0\]"):
        AdapterSettings(trajectory_time_from_start_s=0.0)
