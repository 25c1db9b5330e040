"""Run by test_packaging.py in a fresh interpreter: the safety core with the ML stack made unimportable.

Usage: ``python ml_free_core.py LIMITS_YAML [--no-ros] [--import MODULE ...]``. Prints one JSON line: where
cosmos_ros came from, which blocked imports were attempted, the decision on a plan and how far it streamed.
Blocked packages raise ModuleNotFoundError as if they were not installed; every attempt is recorded, so a
module that imports torch inside ``try/except ImportError`` still shows up.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import json
import sys
from collections.abc import Sequence
from typing import Any

ML_STACK = (
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "safetensors",
    "tokenizers",
    "cv2",
    "PIL",
    "matplotlib",
    "pybullet",
    "onnx",
    "onnxruntime",
    "tensorrt",
)
ROS = ("rclpy", "rosidl_runtime_py", "ament_index_python", "launch", "launch_ros")


class Blocker(importlib.abc.MetaPathFinder):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)
        self.attempts: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.names:
            self.attempts.append(fullname)
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked here)", name=fullname)
        return None


def run_core(limits_path: str) -> dict[str, Any]:
    """Push one plan through the safety supervisor and stream it: the controller computer's whole job."""
    import numpy as np

    from cosmos_ros.plan import Plan
    from cosmos_ros.safety import Decision, SafetySupervisor, load_limits

    limits = load_limits(limits_path)
    home = np.array([0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0, 0.04])
    sup = SafetySupervisor(limits)
    sup.activate(0.0)
    assert sup.set_measured(home, 0.0)
    sup.tick(0.0)
    values = np.tile(home, (10, 1))
    values[:, 0] = np.linspace(0.0, 0.2, 10)  # joint 1 moves 0.2 rad over 0.9 s
    plan = Plan(
        plan_id=1,
        stamp_s=0.0,
        t0_s=0.01,
        step_period_s=0.1,
        axis_names=limits.axis_names,
        values=values,
        frame_id=limits.frame_id,
        action_space=limits.action_space,
    )
    decision = sup.push(plan, 0.01)
    positions = []
    for k in range(1, 121):
        sp = sup.tick(0.01 * k)
        if sp is not None:
            positions.append(sp.positions.tolist())
            sup.set_measured(sp.positions, 0.01 * k)
    return {
        "decision": Decision(decision.decision).name,
        "setpoints": len(positions),
        "joint1_final": positions[-1][0] if positions else None,
        "all_finite": bool(np.isfinite(np.asarray(positions)).all()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("limits")
    ap.add_argument("--no-ros", action="store_true", help="block rclpy and the ament index too")
    ap.add_argument("--import", dest="modules", nargs="*", default=[], help="modules to import first")
    args = ap.parse_args(argv)
    blocker = Blocker(ML_STACK + (ROS if args.no_ros else ()))
    sys.meta_path.insert(0, blocker)
    try:  # the control: the blocker must make a blocked package unimportable, or the test proves nothing
        importlib.import_module("torch")
        control = "torch imported despite the blocker"
    except ModuleNotFoundError:
        control = "blocked"
    blocker.attempts.clear()
    for name in args.modules:
        importlib.import_module(name)
    import cosmos_ros

    result = run_core(args.limits)
    result.update(
        control=control,
        cosmos_ros=cosmos_ros.__file__,
        attempts=sorted(set(blocker.attempts)),
        loaded=sorted(m for m in sys.modules if m.partition(".")[0] in blocker.names),
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
