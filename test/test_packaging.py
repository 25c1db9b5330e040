"""Packaging (issue 17, issue 16 install half): setup.cfg is the one declaration of the Python distribution;
the colcon build and a plain `pip install .` expose the same executables; the safety node installs and runs
without the ML stack; the requirement files by role resolve to one pin per package on Python 3.10-3.12."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
HELPERS = REPO / "test" / "helpers"
ML_STACK = "torch,diffusers,transformers,accelerate,safetensors,tokenizers,cv2,PIL,matplotlib,pybullet,onnx"
ML_STACK += ",onnxruntime,tensorrt"
# Not robot executables: run with `python -m cosmos_ros.tools.<name>` (README).
DEV_TOOLS = re.compile(r"cosmos_ros\.tools\.(bench_\w+|make_\w+|eval_\w+|demo|train_\w+|fp8_\w+|onnx_\w+)$")


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def console_scripts() -> dict[str, str]:
    """name -> "module:function", as setup.cfg declares them."""
    lines = _setup_cfg()["options.entry_points"]["console_scripts"].strip().splitlines()
    return {name.strip(): target.strip() for name, target in (line.split("=", 1) for line in lines)}


def run_ml_free_core(*args: str, **kwargs: Any) -> dict[str, Any]:
    """test/helpers/ml_free_core.py in a fresh interpreter; its JSON summary."""
    limits = str(REPO / "config" / "limits" / "arm7_joints.yaml")
    cmd = [sys.executable, str(HELPERS / "ml_free_core.py"), limits, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kwargs)
    assert r.returncode == 0, r.stdout + r.stderr
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def script_target(path: Path) -> str:
    """ "module:function" that an installed console script runs (pip's and CMakeLists.txt's wrappers both say
    `from <module> import <function>`)."""
    m = re.search(r"^from ([\w.]+) import (\w+)$", path.read_text(), re.MULTILINE)
    assert m, f"{path} does not look like a console-script wrapper:\n{path.read_text()}"
    return f"{m.group(1)}:{m.group(2)}"


# --- the declaration ----------------------------------------------------------------------------------------


def test_name_and_version_are_declared_alike_in_setup_cfg_package_xml_and_the_package() -> None:
    meta = _setup_cfg()["metadata"]
    xml = ET.parse(REPO / "package.xml").getroot()
    init = (REPO / "cosmos_ros" / "__init__.py").read_text()
    version = re.search(r'^__version__ = "([^"]+)"$', init, re.MULTILINE)
    assert version is not None
    assert meta["name"] == xml.findtext("name") == "cosmos_ros"
    assert meta["version"] == xml.findtext("version") == version.group(1)


def test_cmakelists_lists_no_executable_of_its_own() -> None:
    """The executables come from setup.cfg (CMakeLists.txt reads it); no second hand-written list."""
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert "setup.cfg" in cmake
    assert not re.search(r"cosmos_ros\.(nodes|tools)\.\w+", cmake), "CMakeLists.txt names a module again"


def test_every_console_script_resolves_and_none_is_a_developer_tool() -> None:
    scripts = console_scripts()
    assert {"planner_node", "safety_node", "planner_and_safety", "sim_node", "expert_planner_node"} <= set(
        scripts
    )
    for name, target in scripts.items():
        module, func = target.split(":")
        assert not DEV_TOOLS.match(module), f"{name}: benchmarks and developer tools are `python -m` only"
        source = REPO / Path(*module.split(".")).with_suffix(".py")
        assert re.search(rf"^def {func}\(", source.read_text(), re.MULTILINE), (
            f"{name}: no {func}() in {source}"
        )


def test_every_executable_a_launch_file_starts_is_declared() -> None:
    started: set[str] = set()
    for launch_file in (REPO / "launch").glob("*.launch.py"):
        # `executable="x"` and `executable="x" if ... else "y"`
        for line in re.findall(r"executable=(.*)", launch_file.read_text()):
            started |= set(re.findall(r'^"(\w+)"|else "(\w+)"', line)[0]) - {""}
    assert {"planner_and_safety", "planner_node", "safety_node", "sim_node", "expert_planner_node"} <= started
    assert started and started <= set(console_scripts()), started - set(console_scripts())


def test_developer_tools_still_run_with_python_m() -> None:
    for tool in sorted((REPO / "cosmos_ros" / "tools").glob("*.py")):
        text = tool.read_text()
        if "def main(" in text:
            assert 'if __name__ == "__main__":' in text, f"{tool.name}: `python -m` would do nothing"


# --- the two install routes ---------------------------------------------------------------------------------


def _copy_sources(dest: Path) -> Path:
    """The files a clone has (tracked and new, not ignored): pip builds in-tree, and the repository's build/
    is colcon's."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout ({listed.stderr.strip()}); cannot tell sources from build outputs")
    for rel in listed.stdout.splitlines():
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def pip_prefix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`pip install .` into an empty prefix: offline (--no-index), no dependencies (the test's interpreter has
    them), the build backend of this interpreter (--no-build-isolation). What pip does with setup.cfg is the
    same as on a robot; only the fetching is left out."""
    root = tmp_path_factory.mktemp("pip_route")
    src = _copy_sources(root / "src")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--prefix",
            str(root / "prefix"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    yield root / "prefix"


def _site(prefix: Path) -> Path:
    rel = Path(sysconfig.get_path("purelib")).relative_to(sysconfig.get_path("data"))
    return prefix / rel


def test_pip_install_has_the_declared_scripts_package_data_and_share_layout(pip_prefix: Path) -> None:
    scripts = console_scripts()
    bin_dir = pip_prefix / "bin"
    assert {p.name for p in bin_dir.iterdir()} == set(scripts)
    for name, target in scripts.items():
        assert script_target(bin_dir / name) == target, name
    site = _site(pip_prefix)
    assert (site / "cosmos_ros" / "nodes" / "safety_node.py").is_file()
    assert (site / "cosmos_ros" / "models" / "panda_touch_tiny" / "transformer" / "config.json").is_file()
    for node in ("planner_node", "safety_node", "sim_node"):  # the parameter schemas, read at run time
        assert (site / "cosmos_ros" / "schemas" / f"{node}.yaml").is_file(), node
    # ament_python's layout: with the prefix on AMENT_PREFIX_PATH the ament index finds the share directory.
    assert (pip_prefix / "share" / "ament_index" / "resource_index" / "packages" / "cosmos_ros").is_file()
    share = pip_prefix / "share" / "cosmos_ros"
    for rel in (
        "package.xml",
        "launch/planner.launch.py",
        "launch/sim.launch.py",
        "config/safety.yaml",
        "config/limits/arm7_joints.yaml",
        "config/action_spaces/umi_pose_gripper.yaml",
        "config/sim/panda.yaml",
        "msg/ActionSequence.msg",
    ):
        assert (share / rel).is_file(), rel


def test_pip_install_is_found_through_the_ament_index(pip_prefix: Path) -> None:
    """resource/cosmos_ros does its ament-index job: the prefix on AMENT_PREFIX_PATH is the package's."""
    pytest.importorskip("ament_index_python", reason="ament_index_python not importable (comes with ROS 2)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    env["AMENT_PREFIX_PATH"] = str(pip_prefix)
    code = "from ament_index_python.packages import get_package_share_directory as g; print(g('cosmos_ros'))"
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd="/"
    )
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == pip_prefix / "share" / "cosmos_ros"


