"""A control-rate timer on its own hidden node, executor and thread (the safety node's tick source).

rclpy by nature (a node, an executor, a thread), so it lives beside the nodes, not in the pure core; it is a
module of its own because nothing in it is specific to the safety node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class Ticker:
    """The control-rate timer on its own hidden node, executor and thread.

    Why not a timer in a callback group of a ``MultiThreadedExecutor`` (the usual rclpy advice): rclpy's
    MultiThreadedExecutor spends CPU and the GIL in its own dispatch loop, and ``bench_jitter
    --compare-executors`` measured it stalling the timer and costing more CPU (numbers in the README's safety
    node section). A dedicated SingleThreadedExecutor in its own thread keeps the timer path short *and* keeps
    plan checking (milliseconds of numpy) off it, whatever executor spins the node itself.

    The timer runs on the owner's clock, so ``use_sim_time`` and ``/clock`` stepping (lockstep replay) drive
    the ticks exactly as a timer of the owner node would. The helper node has a hidden name (leading
    underscore), no parameter services, no rosout, and ignores global ``--ros-args`` (so ``__node`` remaps of
    the owner do not rename it too).

    Args:
        owner: node whose clock, context and namespace are used.
        period_s: timer period in seconds.
        callback: the tick.
    """

    def __init__(self, owner: Node, period_s: float, callback: Callable[[], None]) -> None:
        self._node = rclpy.create_node(
            f"_{owner.get_name()}_ticker",
            namespace=owner.get_namespace(),
            context=owner.context,
            use_global_arguments=False,
            start_parameter_services=False,
            enable_rosout=False,
        )
        # Serialises a tick with pause(): once pause() returns no tick runs until resume().
        self._busy = threading.Lock()
        self._callback = callback
        self._timer = self._node.create_timer(period_s, self._tick, clock=owner.get_clock())
        self._executor = SingleThreadedExecutor(context=owner.context)
        self._executor.add_node(self._node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="safety_ticker", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self._node.context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except Exception:  # context shut down under us (Ctrl-C): nothing left to tick
                if self._stop.is_set() or not self._node.context.ok():
                    return
                raise

    def _tick(self) -> None:
        with self._busy:
            if not self._timer.is_canceled():
                self._callback()

    def pause(self) -> None:
        """Stop ticking, keeping the helper node for ``resume()``; after it returns no tick runs.

        Why pause instead of a new Ticker per activation: creating and destroying the helper node, executor
        and thread leaks memory in rclpy on every activate/deactivate cycle (the issue 9 soak, where the
        simulator re-activates the node every episode; numbers in the README and ``bench/soak*.txt``)."""
        self._timer.cancel()
        with self._busy:  # waits for a tick in progress
            pass

    def resume(self) -> None:
        """Tick again, the first tick one period from now."""
        self._timer.reset()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop ticking and free the helper node; after it returns no tick runs any more."""
        self._stop.set()
        self._timer.cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout_s)
        self._executor.shutdown(timeout_sec=timeout_s)
        self._node.destroy_node()
