"""Benchmark: the planner node's own overhead per camera image (transport, conversion, queueing).

What it measures: a separate publisher process streams 640x480 ``rgb8`` ``sensor_msgs/Image`` at 30 Hz over
DDS (sensor-data QoS) into the real ``PlannerNode`` (its callbacks, ``cosmos_ros.images`` conversion,
``cosmos_ros.frames`` buffer, ``InferenceWorker`` and publisher), and prints p50/p99/max per stage:

  transport    header stamp (publisher clock, same machine) -> planner callback entry: DDS + deserialisation
  convert      message -> [H, W, 3] RGB array (the node's converter)
  frames       FrameBuffer.push + take_set
  submit       InferenceWorker.submit (lock + replace the pending set)
  callback     the whole image callback (convert + frames + submit + bookkeeping)
  pickup       set submitted -> inference start, for sets that found the worker idle (worker wake-up)
  queue        newest frame received -> inference start, every planned set (includes waiting for the
               previous inference and the rate limit: depends on the model, shown for context)
  prepare      worker: frame set -> writable conditioning image (tile/select + copy of the message view)
  deliver      worker: PlanResult -> Plan -> ActionSequence -> publish

The model: by default a stand-in backend that sleeps ``--model-ms`` (as a GPU inference would: the CPU stays
free) and returns seeded random actions, decoded by the real ``PolicyRuntime`` and action-space profile,
because this benchmark is about the planner's overhead, not the model. ``--model-dir`` puts a real pipeline
(e.g. the tiny model) behind the node instead; on a CPU-only machine its inference then competes with the
callbacks for the CPU, which the table will show. Nothing here measures or implies planning quality.

Usage: ``bench_planner_node [--seconds 10] [--rate 30] [--encoding rgb8] [--model-ms 200] [--model-dir DIR]
[--dds-defaults | --profile shm16|udp|udp4m [--profile-planner-only]]``
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from typing import Any

import numpy as np

# Fast DDS sends samples larger than its shared-memory segment (512 KiB by default) over UDP fragments, and
# with best-effort QoS a 900 KiB image at 30 Hz then mostly never arrives (measured here: ~10-20% of frames).
# This profile gives the shared-memory transport a 16 MiB segment, which carries a 640x480 rgb8 frame whole.
# Robots streaming raw images to the planner need the same (or rmw_cyclonedds / compressed images).
FASTDDS_LARGE_SHM_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>shm_large</transport_id>
      <type>SHM</type>
      <segment_size>16777216</segment_size>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>udp</transport_id>
      <type>UDPv4</type>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="cosmos_ros_bench" is_default_profile="true">
    <rtps>
      <userTransports>
        <transport_id>shm_large</transport_id>
        <transport_id>udp</transport_id>
      </userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


def _udp_only_profile(buffer_bytes: int | None) -> str:
    """Fast DDS over UDPv4 only (what two hosts use), optionally with larger socket buffers (bounded by
    ``net.core.rmem_max`` / ``wmem_max``)."""
    sizes = (
        f"<sendBufferSize>{buffer_bytes}</sendBufferSize><receiveBufferSize>{buffer_bytes}</receiveBufferSize>"
        if buffer_bytes
        else ""
    )
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor><transport_id>udp_only</transport_id><type>UDPv4</type>{sizes}</transport_descriptor>
  </transport_descriptors>
  <participant profile_name="cosmos_ros_bench_udp" is_default_profile="true">
    <rtps>
      <userTransports><transport_id>udp_only</transport_id></userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


# --profile choices: the transport settings compared in the README (delivery of 640x480 rgb8 at 30 Hz).
PROFILES = {
    "shm16": ("Fast DDS, 16 MiB shared-memory segment", FASTDDS_LARGE_SHM_PROFILE),
    "udp": ("Fast DDS, UDPv4 only, default socket buffers", _udp_only_profile(None)),
    "udp4m": ("Fast DDS, UDPv4 only, 4 MiB socket buffers", _udp_only_profile(4 * 1024 * 1024)),
}

STAGES = ("transport", "convert", "frames", "submit", "callback", "pickup", "queue", "prepare", "deliver")


class StageTimes:
    """Thread-safe lists of durations (seconds) per stage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: dict[str, list[float]] = defaultdict(list)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.samples[stage].append(seconds)

    def table(self) -> str:
        rows = [f"{'stage':<10} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}"]
        with self._lock:
            for stage in STAGES:
                v = np.asarray(self.samples.get(stage, []), dtype=np.float64) * 1e3
                if v.size == 0:
                    rows.append(f"{stage:<10} {0:>6} {'-':>9} {'-':>9} {'-':>9}")
                    continue
                p50, p99 = np.percentile(v, [50, 99])
                rows.append(f"{stage:<10} {v.size:>6} {p50:>9.3f} {p99:>9.3f} {v.max():>9.3f}")
        return "\n".join(rows)


