"""The planner node with ``backend: server`` over DDS, the tiny model in a policy-server process.

What is checked, end to end with real processes: plans come through the server; the server killed mid-run
is a counted ``server_error`` and no plan is published for the frames it did not answer; the planner
reconnects (a fresh handshake) when the server is back; at configure, a missing server, a server of another
model and a server of another protocol/package version are each refused with the reason logged, and the node
stays unconfigured and alive. Every wait has a timeout; nothing asserts a rate.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lifecycle_msgs.msg import Transition
from test_planner_node import COMMON_PARAMS, MODULE, NODE_ENV, PLAN_S, STARTUP_S, PlannerRig, image_msg

from cosmos_ros.nodes.conversions import time_to_sec
from cosmos_ros.testing.ros_harness import NodeProcess, TestPeer, ros_env, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

# A server whose wire module speaks another protocol and package version (the stand-in for an old install).
OLD_SERVER = (
    "import sys, cosmos_ros.policy_server.wire as w; w.PROTOCOL_VERSION = 99; w.PACKAGE_VERSION = '0.99.0';"
    "from cosmos_ros.policy_server.__main__ import main; sys.exit(main(sys.argv[1:]))"
)


class ServerProcess:
    """``python -m cosmos_ros.policy_server`` on the tiny model, logging to a file; restartable."""

    def __init__(self, model: Path, sock: Path, domain_id: int, code: str | None = None) -> None:
        self.model, self.sock, self.domain_id, self.code = model, sock, domain_id, code
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="policy_server_", suffix=".log")[1])

    def start(self) -> ServerProcess:
        args = [
            "--model-path", str(self.model), "--backend", "diffusers", "--action-space", "umi_pose_gripper",
            "--chunk-size", "4", "--listen", f"unix://{self.sock}", "--no-warmup",
        ]  # fmt: skip
        head = ["-c", self.code] if self.code else ["-m", "cosmos_ros.policy_server"]
        self.log.write_text("")
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, *head, *args], stdout=f, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir(),
                env=ros_env(self.domain_id, {"PYTHONSAFEPATH": "1", "OMP_NUM_THREADS": "1"}),
                start_new_session=True,
            )  # fmt: skip
        ok = wait_until(lambda: "serving" in self.output() or self.proc.poll() is not None, STARTUP_S)
        assert ok and self.proc.poll() is None, f"policy server did not start:\n{self.output()[-3000:]}"
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-run, as on a crash or power loss."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def peer(domain_id: int) -> Iterator[TestPeer]:
    with TestPeer(domain_id, name="planner_server_test_peer") as p:
        yield p


@pytest.fixture(scope="module")
def sockdir() -> Iterator[Path]:
    # Short path: a unix socket path is limited to ~107 bytes, pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="cr_ps_") as d:
        yield Path(d)


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, sockdir: Path, domain_id: int) -> Iterator[ServerProcess]:
    srv = ServerProcess(tiny_model_dir, sockdir / "good.sock", domain_id).start()
    yield srv
    srv.stop()


_stamp = [1_800_000_000.0]


def next_stamp() -> float:
    _stamp[0] += 0.25
    return _stamp[0]


def _planner(peer: TestPeer, domain_id: int, ns: str, **params: Any) -> PlannerRig:
    rig = PlannerRig(peer, ns, "planner_node", {"cam": False})
    rig.proc = NodeProcess(
        MODULE, domain_id, params=dict(COMMON_PARAMS, camera_topics=["cam"], backend="server", warmup=False,
                                       server_connect_timeout_s=2.0, **params),
        namespace=ns, env=NODE_ENV,
    ).start()  # fmt: skip
    return rig


def _finish(rig: PlannerRig) -> None:
    assert rig.proc is not None
    code = rig.proc.stop(timeout=20)
    out = rig.proc.output()
    assert code == 0, f"planner exit code {code}:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]


def test_server_killed_mid_run_is_counted_no_plans_then_reconnects(
    peer: TestPeer, domain_id: int, server: ServerProcess, tiny_model_dir: Path
) -> None:
    # The node's model_path need not exist on its host: only its name must match the served model's id.
    rig = _planner(peer, domain_id, "/srv_a", model_path=f"/not/on/this/host/{tiny_model_dir.name}",
                   server_address=f"unix://{server.sock}", server_call_timeout_s=60.0)  # fmt: skip
    try:
        rig.wait_ready()
        rig.set_goal("pick")
        s = next_stamp()
        rig.send("cam", image_msg(s))
        plan = rig.wait_plan_with_stamp(s)
        assert plan.backend == "server" and len(plan.trajectory.points) == 4

        server.kill()
        lost = []
        for _ in range(3):  # each frame fails fast (no server): a counted error, never a plan
            before = rig.count("server_error")
            lost.append(next_stamp())
            rig.send("cam", image_msg(lost[-1]))
            rig.wait_counter("server_error", before, timeout=PLAN_S)
        diag = rig.diag()
        assert diag["server_connected"] == "False" and int(diag["errors_total"]) >= 3, diag
        assert not set(lost) & set(rig.stamps_planned()), "a plan was published without a server result"

        server.start()
        fresh = _plan_when_back(rig)
        assert fresh not in lost
        assert wait_until(lambda: int(rig.diag().get("server_handshakes", "0")) >= 2, 10), rig.diag()
        assert rig.diag()["server_connected"] == "True"
        assert not set(lost) & set(rig.stamps_planned())
    finally:
        _finish(rig)


def _plan_when_back(rig: PlannerRig) -> float:
    """Send frames until one is planned (the reconnect); bounded by STARTUP_S. Returns its stamp."""
    deadline_tries = int(STARTUP_S / 2)
    for _ in range(deadline_tries):
        s = next_stamp()
        errors = rig.count("server_error")
        rig.send("cam", image_msg(s))
        wait_until(lambda s=s, e=errors: s in rig.stamps_planned() or rig.count("server_error") > e, PLAN_S)
        if s in rig.stamps_planned():
            return s
    raise AssertionError(f"the planner never reconnected: {rig.diag()}\n{rig.proc.output()[-3000:]}")


def test_configure_refuses_missing_server_other_model_and_other_version(
    peer: TestPeer, domain_id: int, server: ServerProcess, tiny_model_dir: Path, sockdir: Path
) -> None:
    old = ServerProcess(tiny_model_dir, sockdir / "old.sock", domain_id, code=OLD_SERVER).start()
    rig = _planner(peer, domain_id, "/srv_b", autostart=False, model_path=str(tiny_model_dir),
                   server_address=f"unix://{sockdir}/nobody.sock")  # fmt: skip
    try:
        cases = [
            ("server_address", f"unix://{sockdir}/nobody.sock", "did not answer within 2 s"),
            ("server_address", f"unix://{old.sock}", "protocol version 99 != ours 1"),
            ("model_path", "/models/another_model", "serves model_id"),
        ]
        for name, value, reason in cases:
            if name == "model_path":
                assert rig.set_param("server_address", f"unix://{server.sock}")[0]
            ok, why = rig.set_param(name, value)
            assert ok, why
            assert rig.change_state(Transition.TRANSITION_CONFIGURE) is False, f"{name}={value} was accepted"
            assert wait_until(lambda r=reason: r in rig.proc.output(), 10), rig.proc.output()[-3000:]
            assert rig.proc.alive(), rig.proc.output()[-3000:]
        assert "package version 0.99.0" in rig.proc.output()
        # Prefix conditioning needs a server whose backend applies it; this one runs diffusers.
        assert rig.set_param("model_path", str(tiny_model_dir))[0]
        assert rig.set_param("prefix_conditioning", True)[0]
        assert rig.change_state(Transition.TRANSITION_CONFIGURE) is False
        reason = "prefix_conditioning needs a policy server running backend one of ('fast', 'tensorrt')"
        assert wait_until(lambda: reason in rig.proc.output(), 10), rig.proc.output()[-3000:]
        assert rig.set_param("prefix_conditioning", False)[0]
        # Unconfigured, not broken: the right server configures and activates the same process.
        assert rig.set_param("model_path", str(tiny_model_dir))[0]
        assert rig.change_state(Transition.TRANSITION_CONFIGURE)
        assert rig.change_state(Transition.TRANSITION_ACTIVATE)
        rig.set_goal("place")
        s = next_stamp()
        rig.send("cam", image_msg(s))
        assert time_to_sec(rig.wait_plan_with_stamp(s).header.stamp) == s
    finally:
        _finish(rig)
        old.stop()


def test_planner_with_server_backend_imports_no_model_stack(tmp_path: Path) -> None:
    """The node module plus a server-backend configure attempt load no torch/diffusers/transformers."""
    code = (
        "import sys\n"
        "import cosmos_ros.nodes.planner_node\n"
        "from cosmos_ros.policy_server.errors import ServerUnavailableError\n"
        "from cosmos_ros.runtime.policy import PolicyRuntime\n"
        "try:\n"
        "    PolicyRuntime.from_config('tiny', backend='server', options={'chunk_size': 16},\n"
        f"        backend_options={{'address': 'unix://{tmp_path}/none.sock', 'connect_timeout_s': 0.2}})\n"
        "except ServerUnavailableError:\n"
        "    pass\n"
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=tempfile.gettempdir())