def test_pip_installed_core_runs_the_safety_core_without_ros_or_the_ml_stack(pip_prefix: Path) -> None:
    site = _site(pip_prefix)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    env["PYTHONPATH"] = str(site)
    modules = ["cosmos_ros.safety", "cosmos_ros.safety.supervisor", "cosmos_ros.plan"]
    out = run_ml_free_core("--no-ros", "--import", *modules, cwd=pip_prefix, env=env)
    assert out["control"] == "blocked"  # the blocker works, so what follows means something
    assert Path(out["cosmos_ros"]).is_relative_to(site), out["cosmos_ros"]
    assert out["attempts"] == [] and out["loaded"] == []
    assert out["decision"] == "ACCEPTED" and out["all_finite"] and out["setpoints"] == 120
    assert out["joint1_final"] > 0.15  # it streamed the plan, not a hold


@pytest.mark.ros
def test_colcon_install_space_exposes_the_same_executables_as_pip(pip_prefix: Path) -> None:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = Path(get_package_prefix("cosmos_ros"))
    except PackageNotFoundError:
        pytest.skip("no colcon install space on AMENT_PREFIX_PATH (scripts/setup.sh builds it)")
    lib = prefix / "lib" / "cosmos_ros"
    colcon = {p.name: script_target(p) for p in lib.iterdir()}
    pip = {p.name: script_target(p) for p in (pip_prefix / "bin").iterdir()}
    assert colcon == pip == console_scripts()


# --- the safety node without the ML stack -------------------------------------------------------------------


