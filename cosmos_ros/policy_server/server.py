"""The policy server: one loaded ``PolicyBackend`` answering ``PlanRequest``s over gRPC.

Why a separate process: the model stack (torch, diffusers, TensorRT) needs Python >= 3.11 and NumPy 2, while
the planner node on Humble / JetPack 6 runs Python 3.10 with apt's NumPy 1.x message modules. The server
keeps the model; the node keeps everything ROS (see docs/policy_server.md).

Calls are served one at a time (one lock around the model): a backend is not thread-safe (CUDA graphs,
cached buffers), and with several clients the GPU is the bottleneck anyway; the lock makes the queueing
explicit and fair (gRPC's thread pool queues the waiting calls).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from typing import Any

import grpc
import numpy as np

from cosmos_ros.policy_server import wire
from cosmos_ros.policy_server.shm import SegmentCache
from cosmos_ros.runtime.backend import PolicyBackend

LOG = logging.getLogger("cosmos_ros.policy_server")


class PolicyService:
    """The service's two methods over one backend. Construct, then :func:`start_server`.

    Args:
        backend: The loaded backend (``PolicyRuntime.from_config(...).backend``).
        served: What it serves (sent to clients, checked against every request).
        backend_name, device, dtype: For ``ServerInfo`` (clients log them).
        shared_memory: Accept frames by shared-memory name (only when listening on a ``unix:`` socket).
    """

    def __init__(
        self,
        backend: PolicyBackend,
        served: wire.ServedModel,
        backend_name: str = "",
        device: str = "",
        dtype: str = "",
        shared_memory: bool = False,
    ) -> None:
        self.backend = backend
        self.served = served
        self.instance_id = secrets.token_hex(8)
        self._info = wire.ServerInfoMsg(
            protocol_version=wire.PROTOCOL_VERSION,
            package_version=wire.PACKAGE_VERSION,
            model_id=served.model_id,
            backend=backend_name or getattr(backend, "name", "custom"),
            device=device,
            dtype=dtype,
            action_space=served.action_space,
            domain_name=served.domain_name,
            raw_width=served.raw_width,
            chunk_size=served.chunk_size,
            instance_id=self.instance_id,
            shared_memory=shared_memory,
        )
        self._lock = threading.Lock()
        self._segments = SegmentCache() if shared_memory else None
        self.calls = 0

    def get_info(self, request: Any, context: Any) -> Any:
        LOG.info(
            "handshake from %s (%s): protocol %s, package %s",
            request.client_name or "?",
            context.peer() if context is not None else "-",
            request.protocol_version,
            request.package_version,
        )
        return self._info

    def plan(self, request: Any, context: Any) -> Any:
        if request.instance_id != self.instance_id:
            # A client verified another server instance (this one restarted): it must check us first.
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "unknown server instance: call GetInfo first")
        t_wait = time.perf_counter()
        with self._lock:
            t0 = time.perf_counter()
            try:
                policy_request = self._request(request)
                tb = time.perf_counter()
                out = self.backend.run(policy_request)
                t_backend = time.perf_counter() - tb
                del policy_request  # drop the shared-memory view before the client may reuse the segment
                reply = wire.output_to_msg(out, self.instance_id)
            except ValueError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except Exception as exc:  # the model failed: report it, keep serving
                LOG.exception("backend failed")
                context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
            self.calls += 1
            t1 = time.perf_counter()
        # queue: waiting for the model lock (other clients); backend: the model call; handler: all of it but
        # the queue (request decode + backend + reply encode). The client adds the transport around it.
        reply.timing_names.extend(["queue", "backend", "handler"])
        reply.timing_values.extend([t0 - t_wait, t_backend, t1 - t0])
        return reply

    def _request(self, msg: Any) -> Any:
        """The ``PolicyRequest`` of ``msg``, refused (ValueError) if this server does not serve it."""
        if msg.domain_name != self.served.domain_name or msg.chunk_size != self.served.chunk_size:
            raise ValueError(
                f"this server serves domain {self.served.domain_name!r} with chunk_size "
                f"{self.served.chunk_size}, got {msg.domain_name!r} / {msg.chunk_size}"
            )
        image: np.ndarray | None = None
        if msg.shm_name:
            if self._segments is None:
                raise ValueError("this server does not accept shared-memory frames (not on a unix socket)")
            image = self._segments.view(msg.shm_name, msg.height, msg.width)
        return wire.msg_to_request(msg, image)

    def close(self) -> None:
        if self._segments is not None:
            with self._lock:
                self._segments.close()


def start_server(
    service: PolicyService, addresses: Sequence[str], max_workers: int = 8
) -> tuple[grpc.Server, list[int]]:
    """Serve ``service`` on ``addresses`` (``unix:///path``, ``host:port``; port 0 picks a free one).

    Returns:
        The started server and the bound port of each address (0 for ``unix:`` addresses).

    Raises:
        RuntimeError: An address cannot be bound (in use, bad path).
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="policy_rpc"),
        options=[
            ("grpc.max_receive_message_length", wire.MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", wire.MAX_MESSAGE_BYTES),
        ],
    )
    handlers = {
        "GetInfo": grpc.unary_unary_rpc_method_handler(
            service.get_info,
            request_deserializer=wire.InfoRequest.FromString,
            response_serializer=wire.ServerInfoMsg.SerializeToString,
        ),
        "Plan": grpc.unary_unary_rpc_method_handler(
            service.plan,
            request_deserializer=wire.PlanRequestMsg.FromString,
            response_serializer=wire.PlanReplyMsg.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(wire.SERVICE, handlers),))
    ports = []
    for address in addresses:
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise RuntimeError(f"cannot listen on {address!r}: {exc}") from exc
        if port == 0 and not address.startswith("unix:"):
            raise RuntimeError(f"cannot listen on {address!r} (in use?)")
        ports.append(0 if address.startswith("unix:") else port)
    server.start()
    return server, ports
