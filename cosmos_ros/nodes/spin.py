"""The nodes' ``main``: create, bring up, spin until rclpy shuts down or a node is *finalized*, clean up.

A lifecycle node in *finalized* (``ros2 lifecycle set <node> shutdown``) can never be configured again, so
its process has nothing left to do: it exits (status 0), and a launch file sees the exit and reacts. rclpy's
``executor.spin()`` would keep the process alive forever.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn

# How often the loop looks at the nodes when no callback is ready (s); bounds the exit delay, costs nothing.
_POLL_S = 0.2


def spin_until_finalized(executor: Any, nodes: Sequence[Any], done: Callable[[], bool] | None = None) -> None:
    """Spin ``executor`` until its context shuts down, any of ``nodes`` has ``finalized`` set, or ``done()``.

    The lifecycle service that finalized the node answers before this returns: the answer is sent inside the
    same executor callback that ran ``on_shutdown``.
    """
    while executor.context.ok() and not any(getattr(n, "finalized", False) for n in nodes):
        if done is not None and done():
            return
        try:
            executor.spin_once(timeout_sec=_POLL_S)
        except RuntimeError:
            # SIGINT shuts the context down under a wait: rclpy may then fail to take a message from a
            # subscription whose handle is already gone ("Unable to convert call argument '0'", seen in CI).
            # That is the normal end of the process, not an error; any other RuntimeError still propagates.
            if executor.context.ok():
                raise
            return


def bring_up(node: LifecycleNode) -> bool:
    """configure + activate (the ``autostart`` path); False, the failed transition logged, if either fails.

    The reason itself is logged by the node's ``on_configure``/``on_activate``.
    """
    for name, trigger in (("configure", node.trigger_configure), ("activate", node.trigger_activate)):
        if trigger() != TransitionCallbackReturn.SUCCESS:
            node.get_logger().error(f"autostart: {name} failed (reason above); exiting")
            return False
    return True


def run_nodes(
    make_nodes: Callable[[], Sequence[LifecycleNode]],
    *,
    name: str,
    args: list[str] | None = None,
    make_executor: Callable[[], Executor] = SingleThreadedExecutor,
    done: Callable[[], bool] | None = None,
) -> int:
    """The entry points' ``main``: create the nodes, bring them up with ``autostart``, spin, clean up.

    The same behaviour for every executable: exit status 2 when the nodes cannot even be created (a parameter
    override of the wrong type or out of range), 1 when ``autostart`` is on and configure or activate fails,
    0 after a normal end (Ctrl-C, external shutdown, a node finalized, or ``done``). Every reason is logged at
    ERROR, so a launch file or a supervisor sees why.

    Args:
        make_nodes: Creates the nodes, in bring-up order (the safety node first where there is one).
        name: Logger name for a failure to create the nodes.
        args: Command-line arguments for ``rclpy.init``.
        make_executor: The executor all nodes share.
        done: Polled between callbacks; True ends the process (e.g. a simulator whose episodes are over).

    Returns:
        The process exit status.
    """
    rclpy.init(args=args)
    nodes: list[LifecycleNode] = []
    try:
        try:
            nodes = list(make_nodes())
        except Exception as exc:  # rclpy's InvalidParameter*Exception for bad overrides
            rclpy.logging.get_logger(name).error(f"cannot start: {type(exc).__name__}: {exc}")
            return 2
        executor = make_executor()
        for node in nodes:
            executor.add_node(node)
        # The nodes read the same parameters (``/**``), so the first one's autostart stands for all.
        if nodes[0].get_parameter("autostart").value and not all(bring_up(n) for n in nodes):
            return 1
        spin_until_finalized(executor, nodes, done)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
