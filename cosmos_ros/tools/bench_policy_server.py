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
afterwards; needs root; when they cannot be made the rows say why and the rest still runs), then the same
link rate-limited with a token bucket (``--netns-rate 1gbit``) to include a link's transfer time. Then two
clients (threads, each with its own connection and shared-memory segment, as two planners would have) share
one server: per-plan latency and total throughput against one client.

Models (``--kinds``, run in turn):
  standin  sleeps ``--standin-ms`` with the CPU free (what a GPU inference leaves to the host): the transport
           alone
  tiny     the pipeline directory ``--model-path`` (default: the generated tiny model), float32, served by
           the real ``python -m cosmos_ros.policy_server``
  nano     Cosmos 3 Nano size with random weights (``bench_fast.NANO``), bfloat16, needs ``--device cuda``;
           built in this process and again in the server process (the server code is the real one, around
           a model it builds itself: saving a Nano pipeline to hand it over would write ~30 GB)
  small    ``bench_fast.SMALL`` built the same way as nano, float32, runs on CPU: a smoke test of that path,
           not a benchmark
The servers of a model start (and build) while this process builds its own copy; every measurement starts
once all of them are warm and idle.

Usage: ``bench_policy_server [--kinds standin,tiny] [--device cpu] [--plans 20] [--steps 2] [--chunk-size 16]
[--guidance 1] [--tier 256] [--netns] [--netns-rate 1gbit] [--out FILE]``; on the GPU machine, the
deployment setting: ``--kinds standin,tiny,nano --device cuda --chunk-size 32 --steps 4 --guidance 3``.
Nothing here measures planning quality.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_ros.tools.bench_policy_server_models import (
    GOAL,
    KINDS,
    TimedBackend,
    build_runtime,
    frame,
    label,
    model_dtype,
    model_ref,
    options,
    release,
)
from cosmos_ros.tools.netns_link import NS_CLI, NS_SRV, NS_SRV_IP, namespaces, shape_link

NS_PORT = 50551
# A Nano build plus compile and graph capture, with two more processes building beside it, and margin.
SERVER_START_S = 600.0


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def _row(name: str, samples: list[tuple[float, float]], base_overhead: float | None) -> str:
    wall = [w for w, _ in samples]
    over = [w - b for w, b in samples]
    model = [b for _, b in samples]
    added = "" if base_overhead is None else f"{(_pct(over, 50) - base_overhead) * 1e3:9.2f}"
    return (
        f"{name:36s} {len(samples):4d} {_pct(wall, 50) * 1e3:9.1f} {_pct(model, 50) * 1e3:9.1f} "
        f"{_pct(over, 50) * 1e3:9.2f} {_pct(over, 90) * 1e3:9.2f} {added}"
    )


def _not_run(name: str, reason: str) -> str:
    return f"{name:36s} not run: {reason}"


_COLS = ("wall p50", "model p50", "over p50", "over p90", "added")
HEADER = f"{'path':36s} {'n':>4s} " + " ".join(f"{c:>9s}" for c in _COLS)


# ---- the measured paths ------------------------------------------------------------------------------------
def bench_in_process(args: argparse.Namespace, rt: Any) -> list[tuple[float, float]]:
    """``args.plans`` plans of the (warm) in-process runtime: (wall s, model s) each."""
    timed = TimedBackend(rt.backend)
    rt.backend = timed
    image = frame(args)
    rt.plan(image, GOAL)  # one more unmeasured plan: the servers were building beside its warm-up
    out = []
    for _ in range(args.plans):
        t0 = time.perf_counter()
        rt.plan(image, GOAL)
        out.append((time.perf_counter() - t0, timed.last_s))
    rt.backend = timed.inner
    return out


def _client_runtime(args: argparse.Namespace, address: str, shared_memory: bool = True) -> Any:
    from cosmos_ros.runtime.policy import PolicyRuntime

    return PolicyRuntime.from_config(
        model_ref(args),
        profile=args.action_space,
        backend="server",
        options=options(args),
        backend_options={"address": address, "shared_memory": shared_memory, "connect_timeout_s": 60.0,
                         "call_timeout_s": 120.0},
    )  # fmt: skip