@pytest.mark.ros
def test_safety_node_modules_and_core_run_with_the_ml_stack_absent() -> None:
    """In a fresh interpreter with torch, diffusers, transformers, OpenCV, PIL, ... unimportable."""
    pytest.importorskip("rclpy", reason="rclpy not importable (ROS 2 not installed or sourced)")
    modules = ["cosmos_ros.nodes.safety_node", "cosmos_ros.nodes.conversions", "cosmos_ros.msg"]
    out = run_ml_free_core("--import", *modules, cwd="/")  # not the source tree: it has no cosmos_ros.msg
    assert out["control"] == "blocked"
    assert out["attempts"] == [], f"the safety node's import chain reaches for {out['attempts']}"
    assert out["decision"] == "ACCEPTED" and out["setpoints"] == 120


@pytest.mark.ros
def test_safety_node_process_configures_and_activates_with_the_ml_stack_absent(
    domain_id: int, tmp_path: Path
) -> None:
    """The installed safety node as its own process, every import of the ML stack failing and logged."""
    pytest.importorskip("rclpy", reason="rclpy not importable (ROS 2 not installed or sourced)")
    from cosmos_ros.testing.ros_harness import NodeProcess, TestPeer, ros_env, wait_active

    log = tmp_path / "blocked_imports.txt"
    blocker = str(HELPERS / "import_blocker")
    env = {
        "PYTHONPATH": blocker + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "COSMOS_ROS_BLOCK_IMPORTS": ML_STACK,
        "COSMOS_ROS_BLOCK_LOG": str(log),
        "PYTHONSAFEPATH": "1",
    }
    # The control: the same environment really hides torch from a Python process.
    control = subprocess.run(
        [sys.executable, "-c", "import torch"], env=ros_env(domain_id, env), capture_output=True, timeout=60
    )
    assert control.returncode != 0 and "torch" in log.read_text()
    log.unlink()
    with NodeProcess("cosmos_ros.nodes.safety_node", domain_id, env=env) as node, TestPeer(domain_id) as peer:
        active = wait_active(peer, "safety_node", timeout=60.0)
        assert active, node.output()[-3000:]
        assert node.stop() == 0, node.output()[-3000:]
    assert not log.exists(), f"the safety node tried to import: {log.read_text()}"


# --- requirement files by role ------------------------------------------------------------------------------


def _pins(path: Path, python: str) -> dict[str, list[str]]:
    """package -> pinned versions that apply on Python ``python``, following `-r` includes."""
    from packaging.markers import Marker

    pins: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            for name, versions in _pins(path.parent / line[3:].strip(), python).items():
                pins.setdefault(name, []).extend(versions)
            continue
        spec, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate({"python_version": python}):
            continue
        name, _, version = spec.strip().partition("==")
        pins.setdefault(re.sub(r"[-_.]+", "-", name.strip().lower()), []).append(version.strip())
    return pins


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12"])
def test_role_requirements_pin_each_package_once_per_python(python: str) -> None:
    for role in ("node", "server", "sim", "test"):
        pins = _pins(REPO / f"requirements-{role}.txt", python)
        doubled = {name: v for name, v in pins.items() if len(set(v)) > 1}
        assert not doubled, f"requirements-{role}.txt on Python {python}: {doubled}"
    full = _pins(REPO / "requirements.txt", python)
    for role in ("node", "server", "sim"):
        assert set(_pins(REPO / f"requirements-{role}.txt", python)) <= set(full), role
    node = _pins(REPO / "requirements-node.txt", python)
    assert not {"torch", "diffusers", "transformers"} & set(node), "the node role must not need the model"
    expected_numpy = "2.2.6" if python == "3.10" else "2.4.6"
    assert node["numpy"] == [expected_numpy]


def test_every_extra_and_core_requirement_is_met_by_the_pinned_dev_set(pip_prefix: Path) -> None:
    """setup.cfg's bounds and the requirement files' pins agree: the environment built from requirements.txt
    (this interpreter's) satisfies the core and every extra as pip recorded them in the installed metadata."""
    import importlib.metadata

    from packaging.requirements import Requirement

    (dist,) = importlib.metadata.distributions(path=[str(_site(pip_prefix))])
    extras = set(dist.metadata.get_all("Provides-Extra") or [])
    assert {"planner", "model", "replay", "sim", "bench"} <= extras
    for line in dist.requires or []:
        req = Requirement(line)
        installed = importlib.metadata.version(req.name)
        assert req.specifier.contains(installed, prereleases=True), f"{line}: installed {installed}"
