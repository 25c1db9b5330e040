"""Run cosmos_ros nodes as real processes and talk to them over DDS, for tests (ours and users').

Why processes and not in-process nodes: the acceptance tests are about what crosses DDS (QoS, types, timing)
and about nodes surviving bad input; an in-process node would share the test's executor and hide both.

Every wait here has a timeout. Each test session picks its own ROS domain id so tests running in parallel
(or other engineers' nodes on the same machine) never see each other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

from cosmos_ros.dds_env import use_localhost_discovery


def pick_domain_id(seed: int | None = None) -> int:
    """A domain id unlikely to collide with other test processes on this machine (valid range 0..101 for
    Fast DDS' default port mapping; we use 1..100 and leave 0 to humans)."""
    base = os.getpid() if seed is None else seed
    return 1 + base % 100


def ros_env(domain_id: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a node process: same venv / install space as this process, own domain, loopback only.

    Loopback discovery on every distro (``cosmos_ros.dds_env``: Humble's ROS_LOCALHOST_ONLY as well).
    """
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    use_localhost_discovery(env)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")
    if extra:
        env.update(extra)
    return env


def _param_arg(name: str, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = "[" + ",".join(_yaml_scalar(v) for v in value) + "]"
    else:
        text = _yaml_scalar(value)
    return f"{name}:={text}"


def _yaml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


@dataclass
class NodeProcess:
    """A node started as ``python -m <module> --ros-args ...``; output goes to a log file for post-mortems.

    Attributes:
        module: e.g. ``cosmos_ros.nodes.safety_node``.
        params: ``-p name:=value`` parameters.
        params_files: ``--params-file`` paths (applied before ``params``).
        remaps: ``-r from:=to`` remappings.
        name: ``__node`` override (optional); namespace: ``__ns`` (optional).
    """

    module: str
    domain_id: int
    params: Mapping[str, Any] = field(default_factory=dict)
    params_files: Iterable[str | Path] = ()
    remaps: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    namespace: str | None = None
    env: Mapping[str, str] | None = None
    log_level: str = "info"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", self.module, "--ros-args", "--log-level", self.log_level]
        for f in self.params_files:
            cmd += ["--params-file", str(f)]
        for k, v in self.params.items():
            cmd += ["-p", _param_arg(k, v)]
        for a, b in self.remaps.items():
            cmd += ["-r", f"{a}:={b}"]
        if self.name:
            cmd += ["-r", f"__node:={self.name}"]
        if self.namespace:
            cmd += ["-r", f"__ns:={self.namespace}"]
        return cmd

    def start(self) -> NodeProcess:
        fd, path = tempfile.mkstemp(prefix=self.module.rsplit(".", 1)[-1] + "_", suffix=".log")
        self.log_path = Path(path)
        # cwd: `python -m` puts the working directory first on sys.path; started from a source checkout, the
        # source tree (which has no generated cosmos_ros.msg) would shadow the install space.
        self.proc = subprocess.Popen(
            self.command(),
            stdout=fd,
            stderr=subprocess.STDOUT,
            env=ros_env(self.domain_id, self.env),
            cwd=tempfile.gettempdir(),
            start_new_session=True,
        )
        os.close(fd)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def wait_exit(self, timeout: float) -> int | None:
        """Exit code, or None if still running after ``timeout`` seconds."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (clean shutdown path of main()), then SIGKILL after ``timeout``. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            if self.wait_exit(timeout) is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Recorder:
    """Collects messages of one topic with their local receive times (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[float, Any]] = []

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self._items.append((time.monotonic(), msg))

    @property
    def messages(self) -> list[Any]:
        with self._lock:
            return [m for _, m in self._items]

    @property
    def stamped(self) -> list[tuple[float, Any]]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class TestPeer:
    """An rclpy node in the test process, spun on a background thread, in its own context and domain."""

    __test__ = False  # not a pytest test class

    def __init__(self, domain_id: int, name: str = "test_peer") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down under us during teardown
                if self._stop.is_set():
                    return
                raise

    def publisher(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10) -> Any:
        return self.node.create_publisher(msg_type, topic, qos)

    def record(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10) -> Recorder:
        rec = Recorder()
        self.node.create_subscription(msg_type, topic, rec, qos)
        return rec

    def wait_for_subscribers(self, pub: Any, count: int = 1, timeout: float = 20.0) -> bool:
        return wait_until(lambda: pub.get_subscription_count() >= count, timeout)

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 20.0) -> bool:
        return wait_until(lambda: self.node.count_publishers(topic) >= count, timeout)

    def now_s(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=2)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)

    def __enter__(self) -> TestPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass. Returns the last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())


def wait_active(peer: TestPeer, node_name: str, timeout: float) -> bool:
    """Wait until lifecycle node ``node_name`` (fully qualified, or relative to ``/``) reports *active*.

    Asks ``<node>/get_state`` (lifecycle_msgs/GetState) until the answer is ``active`` or ``timeout`` passes.
    """
    from lifecycle_msgs.srv import GetState

    name = node_name if node_name.startswith("/") else "/" + node_name
    cli: Any = peer.node.create_client(GetState, f"{name}/get_state")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not cli.wait_for_service(timeout_sec=min(1.0, max(0.01, deadline - time.monotonic()))):
                continue
            fut = cli.call_async(GetState.Request())
            answer = fut.result() if wait_until(fut.done, timeout=5.0) else None
            if answer is not None and answer.current_state.label == "active":
                return True
            time.sleep(0.2)
        return False
    finally:
        peer.node.destroy_client(cli)