def bench_client(
    args: argparse.Namespace, address: str, shared_memory: bool = True
) -> list[tuple[float, float]]:
    rt = _client_runtime(args, address, shared_memory)
    image = frame(args)
    try:
        rt.plan(image, GOAL)  # warm-up (this client's connection; graph capture for this request's shapes)
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
    image = frame(args)
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
@dataclass
class ServerProcess:
    """A started policy server process and its log file (see :func:`start_server_process`)."""

    proc: subprocess.Popen[bytes]
    log: Path

    def wait_ready(self, timeout_s: float = SERVER_START_S) -> str:
        """Block until the server logs that it serves; its log (with the bound ports).

        Raises:
            RuntimeError: It exited or did not serve within ``timeout_s`` (the log's tail in the message).
        """
        deadline = time.monotonic() + timeout_s
        while "serving" not in self.log.read_text() and self.proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        text = self.log.read_text()
        if "serving" not in text:
            raise RuntimeError(f"policy server did not start (exit {self.proc.poll()}):\n{text[-3000:]}")
        return text

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.log.unlink(missing_ok=True)


def start_server_process(
    args: argparse.Namespace, listen: list[str], prefix: Sequence[str] = ()
) -> ServerProcess:
    """Start the server of ``args.kind`` on ``listen`` (not waiting for it; see ``ServerProcess.wait_ready``).

    The tiny kind runs the real ``python -m cosmos_ros.policy_server``; the others run this module's
    ``--serve``, the same server code around a model it builds itself.
    """
    log = Path(tempfile.mkstemp(prefix="bench_policy_server_", suffix=".log")[1])
    if args.kind == "tiny":
        cmd = [*prefix, sys.executable, "-m", "cosmos_ros.policy_server",
               "--model-path", str(args.model_path), "--backend", args.backend, "--device", args.device,
               "--dtype", model_dtype(args.kind), "--action-space", args.action_space,
               "--chunk-size", str(args.chunk_size)]  # fmt: skip
    else:
        cmd = [*prefix, sys.executable, "-m", "cosmos_ros.tools.bench_policy_server", "--serve",
               *_forward(args)]  # fmt: skip
    for a in listen:
        cmd += ["--listen", a]
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
    return ServerProcess(proc, log)


def _forward(args: argparse.Namespace) -> list[str]:
    return ["--model-path", str(args.model_path), "--backend", args.backend, "--plans", str(args.plans),
            "--steps", str(args.steps), "--chunk-size", str(args.chunk_size),
            "--guidance", str(args.guidance), "--tier", str(args.tier), "--height", str(args.height),
            "--width", str(args.width),
            "--action-space", args.action_space, "--kind", args.kind, "--device", args.device,
            "--standin-ms", str(args.standin_ms)]  # fmt: skip


def serve(args: argparse.Namespace) -> int:
    """A policy server around the model of ``args.kind`` built here (the real server code), until SIGTERM."""
    from cosmos_ros.policy_server.server import PolicyService, start_server
    from cosmos_ros.policy_server.wire import ServedModel, model_id_from_path

    rt = build_runtime(args)
    # Warm up with the measured request (compile, graph capture) before saying "serving": the bench measures
    # other paths while this process waits, and they must not share the GPU with a compile.
    rt.plan(frame(args), GOAL)
    prof = rt.profile
    served = ServedModel(model_id_from_path(model_ref(args)), prof.name, prof.domain_name, prof.raw_width,
                         args.chunk_size)  # fmt: skip
    unix = any(a.startswith("unix:") for a in args.listen)
    name = getattr(rt.backend, "name", args.backend)
    service = PolicyService(rt.backend, served, name, args.device, model_dtype(args.kind), shared_memory=unix)
    server, ports = start_server(service, args.listen)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    where = [a if p == 0 else f"{a.rsplit(':', 1)[0]}:{p}" for a, p in zip(args.listen, ports, strict=True)]
    print(f"serving {args.kind} on {', '.join(where)}", flush=True)
    while not stop.wait(timeout=0.5):
        pass
    server.stop(grace=1.0).wait(timeout=5.0)
    return 0


# ---- two network namespaces --------------------------------------------------------------------------------
def bench_netns_client(args: argparse.Namespace) -> list[tuple[float, float]]:
    """The client side in the client namespace (another process: a namespace is per process).

    Raises:
        RuntimeError: The client failed (its stderr's tail in the message).
    """
    cmd = ["ip", "netns", "exec", NS_CLI, sys.executable, "-m", "cosmos_ros.tools.bench_policy_server",
           "--client-only", f"{NS_SRV_IP}:{NS_PORT}", *_forward(args)]  # fmt: skip
    try:
        r = subprocess.run(cmd, timeout=900, capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"the client in {NS_CLI} timed out") from exc
    if r.returncode != 0:
        raise RuntimeError(f"the client in {NS_CLI} failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")
    return [(float(w), float(b)) for w, b in json.loads(r.stdout.strip().splitlines()[-1])]


