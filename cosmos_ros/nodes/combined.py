"""Planner and safety node in one process, on one executor (``ros2 run cosmos_ros planner_and_safety``).

rclpy has no component container, so this is the Python way to "compose": both lifecycle nodes share one
``SingleThreadedExecutor``; the plan still travels over the ``action_sequence`` topic (remapping and
namespaces behave as with two processes). Inference runs on the planner's own worker thread and the safety
node's control-rate timer on its own tick thread (see ``nodes/ticker.py``), so neither waits for the
other's callbacks. A MultiThreadedExecutor is deliberately not used: the safety node's jitter benchmark
measured it stalling the tick timer and costing more CPU (``bench_jitter --compare-executors``; README).
Use it when planner and safety run on the same computer and you want one process to supervise; run two
processes when the safety node belongs on the controller computer (its watchdog then covers a lost link).

Parameters: both nodes read the same ``/**`` parameters, so pass both params files; names both declare
(``autostart``, ``use_sim_time``, ``diagnostics_period_s``) take one value for both.
"""

from __future__ import annotations

import sys

from cosmos_ros.nodes.planner_node import PlannerNode
from cosmos_ros.nodes.safety_node import SafetyNode
from cosmos_ros.nodes.spin import run_nodes


def main(args: list[str] | None = None) -> int:
    """Exit codes as :func:`~cosmos_ros.nodes.spin.run_nodes`; either node finalized ends the process."""
    # Same as safety_node.main: a short GIL switch interval keeps the tick thread on time while Python-side
    # work (message conversion, plan checks) runs on the executor thread.
    sys.setswitchinterval(0.0005)
    # Safety first: nothing may be planned before the only path to the actuators is up.
    return run_nodes(lambda: [SafetyNode(), PlannerNode()], name="planner_and_safety", args=args)


if __name__ == "__main__":
    sys.exit(main())
