"""Benchmark: latency the policy server adds per plan, against the in-process runtime, same model and frame.

What it measures, per plan, on one 640x480 RGB frame (``--height/--width``):
  wall       ``PolicyRuntime.plan`` as the planner calls it (client side for the server paths)
  backend    the model call alone (``backend.run``; in the server: ``server_backend``)
  overhead   wall - backend: everything around the model (request building, action decoding and, for the
             server paths, shared memory or serialisation, gRPC, the socket and the server's handler)
"Added latency" of a server path is its overhead minus the in-process overhead, per plan (medians). It does
not depend on the model's speed, which on a shared CPU varies far more than the transport.

Paths: in-process; server over ``unix:`` with the frame in shared memory; ``unix:`` with the frame inline;
TCP on loopback; with ``--netns``, TCP over a veth pair between two network namespaces (made here, removed
afterwards; needs root), optionally rate-limited with a token bucket (``--netns-rate 1gbit``) to include a
link's transfer time. Then two clients (threads, each with its own connection and shared-memory segment,
as two planners would have) share one server: per-plan latency and total throughput against one client.

Usage: ``bench_policy_server [--model-path DIR | (a tiny model is generated)] [--backend fast] [--plans 20]
[--steps 2] [--netns] [--netns-rate 1gbit] [--out FILE]``. Nothing here measures planning quality.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

GOAL = "pick up the red block"
NS_SRV, NS_CLI, VETH = "crps_srv", "crps_cli", "crps_v"
NS_SRV_IP, NS_CLI_IP, NS_PORT = "10.231.0.1", "10.231.0.2", 50551


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def _row(name: str, samples: list[tuple[float, float]], base_overhead: float | None) -> str:
    wall = [w for w, _ in samples]
    over = [w - b for w, b in samples]
    model = [b for _, b in samples]
    added = "" if base_overhead is None else f"{(_pct(over, 50) - base_overhead) * 1e3:9.2f}"
    return (
        f"{name:34s} {len(samples):4d} {_pct(wall, 50) * 1e3:9.1f} {_pct(model, 50) * 1e3:9.1f} "
        f"{_pct(over, 50) * 1e3:9.2f} {_pct(over, 90) * 1e3:9.2f} {added}"
    )


_COLS = ("wall p50", "model p50", "over p50", "over p90", "added")
HEADER = f"{'path':34s} {'n':>4s} " + " ".join(f"{c:>9s}" for c in _COLS)


def _options(args: argparse.Namespace) -> Any:
    from cosmos_ros.runtime.options import PolicyOptions

    return PolicyOptions(num_inference_steps=args.steps, chunk_size=args.chunk_size)


def _frame(args: argparse.Namespace) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)


class _TimedBackend:
    """Wraps an in-process backend to record the model call's wall time next to the plan's."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.last_s = inner, getattr(inner, "name", "custom"), 0.0

    def run(self, request: Any) -> Any:
        t0 = time.perf_counter()
        out = self.inner.run(request)
        self.last_s = time.perf_counter() - t0
        return out


def _standin_runtime(args: argparse.Namespace) -> Any:
    """The runtime around the stand-in model (sleeps, CPU free: what a GPU inference leaves to the host)."""
    from cosmos_ros.action_space import load_profile
    from cosmos_ros.runtime.policy import PolicyRuntime
    from cosmos_ros.tools.bench_planner_node import SleepBackend

    prof = load_profile(args.action_space)
    backend = SleepBackend(args.standin_ms / 1000.0, prof.raw_width)
    return PolicyRuntime(backend, prof, _options(args), model_id=args.model_path)


