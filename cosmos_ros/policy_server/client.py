"""The ``server`` backend: a ``PolicyBackend`` whose model runs in a policy server process.

Imports NumPy, protobuf, gRPC and the package's pure core only (no torch, no diffusers), and is valid Python
3.10: this is all the planner node needs on Humble / JetPack 6.

Connection life cycle:
- ``connect`` (the planner's configure): wait for the channel up to ``connect_timeout_s``, then the handshake
  (``GetInfo``), checked by ``wire.compatibility_problems``. Unreachable -> ``ServerUnavailableError``;
  another model/profile/version -> ``IncompatibleServerError``; either fails configure with the reason.
- ``run``: one ``Plan`` call with a deadline. A failed call raises ``ServerUnavailableError`` (the node counts
  it; no plan is made) and marks the server unverified; the next ``run`` redoes the handshake first, so a
  restarted server, or one now serving something else, is checked before any of its results is used. gRPC
  reconnects the channel by itself (backoff capped at ``reconnect_backoff_max_s``).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import grpc

from cosmos_ros.policy_server import wire
from cosmos_ros.policy_server.errors import IncompatibleServerError, ServerUnavailableError
from cosmos_ros.policy_server.shm import FrameSlot
from cosmos_ros.runtime.backend import PolicyRequest, RawPolicyOutput

# Status codes that mean "the server, not this request": the call may succeed against a (restarted) server.
_UNAVAILABLE_CODES = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.FAILED_PRECONDITION,  # the server restarted since our handshake
    grpc.StatusCode.UNKNOWN,
)


@dataclass(frozen=True)
class ClientConfig:
    """How to reach the server.

    Attributes:
        address: ``unix:///path.sock`` (same host; frames through shared memory) or ``host:port``.
        connect_timeout_s: Longest wait for the server at connect and for each re-handshake (s, > 0).
        call_timeout_s: Deadline of one plan call (s, > 0): above the slowest inference, queueing included.
        shared_memory: Hand frames over in shared memory when the address is ``unix:`` and the server accepts.
        reconnect_backoff_max_s: Cap of gRPC's reconnect backoff (s, > 0): how soon a restarted server is
            seen.
        client_name: Shown in the server's log (e.g. the node's name).
    """

    address: str
    connect_timeout_s: float = 5.0
    call_timeout_s: float = 30.0
    shared_memory: bool = True
    reconnect_backoff_max_s: float = 1.0
    client_name: str = ""

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("address must be unix:///path or host:port, got ''")
        for name in ("connect_timeout_s", "call_timeout_s", "reconnect_backoff_max_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")

    @property
    def is_local_socket(self) -> bool:
        return self.address.startswith("unix:")


class RemotePolicyBackend:
    """``PolicyBackend`` over gRPC. Construct (no I/O), then :meth:`connect`; :meth:`close` when done.

    ``run`` is called from one worker thread at a time (the planner's inference worker); ``stats`` may be
    read from any thread.
    """

    name = "server"

    def __init__(self, config: ClientConfig, expected: wire.ServedModel) -> None:
        self.config = config
        self.expected = expected
        self.info: Any = None  # the last verified ServerInfo
        self._channel: grpc.Channel | None = None
        self._slot = FrameSlot()
        self._verified = False
        self._lock = threading.Lock()
        self._stats = {"handshakes": 0, "calls_ok": 0, "calls_failed": 0}
        self._last_error = ""

    # ---- connection ------------------------------------------------------------------------------------
    def _ensure_channel(self) -> grpc.Channel:
        if self._channel is None:
            backoff_ms = int(self.config.reconnect_backoff_max_s * 1000)
            self._channel = grpc.insecure_channel(
                self.config.address,
                options=[
                    ("grpc.max_receive_message_length", wire.MAX_MESSAGE_BYTES),
                    ("grpc.max_send_message_length", wire.MAX_MESSAGE_BYTES),
                    ("grpc.initial_reconnect_backoff_ms", min(100, backoff_ms)),
                    ("grpc.min_reconnect_backoff_ms", min(100, backoff_ms)),
                    ("grpc.max_reconnect_backoff_ms", backoff_ms),
                ],
            )
            ch = self._channel
            self._get_info = ch.unary_unary(
                wire.INFO_METHOD,
                request_serializer=wire.InfoRequest.SerializeToString,
                response_deserializer=wire.ServerInfoMsg.FromString,
            )
            self._plan = ch.unary_unary(
                wire.PLAN_METHOD,
                request_serializer=wire.PlanRequestMsg.SerializeToString,
                response_deserializer=wire.PlanReplyMsg.FromString,
            )
        return self._channel

    def connect(self) -> Any:
        """Reach the server and check it (configure time). Returns its ``ServerInfo``.

        Raises:
            ServerUnavailableError: No answer within ``connect_timeout_s``.
            IncompatibleServerError: Another model, profile, protocol or package version (all reasons listed).
        """
        return self._handshake(wait_for_ready=True)

    def _handshake(self, wait_for_ready: bool) -> Any:
        self._ensure_channel()
        req = wire.InfoRequest(
            protocol_version=wire.PROTOCOL_VERSION,
            package_version=wire.PACKAGE_VERSION,
            client_name=self.config.client_name,
        )
        try:
            info = self._get_info(req, timeout=self.config.connect_timeout_s, wait_for_ready=wait_for_ready)
        except grpc.RpcError as exc:
            raise ServerUnavailableError(
                f"policy server at {self.config.address} did not answer within "
                f"{self.config.connect_timeout_s:g} s ({_code(exc)}: {_details(exc)})"
            ) from exc
        problems = wire.compatibility_problems(info, self.expected)
        with self._lock:
            self._stats["handshakes"] += 1
        if problems:
            raise IncompatibleServerError(
                f"policy server at {self.config.address} is not the one configured: {'; '.join(problems)}"
            )
        self.info, self._verified = info, True
        return info

    # ---- PolicyBackend ----------------------------------------------------------------------------------
    def run(self, request: PolicyRequest) -> RawPolicyOutput:
        """One plan call.

        Raises:
            ServerUnavailableError, IncompatibleServerError: The server (lost, restarted, changed).
            ValueError: The server refused the request. RuntimeError: The server's model failed.
        """
        t0 = time.perf_counter()
        if not self._verified:
            self._handshake(wait_for_ready=False)
        shm_name = ""
        if self.config.shared_memory and self.config.is_local_socket and self.info.shared_memory:
            shm_name = self._slot.put(request.image)
        msg = wire.request_to_msg(request, self.info.instance_id, shm_name)
        t1 = time.perf_counter()
        try:
            reply = self._plan(msg, timeout=self.config.call_timeout_s, wait_for_ready=False)
        except grpc.RpcError as exc:
            self._failed(exc)
            code = exc.code()
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise ValueError(f"policy server refused the request: {_details(exc)}") from exc
            if code in _UNAVAILABLE_CODES:
                raise ServerUnavailableError(
                    f"policy server at {self.config.address}: {_code(exc)}: {_details(exc)}"
                ) from exc
            raise RuntimeError(f"policy server failed the call: {_code(exc)}: {_details(exc)}") from exc
        t2 = time.perf_counter()
        out = wire.msg_to_output(reply)
        t3 = time.perf_counter()
        with self._lock:
            self._stats["calls_ok"] += 1
        out.timings.update(
            {"client_encode": t1 - t0, "rpc": t2 - t1, "client_decode": t3 - t2, "total": t3 - t0}
        )
        return out

    def _failed(self, exc: grpc.RpcError) -> None:
        code = _code(exc)
        if exc.code() in _UNAVAILABLE_CODES:
            self._verified = False  # check the server again before trusting another answer
        with self._lock:
            self._stats["calls_failed"] += 1
            self._last_error = f"{code}: {_details(exc)}"

    def stats(self) -> dict[str, Any]:
        """Counters for diagnostics: handshakes (1 + reconnects), calls ok/failed, last error, connected."""
        with self._lock:
            out: dict[str, Any] = dict(self._stats)
            out["last_error"] = self._last_error
        out["connected"] = self._verified
        return out

    def close(self) -> None:
        """Close the channel and remove the shared-memory segment (idempotent)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._slot.close()
        self._verified = False


def _code(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    return code.name if code is not None else type(exc).__name__


def _details(exc: grpc.RpcError) -> str:
    return str(exc.details()) if hasattr(exc, "details") else str(exc)


def make_server_backend(
    model_path: str,
    action_space: str,
    domain_name: str,
    raw_width: int,
    chunk_size: int,
    address: str,
    **config: Any,
) -> RemotePolicyBackend:
    """Factory of the ``server`` entry of ``BACKENDS``: build the client and connect (handshake) now.

    Args:
        model_path: The planner's ``model_path``; the server must serve a model of the same name
            (``wire.model_id_from_path``: the last path component).
        action_space, domain_name, raw_width, chunk_size: What the server must serve.
        address: The server's address; ``config``: the other ``ClientConfig`` fields.

    Raises:
        ValueError: Bad client settings. ServerUnavailableError, IncompatibleServerError: see ``connect``.
    """
    model_id = wire.model_id_from_path(model_path)
    expected = wire.ServedModel(model_id, action_space, domain_name, raw_width, chunk_size)
    backend = RemotePolicyBackend(ClientConfig(address=address, **config), expected)
    try:
        backend.connect()
    except Exception:
        backend.close()
        raise
    return backend
