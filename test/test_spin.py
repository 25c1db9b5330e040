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


# --- run_nodes: the one main() of every entry point ---------------------------------------------------------
class FakeLifecycleNode:
    """What run_nodes uses of a lifecycle node; ``fail`` names the transition that fails."""

    def __init__(self, log: list[str], name: str, autostart: bool = True, fail: str = "") -> None:
        self.log, self.name, self.autostart, self.fail = log, name, autostart, fail
        self.finalized = False
        self.errors: list[str] = []

    def get_parameter(self, name: str) -> SimpleNamespace:
        assert name == "autostart"
        return SimpleNamespace(value=self.autostart)

    def _transition(self, which: str) -> object:
        from rclpy.lifecycle import TransitionCallbackReturn

        self.log.append(f"{self.name}.{which}")
        return TransitionCallbackReturn.FAILURE if self.fail == which else TransitionCallbackReturn.SUCCESS

    def trigger_configure(self) -> object:
        return self._transition("configure")

    def trigger_activate(self) -> object:
        return self._transition("activate")

    def get_logger(self) -> SimpleNamespace:
        return SimpleNamespace(error=self.errors.append)

    def destroy_node(self) -> None:
        self.log.append(f"{self.name}.destroy")


class FinalizingExecutor(FakeExecutor):
    """Finalizes the first node on its first spin (``ros2 lifecycle set ... shutdown``)."""

    def __init__(self) -> None:
        super().__init__([self._finalize])
        self.nodes: list[FakeLifecycleNode] = []

    def add_node(self, node: FakeLifecycleNode) -> None:
        self.nodes.append(node)

    def _finalize(self, ex: FakeExecutor) -> None:
        self.nodes[0].finalized = True


@pytest.fixture
def ros_domain(domain_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # run_nodes initialises rclpy's default context: keep it on this session's domain.
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id))


@pytest.mark.usefixtures("ros_domain")
def test_run_nodes_brings_up_in_order_spins_and_destroys_in_reverse() -> None:
    from cosmos_ros.nodes.spin import run_nodes

    log: list[str] = []
    nodes = [FakeLifecycleNode(log, "safety"), FakeLifecycleNode(log, "planner")]
    executor = FinalizingExecutor()
    assert run_nodes(lambda: nodes, name="t", args=[], make_executor=lambda: executor) == 0
    assert log == [
        "safety.configure",
        "safety.activate",
        "planner.configure",
        "planner.activate",
        "planner.destroy",
        "safety.destroy",
    ]
    assert executor.nodes == nodes and executor.script == []


@pytest.mark.usefixtures("ros_domain")
@pytest.mark.parametrize("fail", ["configure", "activate"])
def test_run_nodes_autostart_failure_exits_1_and_stops_the_bring_up(fail: str) -> None:
    from cosmos_ros.nodes.spin import run_nodes

    log: list[str] = []
    first = FakeLifecycleNode(log, "safety", fail=fail)
    nodes = [first, FakeLifecycleNode(log, "planner")]
    executor = FinalizingExecutor()
    assert run_nodes(lambda: nodes, name="t", args=[], make_executor=lambda: executor) == 1
    assert not any(entry.startswith("planner.c") for entry in log)  # nothing planned without safety
    assert log[-2:] == ["planner.destroy", "safety.destroy"]
    assert executor.script == [executor._finalize], "spun after a failed bring-up"
    # The launch file reads the reason from the node's own ERROR line; this one points at it.
    assert first.errors == [f"autostart: {fail} failed (reason above); exiting"]


@pytest.mark.usefixtures("ros_domain")
def test_run_nodes_without_autostart_and_with_done() -> None:
    from cosmos_ros.nodes.spin import run_nodes

    log: list[str] = []
    node = FakeLifecycleNode(log, "sim", autostart=False)
    executor = FakeExecutor([lambda ex: pytest.fail("spun although done")])
    executor.add_node = lambda n: None  # type: ignore[attr-defined]
    assert (
        run_nodes(lambda: [node], name="t", args=[], make_executor=lambda: executor, done=lambda: True) == 0
    )
    assert log == ["sim.destroy"]


@pytest.mark.usefixtures("ros_domain")
def test_run_nodes_exits_2_when_the_nodes_cannot_be_created() -> None:
    from cosmos_ros.nodes.spin import run_nodes

    def bad_override() -> list[FakeLifecycleNode]:
        raise ValueError("control_rate_hz 5000.0 out of range")

    assert run_nodes(bad_override, name="t", args=[]) == 2