def bench_in_process(args: argparse.Namespace) -> list[tuple[float, float]]:
    from cosmos_ros.runtime.policy import PolicyRuntime

    if args.kind == "standin":
        rt = _standin_runtime(args)
    else:
        rt = PolicyRuntime.from_config(args.model_path, profile=args.action_space, backend=args.backend,
                                       options=_options(args))  # fmt: skip
    timed = _TimedBackend(rt.backend)
    rt.backend = timed
    image = _frame(args)
    rt.plan(image, GOAL)  # warm-up
    out = []
    for _ in range(args.plans):
        t0 = time.perf_counter()
        rt.plan(image, GOAL)
        out.append((time.perf_counter() - t0, timed.last_s))
    return out


def _client_runtime(args: argparse.Namespace, address: str, shared_memory: bool = True) -> Any:
    from cosmos_ros.runtime.policy import PolicyRuntime

    return PolicyRuntime.from_config(
        args.model_path,
        profile=args.action_space,
        backend="server",
        options=_options(args),
        backend_options={"address": address, "shared_memory": shared_memory, "connect_timeout_s": 60.0,
                         "call_timeout_s": 120.0},
    )  # fmt: skip


def bench_client(
    args: argparse.Namespace, address: str, shared_memory: bool = True
) -> list[tuple[float, float]]:
    rt = _client_runtime(args, address, shared_memory)
    image = _frame(args)
    try:
        rt.plan(image, GOAL)  # warm-up (the server's own warm-up ran at its start)
        out = []
        for _ in range(args.plans):
            t0 = time.perf_counter()
            res = rt.plan(image, GOAL)
            out.append((time.perf_counter() - t0, res.timings["server_backend"]))
        return out
    finally:
        rt.backend.close()


def bench_shared(
    args: argparse.Namespace, address: str, clients: int
) -> tuple[list[tuple[float, float]], float]:
    """``clients`` planners (threads, own connections) planning back to back; per-plan samples + plans/s."""
    runtimes = [_client_runtime(args, address) for _ in range(clients)]
    image = _frame(args)
    for rt in runtimes:
        rt.plan(image, GOAL)
    samples: list[tuple[float, float]] = []
    lock, barrier = threading.Lock(), threading.Barrier(clients)

    def work(rt: Any) -> None:
        barrier.wait(timeout=60)
        for _ in range(args.plans):
            t0 = time.perf_counter()
            res = rt.plan(image, GOAL)
            # The server's queue time (waiting for the other client's call) counts as latency, not model time.
            with lock:
                samples.append((time.perf_counter() - t0, res.timings["server_backend"]))

    threads = [threading.Thread(target=work, args=(rt,)) for rt in runtimes]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=3600)
    elapsed = time.perf_counter() - t0
    for rt in runtimes:
        rt.backend.close()
    return samples, len(samples) / elapsed


# ---- the server process ------------------------------------------------------------------------------------
@contextlib.contextmanager
def server_process(args: argparse.Namespace, listen: list[str], prefix: list[str] = ()) -> Iterator[str]:  # type: ignore[assignment]
    """Start the server process; yields its log once it serves (with the bound ports)."""
    log = Path(tempfile.mkstemp(prefix="bench_policy_server_", suffix=".log")[1])
    if args.kind == "standin":
        cmd = [*prefix, sys.executable, "-m", "cosmos_ros.tools.bench_policy_server", "--serve-standin",
               *_forward(args)]  # fmt: skip
    else:
        cmd = [*prefix, sys.executable, "-m", "cosmos_ros.policy_server",
               "--model-path", str(args.model_path), "--backend", args.backend,
               "--action-space", args.action_space,
               "--chunk-size", str(args.chunk_size)]  # fmt: skip
    for a in listen:
        cmd += ["--listen", a]
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
    try:
        deadline = time.monotonic() + 300
        while "serving" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if "serving" not in log.read_text():
            raise RuntimeError(f"policy server did not start:\n{log.read_text()[-3000:]}")
        yield log.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.unlink()


# ---- two network namespaces --------------------------------------------------------------------------------
def _ip(*cmd: str) -> None:
    subprocess.run(["ip", *cmd], check=True, timeout=30)