class SleepBackend:
    """Stand-in model for overhead measurements: holds the worker ``seconds`` without using the CPU and
    returns seeded random actions of the right shape. Labelled as such in the output; never used by the node
    itself."""

    name = "stand-in(sleep)"

    def __init__(self, seconds: float, raw_width: int) -> None:
        self.seconds = seconds
        self.raw_width = raw_width

    def run(self, request: Any) -> Any:
        from cosmos_ros.runtime.backend import RawPolicyOutput

        time.sleep(self.seconds)
        # Seeded normal values: finite and decodable (a 6D rotation of zeros would be degenerate).
        rng = np.random.default_rng(int(request.seed))
        actions = rng.standard_normal((request.chunk_size, self.raw_width)).astype(np.float32)
        return RawPolicyOutput(actions=actions, timings={"total": self.seconds})


def _make_bench_node(args: argparse.Namespace, times: StageTimes) -> Any:
    """A PlannerNode subclass that times its stages by wrapping (not changing) the node's own objects."""
    from rclpy.parameter import Parameter

    from cosmos_ros.nodes.conversions import time_to_sec
    from cosmos_ros.nodes.planner_node import PlannerNode

    class TimedPlanner(PlannerNode):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            # newest_received_s of sets submitted while the worker was idle -> submit time
            self._idle_submits: dict[float, float] = {}

        def _make_runtime(self, cfg: Any) -> Any:
            if args.model_dir:
                return super()._make_runtime(cfg)
            from cosmos_ros.action_space import load_profile
            from cosmos_ros.runtime.policy import PolicyRuntime

            profile = load_profile(cfg.action_space)
            backend = SleepBackend(args.model_ms / 1e3, profile.raw_width)
            return PolicyRuntime(backend, profile, cfg.options, model_id="stand-in")

        def _configure(self) -> Any:
            result = super()._configure()
            if self.frames is None or self.worker is None:
                return result
            for topic, conv in list(self._converters.items()):
                self._converters[topic] = _timed(conv, "convert", times)
            frames, worker = self.frames, self.worker
            push, take = frames.push, frames.take_set
            frames_time = [0.0]

            def timed_push(*a: Any, **k: Any) -> Any:
                t = time.perf_counter()
                try:
                    return push(*a, **k)
                finally:
                    frames_time[0] = time.perf_counter() - t

            def timed_take(*a: Any, **k: Any) -> Any:
                t = time.perf_counter()
                try:
                    return take(*a, **k)
                finally:
                    times.add("frames", frames_time[0] + time.perf_counter() - t)

            frames.push = timed_push  # type: ignore[method-assign]
            frames.take_set = timed_take  # type: ignore[method-assign]
            submit = worker.submit

            def timed_submit(job: Any) -> None:
                idle = not worker.busy
                t = time.perf_counter()
                submit(job)
                times.add("submit", time.perf_counter() - t)
                if idle:
                    self._idle_submits[job.frame_set.newest_received_s] = time.monotonic()

            worker.submit = timed_submit  # type: ignore[method-assign]
            return result

        def _on_image(self, topic: str, msg: Any) -> None:
            now_s = self.get_clock().now().nanoseconds * 1e-9
            times.add("transport", now_s - time_to_sec(msg.header.stamp))
            t = time.perf_counter()
            super()._on_image(topic, msg)
            times.add("callback", time.perf_counter() - t)

        def _run_job(self, job: Any, goal: str) -> Any:
            started = time.monotonic()
            submitted = self._idle_submits.pop(job.frame_set.newest_received_s, None)
            if submitted is not None:
                times.add("pickup", started - submitted)
            times.add("queue", started - job.frame_set.newest_received_s)
            return super()._run_job(job, goal)

        def _prepare_image(self, job: Any, cfg: Any) -> Any:
            t = time.perf_counter()
            try:
                return super()._prepare_image(job, cfg)
            finally:
                times.add("prepare", time.perf_counter() - t)

        def _deliver(self, *a: Any) -> None:
            t = time.perf_counter()
            super()._deliver(*a)
            times.add("deliver", time.perf_counter() - t)

    overrides = [
        Parameter("model_path", value=args.model_dir or "stand-in"),
        Parameter("camera_topics", value=["bench/image"]),
        Parameter("compressed", value=bool(args.jpeg)),
        Parameter("max_plan_rate_hz", value=float(args.max_plan_rate_hz)),
        Parameter("num_inference_steps", value=int(args.steps)),
        Parameter("chunk_size", value=int(args.chunk)),
        Parameter("publish_diagnostics", value=False),
    ]
    return TimedPlanner("bench_planner", parameter_overrides=overrides)