def _netns_rows(args: argparse.Namespace, why_not: str, base_over: float) -> list[str]:
    """The rows over the veth link: measured, or 'not run' with the reason (never an abort of the run)."""
    plain, shaped = "server, TCP veth between 2 netns", f"server, TCP veth at {args.netns_rate}"
    if why_not:
        return [_not_run(plain, why_not)] + ([_not_run(shaped, why_not)] if args.netns_rate else [])
    rows = []
    try:
        rows.append(_row(plain, bench_netns_client(args), base_over))
    except RuntimeError as exc:
        rows.append(_not_run(plain, str(exc)))
    if args.netns_rate:
        try:
            shape_link(args.netns_rate)
            rows.append(_row(shaped, bench_netns_client(args), base_over))
        except RuntimeError as exc:
            rows.append(_not_run(shaped, str(exc)))
    return rows


def _start_netns_server(
    stack: contextlib.ExitStack, args: argparse.Namespace
) -> tuple[ServerProcess | None, str]:
    """Namespaces + the server in one of them, or ``(None, reason)``; cleaned up by ``stack``."""
    try:
        stack.enter_context(namespaces())
    except RuntimeError as exc:
        return None, f"no network namespaces here ({exc})"
    srv = start_server_process(args, [f"{NS_SRV_IP}:{NS_PORT}"], ["ip", "netns", "exec", NS_SRV])
    stack.callback(srv.stop)
    return srv, ""


# ---- one model: every path ---------------------------------------------------------------------------------
def suite(args: argparse.Namespace, tmp: str) -> list[str]:
    """Every path for the model ``args.kind``; the report's lines."""
    lines = [f"## {label(args)}", HEADER]
    unix = f"unix://{Path(tmp) / f'policy_{args.kind}.sock'}"
    with contextlib.ExitStack() as stack:
        # The servers build while this process builds its own copy (three Nano builds in series would take
        # most of the GPU machine's time); measuring starts when all of them are warm and idle.
        local = start_server_process(args, [unix, "127.0.0.1:0"])
        stack.callback(local.stop)
        remote, why_not = _start_netns_server(stack, args) if args.netns else (None, "")
        rt = build_runtime(args)
        rt.plan(frame(args), GOAL)  # warm-up: compile, graph capture
        log = local.wait_ready()
        if remote is not None:
            try:
                remote.wait_ready()
            except RuntimeError as exc:
                why_not = f"the server in {NS_SRV} did not start: {str(exc)[-500:]}"
        base = bench_in_process(args, rt)
        release(rt)
        del rt
        base_over = _pct([w - b for w, b in base], 50)
        lines.append(_row("in-process", base, None))
        port = re.search(r"127\.0\.0\.1:(\d+)", log)
        assert port is not None, log
        lines.append(_row("server, unix socket + shared memory", bench_client(args, unix), base_over))
        lines.append(_row("server, unix socket, frame inline", bench_client(args, unix, False), base_over))
        tcp = f"127.0.0.1:{port.group(1)}"
        lines.append(_row("server, TCP loopback", bench_client(args, tcp), base_over))
        if args.netns:
            lines += _netns_rows(args, why_not, base_over)
        one, one_rate = bench_shared(args, unix, 1)
        two, two_rate = bench_shared(args, unix, 2)
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


def machine_facts(device: str) -> str:
    """CPU count, load, Python and (when a GPU is used) its name, torch and CUDA versions: one line."""
    facts = (
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start, Python "
        f"{platform.python_version()}"
    )
    if device == "cpu":
        return f"{facts}, no GPU used (--device cpu)"
    import torch

    name = torch.cuda.get_device_name(torch.device(device))
    return f"{facts}, GPU {name}, torch {torch.__version__} (CUDA {torch.version.cuda})"