@contextlib.contextmanager
def namespaces(rate: str) -> Iterator[None]:
    """Two namespaces joined by a veth pair (addresses only inside them); removed on exit."""
    try:
        _ip("netns", "add", NS_SRV)
        _ip("netns", "add", NS_CLI)
        _ip("link", "add", f"{VETH}0", "type", "veth", "peer", "name", f"{VETH}1")
        _ip("link", "set", f"{VETH}0", "netns", NS_SRV)
        _ip("link", "set", f"{VETH}1", "netns", NS_CLI)
        for ns, dev, ip in ((NS_SRV, f"{VETH}0", NS_SRV_IP), (NS_CLI, f"{VETH}1", NS_CLI_IP)):
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            if rate:
                # Token bucket on each end's egress (netem is not in every kernel; tbf is): the link's rate.
                tbf = ["tbf", "rate", rate, "burst", "256kb", "latency", "200ms"]
                subprocess.run(
                    ["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", *tbf], check=True, timeout=30
                )
        yield
    finally:
        for ns in (NS_SRV, NS_CLI):  # deleting a namespace deletes its end of the veth pair (and so both)
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)


def bench_netns(args: argparse.Namespace, rate: str) -> list[tuple[float, float]]:
    with namespaces(rate), server_process(args, [f"{NS_SRV_IP}:{NS_PORT}"], ["ip", "netns", "exec", NS_SRV]):
        cmd = ["ip", "netns", "exec", NS_CLI, sys.executable, "-m", "cosmos_ros.tools.bench_policy_server",
               "--client-only", f"{NS_SRV_IP}:{NS_PORT}", *_forward(args)]  # fmt: skip
        r = subprocess.run(cmd, check=True, timeout=1800, capture_output=True, text=True)
    return [tuple(s) for s in json.loads(r.stdout.strip().splitlines()[-1])]


def _forward(args: argparse.Namespace) -> list[str]:
    return ["--model-path", str(args.model_path), "--backend", args.backend, "--plans", str(args.plans),
            "--steps", str(args.steps), "--chunk-size", str(args.chunk_size), "--height", str(args.height),
            "--width", str(args.width), "--action-space", args.action_space, "--kind", args.kind,
            "--standin-ms", str(args.standin_ms)]  # fmt: skip


