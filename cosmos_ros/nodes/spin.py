"""The nodes' spin loop: spin until rclpy shuts down or a node is *finalized*.

A lifecycle node in *finalized* (``ros2 lifecycle set <node> shutdown``) can never be configured again, so
its process has nothing left to do: it exits (status 0), and a launch file sees the exit and reacts. rclpy's
``executor.spin()`` would keep the process alive forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# How often the loop looks at the nodes when no callback is ready (s); bounds the exit delay, costs nothing.
_POLL_S = 0.2


def spin_until_finalized(executor: Any, nodes: Sequence[Any]) -> None:
    """Spin ``executor`` until its context shuts down or any of ``nodes`` has ``finalized`` set.

    The lifecycle service that finalized the node answers before this returns: the answer is sent inside the
    same executor callback that ran ``on_shutdown``.
    """
    while executor.context.ok() and not any(getattr(n, "finalized", False) for n in nodes):
        try:
            executor.spin_once(timeout_sec=_POLL_S)
        except RuntimeError:
            # SIGINT shuts the context down under a wait: rclpy may then fail to take a message from a
            # subscription whose handle is already gone ("Unable to convert call argument '0'", seen in CI).
            # That is the normal end of the process, not an error; any other RuntimeError still propagates.
            if executor.context.ok():
                raise
            return
