"""The nodes' spin loop (cosmos_ros.nodes.spin) with a stand-in executor: no ROS graph needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cosmos_ros.nodes.spin import spin_until_finalized


class FakeExecutor:
    """spin_once runs the scripted actions in order; ``context.ok()`` is what the script left it at."""

    def __init__(self, script: list) -> None:
        self.script = script
        self.up = True
        self.context = SimpleNamespace(ok=lambda: self.up)

    def spin_once(self, timeout_sec: float) -> None:
        self.script.pop(0)(self)


def _shutdown_then_fail(ex: FakeExecutor) -> None:
    ex.up = False  # SIGINT: rclpy shut the context down during the wait
    raise RuntimeError("Unable to convert call argument '0' to Python object")


def test_a_take_failure_after_shutdown_ends_the_loop_quietly() -> None:
    ex = FakeExecutor([lambda ex: None, _shutdown_then_fail])
    spin_until_finalized(ex, [SimpleNamespace(finalized=False)])
    assert ex.script == []


def test_a_runtime_error_while_the_context_is_up_propagates() -> None:
    def fail(ex: FakeExecutor) -> None:
        raise RuntimeError("a real bug")

    with pytest.raises(RuntimeError, match="a real bug"):
        spin_until_finalized(FakeExecutor([fail]), [SimpleNamespace(finalized=False)])


def test_a_finalized_node_ends_the_loop() -> None:
    node = SimpleNamespace(finalized=False)

    def finalize(ex: FakeExecutor) -> None:
        node.finalized = True

    ex = FakeExecutor([finalize, lambda ex: pytest.fail("spun after the node was finalized")])
    spin_until_finalized(ex, [node])