# ---- main --------------------------------------------------------------------------------------------------
def serve_standin(args: argparse.Namespace) -> int:
    """A policy server around the stand-in model (the real server code, another backend), until SIGTERM."""
    import signal

    from cosmos_ros.policy_server.server import PolicyService, start_server
    from cosmos_ros.policy_server.wire import ServedModel, model_id_from_path

    rt = _standin_runtime(args)
    prof = rt.profile
    served = ServedModel(model_id_from_path(args.model_path), prof.name, prof.domain_name, prof.raw_width,
                         args.chunk_size)  # fmt: skip
    unix = any(a.startswith("unix:") for a in args.listen)
    service = PolicyService(rt.backend, served, "standin", "cpu", "-", shared_memory=unix)
    server, ports = start_server(service, args.listen)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    where = [a if p == 0 else f"{a.rsplit(':', 1)[0]}:{p}" for a, p in zip(args.listen, ports, strict=True)]
    print(f"serving stand-in on {', '.join(where)}", flush=True)
    while not stop.wait(timeout=0.5):
        pass
    server.stop(grace=1.0).wait(timeout=5.0)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-path", default="", help="Pipeline directory (default: generate the tiny model)")
    p.add_argument("--backend", default="fast")
    p.add_argument("--action-space", default="umi_pose_gripper")
    p.add_argument("--plans", type=int, default=20, help="Plans per path")
    p.add_argument("--steps", type=int, default=2, help="num_inference_steps")
    p.add_argument("--chunk-size", type=int, default=16)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--netns", action="store_true", help="Also TCP between two network namespaces (root)")
    p.add_argument("--netns-rate", default="", help="netem rate on the veth link, e.g. 1gbit ('' = none)")
    p.add_argument("--out", default="", help="Also write the report here")
    p.add_argument("--standin-ms", type=float, default=100.0, help="Stand-in model's time (sleep, CPU free)")
    p.add_argument("--kinds", default="standin,tiny", help="Models to run: standin, tiny (comma-separated)")
    p.add_argument("--client-only", default="", metavar="ADDRESS", help=argparse.SUPPRESS)  # netns helper
    p.add_argument("--serve-standin", action="store_true", help=argparse.SUPPRESS)  # stand-in server
    p.add_argument("--listen", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--kind", default="tiny", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def suite(args: argparse.Namespace, tmp: str) -> list[str]:
    """Every path for the model ``args.kind``; the report's lines."""
    label = (
        f"stand-in model: sleeps {args.standin_ms:.0f} ms, CPU free (as a GPU inference leaves the host)"
        if args.kind == "standin"
        else f"tiny model {Path(args.model_path).name} ({args.backend}, cpu, float32), {args.steps} steps"
    )
    lines = [f"## {label}", HEADER]
    base = bench_in_process(args)
    base_over = _pct([w - b for w, b in base], 50)
    lines.append(_row("in-process", base, None))
    sock = Path(tmp) / f"policy_{args.kind}.sock"
    with server_process(args, [f"unix://{sock}", "127.0.0.1:0"]) as log:
        port = re.search(r"127\.0\.0\.1:(\d+)", log)
        assert port is not None, log
        unix = f"unix://{sock}"
        lines.append(_row("server, unix socket + shared memory", bench_client(args, unix), base_over))
        lines.append(_row("server, unix socket, frame inline", bench_client(args, unix, False), base_over))
        lines.append(
            _row("server, TCP loopback", bench_client(args, f"127.0.0.1:{port.group(1)}"), base_over)
        )
        one, one_rate = bench_shared(args, unix, 1)
        two, two_rate = bench_shared(args, unix, 2)
    if args.netns:
        lines.append(_row("server, TCP veth between 2 netns", bench_netns(args, ""), base_over))
        if args.netns_rate:
            row = _row(
                f"server, TCP veth at {args.netns_rate}", bench_netns(args, args.netns_rate), base_over
            )
            lines.append(row)
    lines += [
        "",
        "one server shared by planners (unix socket + shared memory, back-to-back plans per client)",
        f"{'clients':>8s} {'plans':>6s} {'latency p50':>12s} {'latency p90':>12s} {'plans/s total':>14s}",
    ]
    for n, samples, rate in ((1, one, one_rate), (2, two, two_rate)):
        wall = [w for w, _ in samples]
        lines.append(f"{n:8d} {len(samples):6d} {_pct(wall, 50) * 1e3:12.1f} {_pct(wall, 90) * 1e3:12.1f} "
                     f"{rate:14.2f}")  # fmt: skip
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client_only:
        print(json.dumps(bench_client(args, args.client_only, shared_memory=False)))
        return 0
    if args.serve_standin:
        return serve_standin(args)
    tmp = tempfile.TemporaryDirectory(prefix="bench_ps_")
    if not args.model_path:
        from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline

        args.model_path = str(make_tiny_pipeline(Path(tmp.name) / "tiny_cosmos3", seed=0))
    lines = [
        f"# bench_policy_server {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"# command: python -m cosmos_ros.tools.bench_policy_server {' '.join(argv or sys.argv[1:])}",
        f"# {args.plans} plans per path, chunk {args.chunk_size}, frame {args.width}x{args.height} RGB, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start (a shared machine)",
        "# times in ms; model = the model call (server side for server paths); over = wall - model;",
        "# added = over p50 - in-process over p50 (the latency the server path adds per plan)",
        "",
    ]
    for kind in args.kinds.split(","):
        args.kind = kind
        lines += suite(args, tmp.name)
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
