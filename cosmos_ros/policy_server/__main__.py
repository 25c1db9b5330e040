"""``python -m cosmos_ros.policy_server``: load a model with the runtime and serve it (docs/policy_server.md).

Examples:
    python -m cosmos_ros.policy_server --model-path /models/cosmos3-nano --backend fast --device cuda \\
        --dtype bfloat16 --action-space umi_pose_gripper --chunk-size 16 \\
        --listen unix:///run/cosmos_ros/policy.sock --listen 0.0.0.0:50051

Exit codes: 0 after SIGINT/SIGTERM, 1 when the model cannot be loaded or an address cannot be bound.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import stat
import sys
import threading

import numpy as np

from cosmos_ros.policy_server.server import LOG, PolicyService, start_server
from cosmos_ros.policy_server.wire import ServedModel, model_id_from_path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cosmos_ros.policy_server", description=__doc__.split("\n")[0])
    p.add_argument("--model-path", required=True, help="Local Cosmos 3 pipeline directory")
    p.add_argument("--model-id", default="", help="Name clients must expect (default: the directory's name)")
    p.add_argument("--backend", default="fast", help="Runtime backend: diffusers, fast or tensorrt")
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="Backend factory keyword (e.g. precision=fp8); repeatable")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")
    p.add_argument(
        "--action-space", default="umi_pose_gripper", help="Action-space profile name or YAML path"
    )
    p.add_argument("--chunk-size", type=int, default=16, help="Actions per plan served (multiple of 4)")
    listen_help = "unix:///path.sock (same host, frames in shared memory) or host:port; repeatable"
    p.add_argument("--listen", action="append", default=[], metavar="ADDRESS", help=listen_help)
    p.add_argument("--max-workers", type=int, default=8, help="gRPC threads (calls queue for the model)")
    p.add_argument("--no-warmup", action="store_true", help="Skip the warm-up call on a grey frame")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if not args.listen:
        p.error("give at least one --listen address")
    if args.chunk_size < 4 or args.chunk_size % 4:
        p.error(f"--chunk-size must be a positive multiple of 4, got {args.chunk_size}")
    return args


def _backend_options(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--backend-option must be KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def load_service(args: argparse.Namespace) -> PolicyService:
    """Load the model (``PolicyRuntime.from_config``), wrap its backend. Raises with the loader's message."""
    from cosmos_ros.runtime.options import PolicyOptions
    from cosmos_ros.runtime.policy import PolicyRuntime

    runtime = PolicyRuntime.from_config(
        args.model_path,
        device=args.device,
        dtype=args.dtype,
        profile=args.action_space,
        backend=args.backend,
        options=PolicyOptions(chunk_size=args.chunk_size),
        backend_options=_backend_options(args.backend_option),
    )
    prof = runtime.profile
    served = ServedModel(
        model_id=args.model_id or model_id_from_path(args.model_path),
        action_space=prof.name,
        domain_name=prof.domain_name,
        raw_width=prof.raw_width,
        chunk_size=args.chunk_size,
    )
    if not args.no_warmup:
        # First-call costs (compile, graph capture) are paid here, not by the first robot's first plan.
        runtime.plan(np.full((480, 640, 3), 128, dtype=np.uint8), "warm-up")
    shm = any(a.startswith("unix:") for a in args.listen)
    return PolicyService(runtime.backend, served, args.backend, args.device, args.dtype, shared_memory=shm)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="[policy_server] %(levelname)s %(message)s")
    try:
        service = load_service(args)
    except Exception as exc:  # loader, profile, backend import: one line with the reason, exit 1
        LOG.error("cannot load the policy from %r: %s: %s", args.model_path, type(exc).__name__, exc)
        return 1
    for a in args.listen:  # a stale socket file of a killed server would make the bind fail
        path = a[len("unix://") :] if a.startswith("unix://") else ""
        if path and os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    try:
        server, ports = start_server(service, args.listen, args.max_workers)
    except RuntimeError as exc:
        LOG.error("%s", exc)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    where = [a if p == 0 else f"{a.rsplit(':', 1)[0]}:{p}" for a, p in zip(args.listen, ports, strict=True)]
    # Tests and scripts wait for this line: the server is bound and answers from here on.
    LOG.info("serving %s on %s (instance %s)", service.served, ", ".join(where), service.instance_id)
    while not stop.wait(timeout=0.5):  # wakes to let the signal handler's flag end the loop
        pass
    server.stop(grace=2.0).wait(timeout=5.0)
    service.close()
    LOG.info("stopped after %d calls", service.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