def _timed(fn: Any, stage: str, times: StageTimes) -> Any:
    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            times.add(stage, time.perf_counter() - t)

    return wrapper


def run_publisher(seconds: float, rate: float, encoding: str, width: int, height: int, jpeg: int = 0) -> int:
    """Child process: publish images at ``rate`` Hz with header.stamp = now (ROS clock = system time).
    With ``jpeg`` (a quality), CompressedImage of a smooth test scene instead (noise would not compress)."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}[encoding]
    rclpy.init()
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(CompressedImage if jpeg else Image, "bench/image", qos_profile_sensor_data)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, height * width * channels, dtype=np.uint8).tobytes() for _ in range(4)]
    if jpeg:
        from cosmos_ros.images import rgb_to_compressed

        y, x = np.mgrid[0:height, 0:width]
        scenes = [
            np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 40 * k)], -1) for k in range(4)
        ]
        fmt, _ = rgb_to_compressed(scenes[0].astype(np.uint8), "jpeg", jpeg)
        frames = [rgb_to_compressed(im.astype(np.uint8), "jpeg", jpeg)[1] for im in scenes]
    deadline = time.monotonic() + 30.0
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    period = 1.0 / rate
    t_next = time.monotonic()
    end = t_next + seconds
    k = 0
    while time.monotonic() < end:
        if jpeg:
            msg = CompressedImage(format=fmt)
        else:
            msg = Image()
            msg.height, msg.width, msg.encoding = height, width, encoding
            msg.step = width * channels
        msg.data = frames[k % len(frames)]
        msg.header.frame_id = "bench_camera"
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        k += 1
        t_next += period
        time.sleep(max(0.0, t_next - time.monotonic()))
    print(f"published {k}", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="stream duration (s)")
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate (Hz)")
    ap.add_argument("--encoding", default="rgb8", choices=("rgb8", "bgr8", "rgba8", "bgra8", "mono8"))
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--model-ms", type=float, default=200.0, help="stand-in model time per plan (ms)")
    ap.add_argument("--model-dir", default="", help="a real pipeline directory instead of the stand-in")
    ap.add_argument("--steps", type=int, default=2, help="num_inference_steps (real model only)")
    ap.add_argument("--chunk", type=int, default=16, help="chunk_size")
    ap.add_argument("--max-plan-rate-hz", type=float, default=100.0)
    ap.add_argument(
        "--dds-defaults",
        action="store_true",
        help="keep Fast DDS' default transports (no large shared-memory segment: most 640x480 frames lost)",
    )
    ap.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default="shm16",
        help="Fast DDS profile written for both processes (unless FASTDDS_DEFAULT_PROFILES_FILE is set)",
    )
    ap.add_argument(
        "--profile-planner-only",
        action="store_true",
        help="give the profile to the planner only; the camera (publisher) process keeps Fast DDS defaults",
    )
    ap.add_argument(
        "--jpeg", type=int, default=0, metavar="QUALITY", help="send CompressedImage (jpeg) instead of raw"
    )
    ap.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.publisher:
        return run_publisher(args.seconds, args.rate, args.encoding, args.width, args.height, args.jpeg)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from std_msgs.msg import String

    from cosmos_ros.dds_env import use_localhost_discovery
    from cosmos_ros.testing.ros_harness import pick_domain_id

    domain = pick_domain_id()
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    use_localhost_discovery(os.environ)
    transport = "Fast DDS defaults" if args.dds_defaults else "user's Fast DDS profile"
    child_env = dict(os.environ)
    if not args.dds_defaults and "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        transport, xml = PROFILES[args.profile]
        fd, xml_path = tempfile.mkstemp(prefix="cosmos_ros_bench_fastdds_", suffix=".xml")
        with os.fdopen(fd, "w") as f:
            f.write(xml)
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = xml_path  # this process (and the publisher child)
        if args.profile_planner_only:
            transport += " (planner only; publisher on defaults)"
        else:
            child_env["FASTDDS_DEFAULT_PROFILES_FILE"] = xml_path
    rmw = os.environ.get("RMW_IMPLEMENTATION", "default rmw")
    rclpy.init()
    times = StageTimes()
    node = _make_bench_node(args, times)
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        print("configure failed (see the log above)", file=sys.stderr)
        return 1
    node.trigger_activate()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    node._on_goal(String(data="benchmark goal"))  # the goal callback, called directly: no race with frames
    # Two "hosts": e.g. COSMOS_ROS_BENCH_PUBLISHER_PREFIX="ip netns exec cam" runs the camera in another
    # network namespace (with ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET and --profile udp: DDS crosses a veth).
    prefix = shlex.split(os.environ.get("COSMOS_ROS_BENCH_PUBLISHER_PREFIX", ""))
    cmd = [*prefix, sys.executable, "-m", "cosmos_ros.tools.bench_planner_node", "--publisher"]
    cmd += ["--seconds", str(args.seconds), "--rate", str(args.rate), "--encoding", args.encoding]
    cmd += ["--width", str(args.width), "--height", str(args.height), "--jpeg", str(args.jpeg)]
    child = subprocess.Popen(cmd, env=child_env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + args.seconds + 60.0
        while child.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        end = time.monotonic() + 2.0  # let the last images and plan through
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        if child.poll() is None:
            child.kill()
        out = child.communicate(timeout=10)[0]
    published = int(out.split()[-1]) if out.strip() else 0
    counts = node.counters.snapshot()
    fstats = node.frames.stats() if node.frames is not None else None
    model = args.model_dir or f"stand-in backend sleeping {args.model_ms:.0f} ms (no CPU)"
    print(
        f"\nplanner overhead per image: {args.width}x{args.height} "
        f"{f'jpeg (quality {args.jpeg})' if args.jpeg else args.encoding} at {args.rate:g} Hz for "
        f"{args.seconds:g} s over DDS (domain {domain}, {rmw}, {transport}); model: {model}"
    )
    print(
        f"images published {published}, received {sum(fstats.received.values()) if fstats else 0}, "
        f"plans {counts.get('plans_published', 0)}, frame sets dropped (newer arrived) "
        f"{counts.get('frames_dropped', 0)}, errors {sum(v for k, v in counts.items() if 'error' in k)}"
    )
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average (1/5/15 min) " + " ".join(f"{x:.2f}" for x in load))
    print(times.table())
    node._release()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
