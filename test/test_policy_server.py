"""The policy server's contract without ROS: messages, handshake checks, shared memory, loss and reconnect.

The server runs in this process with a stand-in backend whose output is a function of the pixels and the
seed it received, so a test sees exactly what crossed the wire. Every wait has a timeout (gRPC deadlines).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from cosmos_ros.policy_server import wire
from cosmos_ros.policy_server.client import ClientConfig, RemotePolicyBackend, make_server_backend
from cosmos_ros.policy_server.errors import IncompatibleServerError, ServerUnavailableError
from cosmos_ros.policy_server.server import PolicyService, start_server
from cosmos_ros.policy_server.shm import SHM_DIR, SegmentCache
from cosmos_ros.runtime.backend import ActionPrefix, PolicyRequest, RawPolicyOutput

SERVED = wire.ServedModel("tiny_a", "umi_pose_gripper", "umi", 10, 16)
READY_S = 10.0
# Column offsets: rows differ per request, columns differ so decoded 6D rotations are not degenerate.
COLS = np.array([0.0, 1.0, 2.0, 3.0, 0.5, -2.0, 1.5, 7.0, -3.0, 4.0])


class EchoBackend:
    """Entry [k, j] of the actions is (mean pixel + seed + k + COLS[j]); records what it saw."""

    name = "echo"

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[int, ...], bool]] = []

    def run(self, r: PolicyRequest) -> RawPolicyOutput:
        if r.prompt == "explode":
            raise RuntimeError("model exploded")
        self.seen.append((r.image.shape, r.prefix is not None))
        rows = float(r.image.astype(np.float64).mean()) + r.seed + np.arange(r.chunk_size, dtype=np.float64)
        actions = (rows[:, None] + COLS[None, :]).astype(np.float32)
        return RawPolicyOutput(actions=actions, timings={"total": 0.0})


def _request(seed: int = 3, h: int = 48, w: int = 64, **kw: object) -> PolicyRequest:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return PolicyRequest(image=img, prompt=str(kw.pop("prompt", "pick")), domain_name="umi", chunk_size=16,
                         seed=seed, **kw)  # type: ignore[arg-type]  # fmt: skip


def _expected(req: PolicyRequest) -> np.ndarray:
    rows = float(req.image.astype(np.float64).mean()) + req.seed + np.arange(16, dtype=np.float64)
    return (rows[:, None] + COLS[None, :]).astype(np.float32)


class Server:
    """An in-process server on a unix socket (and TCP on a free port) that can be stopped and restarted."""

    def __init__(self, sock: Path, served: wire.ServedModel = SERVED) -> None:
        self.sock, self.served = sock, served
        self.backend = EchoBackend()
        self.server: grpc.Server | None = None
        self.service: PolicyService | None = None
        self.tcp_port = 0

    def start(self, served: wire.ServedModel | None = None, tcp: bool = True) -> Server:
        self.service = PolicyService(self.backend, served or self.served, "echo", shared_memory=True)
        addrs = [f"unix://{self.sock}"] + ([f"127.0.0.1:{self.tcp_port}"] if tcp else [])
        self.server, ports = start_server(self.service, addrs, max_workers=4)
        if tcp:
            self.tcp_port = ports[1]
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=None).wait(timeout=5)
            self.server = None
        if self.service is not None:
            self.service.close()

    @property
    def unix(self) -> str:
        return f"unix://{self.sock}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "policy.sock").start()
    yield srv
    srv.stop()


def _client(address: str, served: wire.ServedModel = SERVED, **kw: object) -> RemotePolicyBackend:
    return RemotePolicyBackend(ClientConfig(address, connect_timeout_s=READY_S, call_timeout_s=READY_S, **kw),
                               served)  # type: ignore[arg-type]  # fmt: skip


# ---- messages ----------------------------------------------------------------------------------------------
def test_request_round_trip_keeps_every_field_and_the_prefix() -> None:
    prefix = ActionPrefix(
        actions=np.arange(16 * 10, dtype=np.float32).reshape(16, 10) / 100,
        weights=np.linspace(1, 0, 16, dtype=np.float32),
        frozen_steps=3,
    )
    req = _request(resolution_tier=480, view_point="wrist_view", fps=7.5, num_inference_steps=4,
                   guidance_scale=2.0, decode_video=True, prefix=prefix)  # fmt: skip
    msg = wire.PlanRequestMsg.FromString(wire.request_to_msg(req, "abc").SerializeToString())
    back = wire.msg_to_request(msg)
    assert np.array_equal(back.image, req.image)
    assert back.image.flags.writeable  # backends pass it to torch.from_numpy
    for name in ("prompt", "domain_name", "chunk_size", "resolution_tier", "view_point", "fps",
                 "num_inference_steps", "guidance_scale", "seed", "decode_video"):  # fmt: skip
        assert getattr(back, name) == getattr(req, name), name
    assert back.prefix is not None
    assert np.array_equal(back.prefix.actions, prefix.actions)
    assert np.array_equal(back.prefix.weights, prefix.weights)
    assert back.prefix.frozen_steps == 3
    assert back.prefix.actions.flags.writeable and back.prefix.weights.flags.writeable


def test_truncated_image_bytes_are_refused_with_the_sizes() -> None:
    msg = wire.request_to_msg(_request(), "abc")
    msg.image = msg.image[:-1]
    with pytest.raises(ValueError, match="bytes"):
        wire.msg_to_request(msg)


def test_output_round_trip_with_video_and_timings() -> None:
    out = RawPolicyOutput(
        actions=np.ones((16, 10), np.float32),
        video=np.zeros((5, 4, 6, 3), np.uint8),
        timings={"denoise": 0.5},
    )
    back = wire.msg_to_output(wire.PlanReplyMsg.FromString(wire.output_to_msg(out, "x").SerializeToString()))
    assert np.array_equal(back.actions, out.actions) and back.actions.flags.writeable
    assert back.video is not None and back.video.shape == (5, 4, 6, 3)
    assert back.timings == {"server_denoise": 0.5}


def test_compatibility_lists_every_mismatch() -> None:
    info = wire.ServerInfoMsg(protocol_version=wire.PROTOCOL_VERSION, package_version=wire.PACKAGE_VERSION,
                              model_id="tiny_a", action_space="umi_pose_gripper", domain_name="umi",
                              raw_width=10, chunk_size=16)  # fmt: skip
    assert wire.compatibility_problems(info, SERVED) == []
    info.protocol_version, info.package_version = 99, "9.9.0"
    info.model_id, info.chunk_size, info.raw_width = "tiny_b", 32, 7
    problems = " | ".join(wire.compatibility_problems(info, SERVED))
    for word in ("protocol version 99", "package version 9.9.0", "'tiny_b'", "chunk_size 32", "raw_width 7"):
        assert word in problems


def test_model_id_is_the_last_path_component() -> None:
    assert wire.model_id_from_path("/srv/models/cosmos3-nano/") == "cosmos3-nano"
    with pytest.raises(ValueError):
        wire.model_id_from_path("/")


@pytest.mark.parametrize("field,value", [("address", ""), ("call_timeout_s", 0.0), ("connect_timeout_s", -1)])
def test_client_config_names_the_bad_field(field: str, value: object) -> None:
    kw: dict[str, object] = {"address": "unix:///x.sock", field: value}
    with pytest.raises(ValueError, match=field):
        ClientConfig(**kw)  # type: ignore[arg-type]


# ---- over the wire -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["unix+shm", "unix inline", "tcp"])
def test_plan_over_each_transport_returns_what_the_backend_computed(server: Server, transport: str) -> None:
    address = server.unix if transport.startswith("unix") else f"127.0.0.1:{server.tcp_port}"
    client = _client(address, shared_memory=transport == "unix+shm")
    try:
        info = client.connect()
        assert info.shared_memory and info.model_id == "tiny_a"
        for seed, (h, w) in enumerate([(48, 64), (480, 640), (48, 64)]):  # the shm slot grows, then is reused
            req = _request(seed=seed, h=h, w=w)
            out = client.run(req)
            assert np.allclose(out.actions, _expected(req), atol=1e-3)
            assert {"rpc", "total", "server_handler"} <= set(out.timings)
        assert client.stats()["calls_ok"] == 3 and client.stats()["handshakes"] == 1
    finally:
        client.close()
    assert not any(n.startswith("cosmos_ros_frame_") for n in _own_segments(client))


def _own_segments(client: RemotePolicyBackend) -> list[str]:
    return (
        [client._slot.name] if client._slot.name and os.path.exists(f"{SHM_DIR}/{client._slot.name}") else []
    )


def test_unreachable_server_fails_connect_within_the_timeout(tmp_path: Path) -> None:
    client = RemotePolicyBackend(ClientConfig(f"unix://{tmp_path}/none.sock", connect_timeout_s=0.5), SERVED)
    with pytest.raises(ServerUnavailableError, match=r"did not answer within 0\.5 s"):
        client.connect()
    client.close()


def test_other_model_is_refused_at_connect(server: Server) -> None:
    other = wire.ServedModel("tiny_b", "umi_pose_gripper", "umi", 10, 16)
    with pytest.raises(IncompatibleServerError, match="model_id 'tiny_a', expected 'tiny_b'"):
        make_server_backend("/robot/models/tiny_b", "umi_pose_gripper", "umi", 10, 16, server.unix,
                            connect_timeout_s=READY_S)  # fmt: skip
    del other


def test_version_mismatch_is_refused_at_connect(server: Server) -> None:
    assert server.service is not None
    server.service._info.protocol_version = wire.PROTOCOL_VERSION + 1
    server.service._info.package_version = "0.99.0"
    client = _client(server.unix)
    with pytest.raises(IncompatibleServerError, match="protocol version") as err:
        client.connect()
    assert "package version 0.99.0" in str(err.value)
    client.close()


def test_request_the_server_does_not_serve_is_a_value_error(server: Server) -> None:
    client = _client(server.unix)
    client.connect()
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="serves domain 'umi' with chunk_size 16"):
        client.run(PolicyRequest(image=img, prompt="x", domain_name="umi", chunk_size=8))
    with pytest.raises(RuntimeError, match="model exploded"):
        client.run(_request(prompt="explode"))
    assert client.stats()["connected"], "a refused request or a model error is not a lost server"
    client.close()


def test_server_lost_mid_run_then_back_reconnects_after_a_fresh_handshake(server: Server) -> None:
    client = _client(server.unix, reconnect_backoff_max_s=0.2)
    client.connect()
    req = _request()
    client.run(req)
    server.stop()
    with pytest.raises(ServerUnavailableError):
        client.run(req)
    with pytest.raises(ServerUnavailableError):  # still down: the re-handshake fails, no call is made
        client.run(req)
    assert client.stats()["connected"] is False and client.stats()["calls_failed"] == 1
    server.start(tcp=False)
    out = _run_when_back(client, req)
    assert np.allclose(out.actions, _expected(req), atol=1e-3)
    assert client.stats()["handshakes"] >= 2 and client.stats()["connected"]
    client.close()


def _run_when_back(client: RemotePolicyBackend, req: PolicyRequest) -> RawPolicyOutput:
    """Retry until the channel reconnected (bounded: gRPC's backoff is capped at 0.2 s here)."""
    last: Exception | None = None
    for _ in range(100):
        try:
            return client.run(req)
        except ServerUnavailableError as exc:
            last = exc
            grpc.channel_ready_future(client._channel).result(timeout=READY_S)  # type: ignore[arg-type]
    raise AssertionError(f"no reconnect: {last}")


def test_restart_between_calls_is_detected_by_the_instance_id(server: Server) -> None:
    client = _client(server.unix, reconnect_backoff_max_s=0.2)
    client.connect()
    req = _request()
    client.run(req)
    server.stop()
    server.start(tcp=False)
    grpc.channel_ready_future(client._channel).result(timeout=READY_S)  # type: ignore[arg-type]
    # The client still trusts the old instance; the new one refuses that call instead of answering it.
    with pytest.raises(ServerUnavailableError):
        client.run(req)
    assert np.allclose(_run_when_back(client, req).actions, _expected(req), atol=1e-3)
    client.close()


def test_restarted_server_with_another_model_is_refused_mid_run(server: Server) -> None:
    client = _client(server.unix, reconnect_backoff_max_s=0.2)
    client.connect()
    client.run(_request())
    server.stop()
    server.start(served=wire.ServedModel("tiny_b", "umi_pose_gripper", "umi", 10, 16), tcp=False)
    calls_before = len(server.backend.seen)
    for _ in range(100):  # until the channel is back: then every attempt is an IncompatibleServerError
        try:
            client.run(_request())
        except IncompatibleServerError:
            break
        except ServerUnavailableError:
            grpc.channel_ready_future(client._channel).result(timeout=READY_S)  # type: ignore[arg-type]
    else:
        raise AssertionError("the other model was never refused")
    assert len(server.backend.seen) == calls_before, "the other model must not have been asked"
    client.close()


def test_server_refuses_foreign_shared_memory_names() -> None:
    cache = SegmentCache()
    with pytest.raises(ValueError, match="not one of this package's frame segments"):
        cache.view("../etc/passwd", 2, 2)
    with pytest.raises(ValueError, match="does not exist"):
        cache.view("cosmos_ros_frame_0123456789abcdef", 2, 2)


def test_client_module_imports_no_torch_or_diffusers() -> None:
    code = (
        "import sys, cosmos_ros.policy_server.client, cosmos_ros.runtime.policy;"
        "bad = [m for m in ('torch', 'diffusers', 'transformers', 'rclpy') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


PY310 = Path.home() / ".pyenv/versions/3.10.13/bin/python"


@pytest.mark.skipif(not PY310.exists(), reason="CPython 3.10 (pyenv 3.10.13) is not installed here")
def test_client_side_modules_compile_on_python_3_10() -> None:
    """Syntax only (3.10 has no grpc/numpy here); the import test on 3.10 is the packaging test's."""
    import cosmos_ros

    root = Path(cosmos_ros.__file__).parent
    files = [
        root / "policy_server" / f for f in ("__init__.py", "errors.py", "wire.py", "shm.py", "client.py")
    ]
    code = "import ast, sys\nfor f in sys.argv[1:]: ast.parse(open(f).read(), f, feature_version=(3, 10))"
    subprocess.run([str(PY310), "-c", code, *map(str, files)], check=True, timeout=60)


def test_runtime_with_server_backend_decodes_the_servers_actions(server: Server) -> None:
    """``backend="server"`` through the registry: nothing is loaded here, the profile decodes the reply."""
    from cosmos_ros.runtime.policy import PolicyRuntime

    rt = PolicyRuntime.from_config(
        "/robot/models/tiny_a",
        profile="umi_pose_gripper",
        backend="server",
        options={"chunk_size": 16, "num_inference_steps": 2},
        backend_options={"address": server.unix, "connect_timeout_s": READY_S},
    )
    try:
        image = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        res = rt.plan(image, "pick", seed=5)
        req = PolicyRequest(image=image, prompt="pick", domain_name="umi", chunk_size=16, seed=5)
        assert np.allclose(res.raw_actions, _expected(req), atol=1e-3)
        assert res.backend == "server" and res.values.shape == (16, 8)
        assert {"plan_total", "decode_actions", "rpc", "server_backend"} <= set(res.timings)
    finally:
        rt.backend.close()


def test_runtime_with_server_backend_fails_fast_when_unreachable(tmp_path: Path) -> None:
    from cosmos_ros.runtime.policy import PolicyRuntime

    with pytest.raises(ServerUnavailableError, match=r"none\.sock"):
        PolicyRuntime.from_config(
            "tiny_a",
            backend="server",
            options={"chunk_size": 16},
            backend_options={"address": f"unix://{tmp_path}/none.sock", "connect_timeout_s": 0.3},
        )


def test_prefix_reaches_the_servers_backend(server: Server) -> None:
    client = _client(server.unix)
    client.connect()
    prefix = ActionPrefix(np.zeros((16, 10), np.float32), np.ones(16, np.float32), frozen_steps=2)
    client.run(_request(prefix=prefix))
    client.run(_request())
    assert [p for _, p in server.backend.seen] == [True, False]
    client.close()
