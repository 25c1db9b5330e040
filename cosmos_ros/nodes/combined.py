"""Planner and safety node in one process, on one executor (``ros2 run cosmos_ros planner_and_safety``).

rclpy has no component container, so this is the Python way to "compose": both lifecycle nodes share one
``SingleThreadedExecutor``; the plan still travels over the ``action_sequence`` topic (remapping and
namespaces behave as with two processes). Inference runs on the planner's own worker thread and the safety
node's control-rate timer on its own tick thread (see ``safety_node.Ticker``), so neither waits for the
other's callbacks. A MultiThreadedExecutor is deliberately not used: the safety node's jitter benchmark
measured it stalling the tick timer and costing 1.4-3.3x the CPU (``bench_jitter --compare-executors``).
Use it when planner and safety run on the same computer and you want one process to supervise; run two
processes when the safety node belongs on the controller computer (its watchdog then covers a lost link).

Parameters: both nodes read the same ``/**`` parameters, so pass both params files; names both declare
(``autostart``, ``use_sim_time``, ``diagnostics_period_s``) take one value for both.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn

from cosmos_ros.nodes.planner_node import PlannerNode
from cosmos_ros.nodes.safety_node import SafetyNode
from cosmos_ros.nodes.spin import spin_until_finalized


def main(args: list[str] | None = None) -> int:
    """Returns 0 after a normal shutdown, 1 if autostart could not configure/activate a node (logged)."""
    # Same as safety_node.main: a short GIL switch interval keeps the tick thread on time while Python-side
    # work (message conversion, plan checks) runs on the executor thread.
    sys.setswitchinterval(0.0005)
    rclpy.init(args=args)
    planner: PlannerNode | None = None
    safety: SafetyNode | None = None
    try:
        try:
            safety = SafetyNode()
            planner = PlannerNode()
        except Exception as exc:  # bad parameter overrides
            rclpy.logging.get_logger("planner_and_safety").error(f"cannot start: {type(exc).__name__}: {exc}")
            return 2
        executor = SingleThreadedExecutor()
        executor.add_node(safety)
        executor.add_node(planner)
        if planner.get_parameter("autostart").value:
            # Safety first: nothing may be planned before the only path to the actuators is up.
            if not safety.bring_up():
                safety.get_logger().error("autostart: safety node failed to come up (see above); exiting")
                return 1
            if planner.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                planner.get_logger().error("autostart: configure failed (see above); exiting")
                return 1
            if planner.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                planner.get_logger().error("autostart: activate failed; exiting")
                return 1
        # Either node finalized ends the process: one without the other is not a state to leave running.
        spin_until_finalized(executor, [planner, safety])
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if planner is not None:
            planner._release()
            planner.destroy_node()
        if safety is not None:
            safety.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