def report_header(args: argparse.Namespace, argv: Sequence[str]) -> list[str]:
    return [
        f"# bench_policy_server {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"# command: python -m cosmos_ros.tools.bench_policy_server {' '.join(argv)}",
        f"# machine: {machine_facts(args.device)}",
        f"# {args.plans} plans per path, frame {args.width}x{args.height} RGB; request: chunk "
        f"{args.chunk_size}, {args.steps} steps, guidance {args.guidance:g}, resolution tier {args.tier}, "
        f"fps of the profile ({args.action_space}), backend {args.backend}, device {args.device}",
        "# times in ms; model = the model call (server side for server paths); over = wall - model;",
        "# added = over p50 - in-process over p50 (the latency the server path adds per plan)",
        "",
    ]


# ---- main --------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument(
        "--model-path", default="", help="Pipeline directory of the tiny kind (default: generate one)"
    )
    p.add_argument("--backend", default="fast")
    p.add_argument("--action-space", default="umi_pose_gripper")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (the nano kind needs a GPU)")
    p.add_argument("--plans", type=int, default=20, help="Plans per path")
    p.add_argument("--steps", type=int, default=2, help="num_inference_steps")
    p.add_argument("--chunk-size", type=int, default=16)
    p.add_argument(
        "--guidance", type=float, default=1.0, help="guidance_scale (>1 adds the unconditional pass)"
    )
    p.add_argument("--tier", type=int, default=256, help="resolution_tier the model resizes the frame to")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--netns", action="store_true", help="Also TCP between two network namespaces (root)")
    p.add_argument("--netns-rate", default="", help="tbf rate on the veth link, e.g. 1gbit ('' = none)")
    p.add_argument("--out", default="", help="Also write the report here")
    p.add_argument("--standin-ms", type=float, default=100.0, help="Stand-in model's time (sleep, CPU free)")
    p.add_argument(
        "--kinds", default="standin,tiny", help=f"Models to run, comma-separated: {', '.join(KINDS)}"
    )
    p.add_argument("--client-only", default="", metavar="ADDRESS", help=argparse.SUPPRESS)  # netns helper
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # server of a built kind
    p.add_argument("--listen", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--kind", default="tiny", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    kinds = args.kinds.split(",")
    for kind in [*kinds, args.kind]:
        if kind not in KINDS:
            p.error(f"unknown model kind {kind!r}; valid: {', '.join(KINDS)}")
    if "nano" in [*kinds, args.kind] and args.device == "cpu":
        p.error("--kinds nano needs --device cuda (a Nano-size plan on CPU takes minutes); 'small' runs the "
                "same path on CPU")  # fmt: skip
    if args.plans < 1:
        p.error(f"--plans must be >= 1, got {args.plans}")
    if args.netns_rate and not args.netns:
        p.error("--netns-rate shapes the veth link of --netns; give --netns too")
    try:
        options(args)  # the runtime's own checks (chunk a multiple of 4, steps >= 1, guidance >= 1, tier)
    except ValueError as exc:
        p.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.client_only:
        print(json.dumps(bench_client(args, args.client_only, shared_memory=False)))
        return 0
    if args.device != "cpu":
        from cosmos_ros.runtime.loader import resolve_device

        try:
            resolve_device(args.device)  # a machine without the GPU fails here, not after minutes of building
        except ValueError as exc:
            print(f"bench_policy_server: error: {exc}", file=sys.stderr)
            return 2
    if args.serve:
        return serve(args)
    # SIGTERM (a time limit's `timeout`) unwinds like an error: servers stopped, namespaces removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.TemporaryDirectory(prefix="bench_ps_")
    kinds = args.kinds.split(",")
    if "tiny" in kinds and not args.model_path:
        from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline

        args.model_path = str(make_tiny_pipeline(Path(tmp.name) / "tiny_cosmos3", seed=0))
    lines = report_header(args, argv)
    print("\n".join(lines), flush=True)
    failed = 0
    for kind in kinds:
        args.kind = kind
        t0 = time.monotonic()
        try:
            block = suite(args, tmp.name)
        except Exception as exc:  # one model failing (out of memory, a server that died) leaves the others
            traceback.print_exc()
            block = [f"## {label(args)}", f"not run: {type(exc).__name__}: {str(exc)[-1500:]}", ""]
            failed += 1
        block.insert(-1, f"({kind}: {time.monotonic() - t0:.0f} s with its servers' build and warm-up)")
        lines += block
        print("\n".join(block), flush=True)
        if args.out:  # after every model: a run cut short by a time limit keeps what it measured
            Path(args.out).write_text("\n".join(lines))
    tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
