"""Planner node: camera frames + goal text -> Cosmos 3 policy -> ``ActionSequence``.

A thin rclpy lifecycle node over the pure core:
- ``cosmos_ros.images`` converts ``Image`` / ``CompressedImage`` to RGB (cv_bridge only for encodings it
  does not cover, see :func:`make_image_converter`);
- ``cosmos_ros.frames`` keeps the newest frame per camera, forms stamp-synchronised sets and tiles them;
- ``cosmos_ros.inference_worker`` runs the model on its own thread on the newest set only, rate-limited, and
  drops results whose goal was replaced or withdrawn;
- ``cosmos_ros.runtime.policy.PolicyRuntime`` loads the model and decodes actions;
- ``cosmos_ros.nodes.conversions.plan_to_msg`` builds the message.

Lifecycle (https://design.ros2.org/articles/node_lifecycle.html): ``configure`` reads the parameters and loads
the model (a bad model directory fails the transition with the loader's message at ERROR); ``activate``
starts accepting frames; ``deactivate`` stops planning (an inference in flight finishes, its result is
dropped); ``cleanup`` frees the model. With ``autostart`` (default) ``main()`` drives configure + activate
itself, so ``ros2 run`` works without a lifecycle manager, and exits non-zero if configure fails (so a launch
file ends with the error instead of hanging).

Parameters are read at configure time; while configured, changes are refused with a reason (deactivate and
clean up first), so what ``ros2 param get`` shows is what the node runs with.

Bad input never kills the node and never yields a plan: every rejection is counted by cause (diagnostics)
and logged once per cause and then at most every ``log_throttle_s``.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
from rcl_interfaces.msg import (
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import ParameterUninitializedException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from cosmos_ros.action_space import UnknownProfileError, load_profile
from cosmos_ros.camera_watch import CameraWatch, CameraWatchConfig, PublisherView, describe_silence
from cosmos_ros.frames import FrameBuffer, FrameBufferConfig, FrameSet, tile
from cosmos_ros.images import ImageError, compressed_msg_to_rgb, image_msg_to_rgb, rgb_to_image_fields
from cosmos_ros.inference_worker import (
    Counters,
    InferenceWorker,
    LogThrottle,
    RateWindow,
    WorkerConfig,
    WorkTiming,
)
from cosmos_ros.latency import (
    ChunkTiming,
    LatencyEstimator,
    StartDecision,
    decide_start,
    latency_warnings,
)
from cosmos_ros.msg import ActionSequence, PlannerState
from cosmos_ros.nodes.conversions import plan_to_msg, report_to_status, sec_to_time, time_to_sec
from cosmos_ros.nodes.parameters import declarations
from cosmos_ros.nodes.spin import run_nodes
from cosmos_ros.planner_diagnostics import (
    MODEL_ERROR,
    PUBLISH_ERROR,
    SERVER_ERROR,
    TILE_ERROR,
    PlannerSnapshot,
    planner_diagnostics,
)
from cosmos_ros.planner_node_config import PREFIX_BACKENDS, SCHEMA, PlannerConfig, config_from_parameters
from cosmos_ros.policy_server.errors import ServerError
from cosmos_ros.rtc import ExecutingChunk, build_prefix

NODE_NAME = "planner_node"  # like the executable and "safety_node"

# Counter keys (diagnostics). Image rejections are "rejected_image_<reason>" with the reasons of
# cosmos_ros.images.REJECT_REASONS; these are the others.
REJECTED_GOAL_TOO_LONG = "rejected_goal_too_long"
# The goal is state, not a stream: a goal published before the planner subscribed (a late start, a restart,
# `ros2 topic pub --once`) must still reach it, so the subscription is transient-local with depth 1 (the last
# goal only). DDS then delivers the publisher's last sample on matching, provided the PUBLISHER is reliable +
# transient-local too and still alive; a volatile publisher does not match a transient-local subscription at
# all (ROS reports an incompatible-QoS event). See README "The planner node" for the publisher's side.
GOAL_QOS = QoSProfile(
    depth=1,
    reliability=QoSReliabilityPolicy.RELIABLE,
    durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    history=QoSHistoryPolicy.KEEP_LAST,
)
REJECTED_SET_WITH_BAD_IMAGE = "rejected_set_with_bad_image"
PLANS_PUBLISHED = "plans_published"
PLANS_LATE = "plans_late"  # published with every step already in the past (the safety node rejects them)


# ----------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------
PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = declarations(SCHEMA)  # schemas/planner_node.yaml


# ----------------------------------------------------------------------------------------------------------
# Image conversion
# ----------------------------------------------------------------------------------------------------------
ImageConverter = Callable[[Any], np.ndarray]


def make_image_converter(
    max_pixels: int, compressed: bool, cv_bridge_module: Any = None
) -> tuple[ImageConverter, str]:
    """The function that turns one camera message into ``[H, W, 3]`` uint8 RGB, and its name for logs.

    ``cosmos_ros.images`` handles the encodings cameras send to a policy (``SUPPORTED_ENCODINGS``: 8-bit
    RGB/BGR/mono, YUV 4:2:2 and NV12/NV21, 8-bit Bayer, mono16; jpeg/png/tiff/bmp/webp) with cv_bridge's
    semantics, with the same checks (step, size, pixel limit) on every path. Where cv_bridge is importable it
    converts what ``cosmos_ros.images`` refuses as an unsupported raw encoding (16-bit colour or Bayer, ...);
    the pixel limit is checked before it runs. A cv_bridge failure is a
    rejection with reason ``encoding``, never an exception out of the callback.

    Args:
        max_pixels: Pixel limit (``max_image_pixels``).
        compressed: Messages are ``CompressedImage`` (decoded by ``cosmos_ros.images`` only).
        cv_bridge_module: For tests; default: ``import cv_bridge`` if possible.
    """
    if compressed:
        return (
            lambda msg: compressed_msg_to_rgb(msg, max_pixels=max_pixels)
        ), "cosmos_ros.images (compressed)"
    if cv_bridge_module is None:
        try:
            cv_bridge_module = importlib.import_module("cv_bridge")
        except ImportError:
            cv_bridge_module = None
    if cv_bridge_module is None:
        return (lambda msg: image_msg_to_rgb(msg, max_pixels=max_pixels)), "cosmos_ros.images"
    bridge = cv_bridge_module.CvBridge()

    def convert(msg: Any) -> np.ndarray:
        try:
            return image_msg_to_rgb(msg, max_pixels=max_pixels)
        except ImageError as exc:
            if exc.reason != "encoding":
                raise
        if int(msg.height) * int(msg.width) > max_pixels:
            raise ImageError("too_large", f"{msg.width}x{msg.height} image has more than {max_pixels} pixels")
        try:
            out = np.asarray(bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception as exc:  # cv_bridge raises CvBridgeError, TypeError or ValueError
            raise ImageError("encoding", f"cv_bridge cannot convert {msg.encoding!r} to rgb8: {exc}") from exc
        if (
            out.ndim != 3
            or out.shape[2] != 3
            or out.dtype != np.uint8
            or out.shape[0] < 1
            or out.shape[1] < 1
        ):
            raise ImageError("encoding", f"cv_bridge returned {out.shape} {out.dtype} for {msg.encoding!r}")
        return out

    return convert, "cosmos_ros.images + cv_bridge"


# ----------------------------------------------------------------------------------------------------------
# The node
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """What the worker plans on: one synchronised frame set."""

    frame_set: FrameSet


@dataclass(frozen=True)
class _Outcome:
    """A finished inference and the node-clock facts about it that the delivered plan reports."""

    result: Any
    started_node_s: float
    expected_latency_s: float | None
    prefix_steps: int


class PlannerNode(LifecycleNode):
    """See the module docstring. Construct, then drive the lifecycle (``main`` does with ``autostart``)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.counters = Counters()
        self.plan_window = RateWindow(size=20)
        # Inference latency on the node clock (sim time under use_sim_time), start -> result: what the early
        # trigger and the prefix size plan for. Kept across reconfigure on purpose: the hardware did not
        # change.
        self.latency = LatencyEstimator(window=20)
        self._next_plan_id = 1  # never reset: ids must increase across reconfigure (safety node checks)
        # A restarted process gets a larger session id (wall clock), so the safety node accepts its fresh
        # plan_id sequence and refuses plans of the old instance (ActionSequence.planner_session_id).
        self._session_id = time.time_ns()
        self._configured = False
        self.finalized = False  # set by on_shutdown; main() then ends the process (nodes/spin.py)
        self._active = False
        self._reset_resources()

    def _reset_resources(self) -> None:
        self.config: PlannerConfig | None = None
        self.runtime: Any = None
        self.worker: InferenceWorker[_Job, Any] | None = None
        self.frames: FrameBuffer | None = None
        self._throttle = LogThrottle(5.0)
        self._subs: list[Any] = []
        self._pub_plan: Any = None
        self._pub_frames: Any = None
        self._pub_path: Any = None
        self._pub_diag: Any = None
        self._pub_state: Any = None
        self._diag_timer: Any = None
        self._converters: dict[str, ImageConverter] = {}
        self._camera_watch: CameraWatch | None = None  # silent camera topics (cosmos_ros.camera_watch)
        self._camera_subs: dict[str, Any] = {}
        self._camera_timer: Any = None
        self._camera_bad: dict[str, bool] = {}
        self._last_frames_pub_s = -math.inf
        self._last_diag_errors = 0
        # The newest published plan, as the early trigger and prefix conditioning see it; replaced (never
        # mutated) by the worker thread, read by it too, so one reference swap is enough.
        self._executing: tuple[ChunkTiming, ExecutingChunk] | None = None
        self.warmup_latency_s: float | None = None

    # ---- parameters --------------------------------------------------------------------------------------
    def _get_param(self, name: str) -> Any:
        """The parameter's value, ``None`` for the ones declared without a default and not given."""
        try:
            p = self.get_parameter(name)
        except ParameterUninitializedException:
            return None
        return None if p.type_ == Parameter.Type.NOT_SET else p.value

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        # use_sim_time belongs to rclpy's clock, not to the configuration: it may change at any time.
        read_at_configure = [p.name for p in params if p.name != "use_sim_time"]
        if self._configured and read_at_configure:
            names = ", ".join(read_at_configure)
            return SetParametersResult(
                successful=False,
                reason=f"planner is configured; parameters ({names}) are read at configure: deactivate and "
                "clean up first",
            )
        return SetParametersResult(successful=True)

    # ---- lifecycle -----------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return self._configure()
        except Exception as exc:  # a bug here must end in FAILURE with its message, not a silent ERROR
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE

    def _configure(self) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            cfg = config_from_parameters(self._get_param)
        except (ValueError, TypeError) as exc:
            log.error(f"configure failed: invalid parameters: {exc}")
            return TransitionCallbackReturn.FAILURE
        try:
            # Before the model: a misspelt action space fails in milliseconds, named as what it is, not after
            # a model load or as a missing file.
            load_profile(cfg.action_space)
        except (UnknownProfileError, FileNotFoundError, ValueError) as exc:
            log.error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        try:
            t0 = time.monotonic()
            runtime = self._make_runtime(cfg)
        except Exception as exc:  # loader, profile, backend import: all end configure with their message
            source = (
                f"policy server {cfg.server_address!r}" if cfg.backend == "server" else repr(cfg.model_path)
            )
            log.error(f"configure failed: cannot load the policy from {source}: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        profile = runtime.profile
        if cfg.backend == "server":
            served = runtime.backend.info
            where = f"policy server {cfg.server_address} ({served.backend}, {served.device}, {served.dtype})"
        else:
            where = f"{cfg.model_path} ({cfg.backend}, {cfg.device}, {cfg.dtype})"
        log.info(
            f"loaded {where} in {time.monotonic() - t0:.2f} s; "
            f"action space {profile.name} ({profile.domain_name}, axes {list(profile.axis_names)}, "
            f"frame {cfg.frame_id or profile.frame_id})"
        )
        if getattr(profile, "stats_are_placeholder", False):
            log.warning(
                f"action-space profile {profile.name!r} has PLACEHOLDER de-normalisation statistics: "
                "plans are not in the robot's real units until they are replaced"
            )
        if "TINY_RANDOM_MODEL" in " ".join(_listdir(cfg.model_path)):
            log.warning("this is a tiny random-weight test model: its plans mean nothing")
        if cfg.options.decode_video is False and cfg.publish_predicted_frames:
            log.warning("publish_predicted_frames is on but decode_video is off: no frames will be published")
        refusal = _prefix_refusal(cfg, runtime)
        if refusal:
            log.error(f"configure failed: {refusal}")
            if cfg.backend == "server":
                runtime.backend.close()
            return TransitionCallbackReturn.FAILURE
        if cfg.warmup:
            self._warm_up(runtime, cfg)

        self.config = cfg
        self.runtime = runtime
        self._throttle = LogThrottle(cfg.log_throttle_s)
        self.frames = FrameBuffer(
            FrameBufferConfig(cameras=cfg.used_cameras, sync_tolerance_s=cfg.stamp_tolerance_s)
        )
        self._camera_bad = dict.fromkeys(cfg.used_cameras, False)
        self._create_publishers(cfg, profile)
        self._create_subscriptions(cfg)
        self.worker = InferenceWorker(
            self._run_job,
            self._deliver,
            self._on_worker_error,
            WorkerConfig(max_plan_rate_hz=cfg.max_plan_rate_hz),
            counters=self.counters,
            start_policy=self._start_decision,
            on_deferred=self._on_deferred,
        )
        self.worker.start()
        self._configured = True
        return TransitionCallbackReturn.SUCCESS

    def _warm_up(self, runtime: Any, cfg: PlannerConfig) -> None:
        """One inference on a grey frame (the ``warmup`` parameter).

        Why: the first call pays one-off costs (lazy initialisation, kernel selection, the fast backend's
        compile and CUDA graph capture) that would make the first real plan arrive stale. Its wall time is
        also the first latency figure the configure-time check can use; it is an upper estimate (it includes
        those costs), so it is logged, not fed to the latency estimator. A failure is a warning, not a failed
        configure: a stand-in model (the sim's scripted expert) may refuse a grey frame and a made-up goal
        that real input would not be.
        """
        log = self.get_logger()
        grey = np.full((480, 640, 3), 128, dtype=np.uint8)
        t0 = time.perf_counter()
        try:
            runtime.plan(grey, "warm-up")
        except Exception as exc:
            log.warning(
                f"warm-up inference failed ({type(exc).__name__}: {exc}); the first plan pays the first-call "
                "costs and no latency check ran at configure"
            )
            return
        self.warmup_latency_s = time.perf_counter() - t0
        period = 1.0 / (cfg.options.fps or runtime.profile.action_rate_hz)
        log.info(f"warm-up inference: {self.warmup_latency_s:.3f} s (wall clock, includes first-call costs)")
        for text in latency_warnings(
            self.warmup_latency_s,
            cfg.options.chunk_size,
            period,
            cfg.latency_warn_fraction,
            cfg.safety_staleness_limit_s,
        ):
            log.warning(f"at configure: {text}")

    def _node_now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _start_decision(self) -> StartDecision:
        """The worker's start policy: the early trigger on the node clock (cosmos_ros.latency)."""
        cfg, executing = self.config, self._executing
        if cfg is None:
            return StartDecision.RATE_LIMITED
        timing = executing[0] if executing is not None else None
        return decide_start(self._node_now(), timing, self.latency.expected_s(), cfg.trigger)

    def _make_runtime(self, cfg: PlannerConfig) -> Any:
        """Load the policy (``PolicyRuntime.from_config``); raises with the loader's message on failure.

        A method so the overhead benchmark (``cosmos_ros.tools.bench_planner_node``) can put a stand-in model
        behind the real node; nothing in the node itself ever replaces it.
        """
        from cosmos_ros.runtime.policy import PolicyRuntime

        backend_options = cfg.factory_options()  # precision, for the backends that take one
        if cfg.backend == "server":
            backend_options = dict(
                address=cfg.server_address,
                connect_timeout_s=cfg.server_connect_timeout_s,
                call_timeout_s=cfg.server_call_timeout_s,
                client_name=self.get_fully_qualified_name(),
            )
        return PolicyRuntime.from_config(
            cfg.model_path,
            device=cfg.device,
            dtype=cfg.dtype,
            profile=cfg.action_space,
            backend=cfg.backend,
            options=cfg.options,
            backend_options=backend_options,
        )

    def _server_backend(self) -> Any:
        """The ``server`` backend's client (``RemotePolicyBackend``), or None with any other backend."""
        if self.config is None or self.config.backend != "server" or self.runtime is None:
            return None
        return self.runtime.backend

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.worker is not None and self.frames is not None
        self.frames.clear()  # never plan on a frame that arrived before activation
        if self._camera_watch is not None:
            self._camera_watch.reset()
        self._active = True
        self.worker.set_active(True)
        self.get_logger().info(
            f"active: planning on {list(self.config.used_cameras) if self.config else []} "
            f"(goal: {self.worker.goal!r})"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        if self.worker is not None:
            self.worker.set_active(False)
        self.get_logger().info("inactive: planning stopped")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: model released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.finalized = True
        self.get_logger().info("finalized (lifecycle shutdown): exiting")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"lifecycle error in state {state.label}; releasing resources")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Release what configure made (worker, entities, model) before the node goes."""
        self._release()
        super().destroy_node()

    def _release(self) -> None:
        """Stop the worker, destroy entities, drop the model. Idempotent."""
        self._active = False
        # Short wait: a launch escalates SIGINT to SIGTERM after 5 s. A running inference cannot be
        # interrupted;
        # its (daemon) thread finishes it later and the result is discarded.
        if self.worker is not None and not self.worker.stop(timeout_s=3.0):
            self.get_logger().warning("inference still running after 3 s; its result will be discarded")
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in (self._pub_plan, self._pub_frames, self._pub_path, self._pub_diag, self._pub_state):
            if pub is not None:
                self.destroy_publisher(pub)
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
        if self._camera_timer is not None:
            self.destroy_timer(self._camera_timer)
        self._configured = False
        remote = self._server_backend()
        if remote is not None:  # its channel and shared-memory segment
            remote.close()
        self._reset_resources()  # drops the runtime (model) reference

    # ---- entities ------------------------------------------------------------------------------------------
    def _create_publishers(self, cfg: PlannerConfig, profile: Any) -> None:
        reliable = QoSProfile(
            depth=10,
            reliability=QoSReliabilityPolicy.RELIABLE,
            durability=QoSDurabilityPolicy.VOLATILE,
            history=QoSHistoryPolicy.KEEP_LAST,
        )
        self._pub_plan = self.create_publisher(ActionSequence, "action_sequence", reliable)
        if cfg.publish_predicted_frames and cfg.options.decode_video:
            self._pub_frames = self.create_publisher(Image, "~/predicted_frames", qos_profile_sensor_data)
        if cfg.publish_ee_path:
            if profile.is_pose_space:
                self._pub_path = self.create_publisher(Path, "~/ee_path", reliable)
            else:
                self.get_logger().warning(
                    f"publish_ee_path is on but action space {profile.name!r} has no end-effector pose"
                )
        if cfg.publish_state:
            state_qos = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
            self._pub_state = self.create_publisher(PlannerState, "planner_state", state_qos)
        if cfg.publish_diagnostics:
            self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", reliable)
            self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)

    def _create_subscriptions(self, cfg: PlannerConfig) -> None:
        self._subs.append(
            self.create_subscription(String, cfg.goal_topic, self._on_goal_and_report, GOAL_QOS)
        )
        flags = dict(zip(cfg.camera_topics, cfg.compressed, strict=True))
        for topic in cfg.used_cameras:
            converter, how = make_image_converter(cfg.max_image_pixels, flags[topic])
            self._converters[topic] = converter
            msg_type = CompressedImage if flags[topic] else Image
            sub = self.create_subscription(
                msg_type, topic, lambda msg, t=topic: self._on_image(t, msg), qos_profile_sensor_data
            )
            self._subs.append(sub)
            self._camera_subs[topic] = sub
            self.get_logger().info(f"camera {topic!r}: {msg_type.__name__}, converted by {how}")
        period = min(1.0, cfg.camera_timeout_s / 2)
        watch = CameraWatchConfig(cfg.camera_timeout_s, repeat_s=cfg.log_throttle_s, max_step_s=2 * period)
        self._camera_watch = CameraWatch(cfg.used_cameras, watch)
        self._camera_timer = self.create_timer(period, self._check_cameras)

    def _check_cameras(self) -> None:
        """Timer: warn about camera topics without messages, with what the graph shows (see camera_watch)."""
        if not self._active or self._camera_watch is None or self.config is None:
            return
        flags = dict(zip(self.config.camera_topics, self.config.compressed, strict=True))
        for silence in self._camera_watch.tick(self.get_clock().now().nanoseconds / 1e9):
            sub = self._camera_subs[silence.topic]
            pubs = [
                PublisherView(
                    f"{i.node_namespace.rstrip('/')}/{i.node_name}",
                    i.topic_type,
                    i.qos_profile.reliability == QoSReliabilityPolicy.RELIABLE,
                )
                for i in self.get_publishers_info_by_topic(sub.topic_name)
            ]
            expected = f"sensor_msgs/msg/{sub.msg_type.__name__}"
            named = dataclasses.replace(silence, topic=sub.topic_name)  # the resolved name, as remapped
            self.get_logger().warning(describe_silence(named, pubs, expected, flags[silence.topic]))

    # ---- callbacks (executor thread; never wait for inference) ---------------------------------------------
    def _on_goal(self, msg: String) -> None:
        if self.worker is None or self.config is None:
            return
        goal = msg.data
        if len(goal) > self.config.max_goal_length:
            # The sender meant to replace the task; carrying on with the previous goal would act on a goal the
            # operator withdrew, so a rejected goal stops planning like an empty one.
            self.counters.add(REJECTED_GOAL_TOO_LONG)
            self.worker.set_goal("")
            self._log_throttled(
                REJECTED_GOAL_TOO_LONG,
                f"goal rejected: {len(goal)} characters, more than "
                f"max_goal_length={self.config.max_goal_length}; "
                "planning stopped until a valid goal arrives",
            )
            return
        if not goal.strip():
            goal = ""  # whitespace only is no instruction: stop, as for an empty goal
        if self.worker.set_goal(goal):
            if goal:
                self.get_logger().info(f"goal: {goal!r}")
            else:
                self.get_logger().info("empty goal: planning stopped")

    def _on_image(self, topic: str, msg: Any) -> None:
        if not self._active or self.worker is None or self.frames is None:
            return
        if self._camera_watch is not None:
            self._camera_watch.arrived(topic)
        now = time.monotonic()
        try:
            rgb = self._converters[topic](msg)
        except ImageError as exc:
            self._camera_bad[topic] = True
            cause = f"rejected_image_{exc.reason}"
            self.counters.add(cause)
            self._log_throttled(cause, f"image on {topic!r} rejected ({exc.reason}): {exc}")
            return
        except Exception as exc:  # a converter bug must not kill the node either
            self._camera_bad[topic] = True
            self.counters.add("rejected_image_other")
            self._log_throttled(
                "rejected_image_other", f"image on {topic!r} failed: {type(exc).__name__}: {exc}"
            )
            return
        self._camera_bad[topic] = False
        self.frames.push(topic, time_to_sec(msg.header.stamp), rgb, now)
        if any(self._camera_bad.values()):
            # Another camera's newest message was rejected: a set would mix in its older frame.
            self.counters.add(REJECTED_SET_WITH_BAD_IMAGE)
            return
        result = self.frames.take_set(now_s=None)
        if result.frame_set is not None:
            if self._pub_state is not None and not self.worker.goal:
                # The worker ignores it; say so, or a lockstep simulator would wait for a plan.
                self._report(PlannerState.EVENT_DONE, result.frame_set.newest_stamp_s, detail="no_goal")
            self.worker.submit(_Job(result.frame_set))

    # ---- worker thread ----------------------------------------------------------------------------------
    def _run_job(self, job: _Job, goal: str) -> Any:
        cfg = self.config
        runtime = self.runtime
        if cfg is None or runtime is None:
            raise RuntimeError("planner is not configured")
        image = self._prepare_image(job, cfg)
        started = self._node_now()
        expected = self.latency.expected_s()
        prefix = self._prefix_for(job, cfg, runtime, started, expected)
        # Without a prefix, the plain call: stand-in runtimes (the sim's scripted expert) take no prefix.
        result = runtime.plan(image, goal) if prefix is None else runtime.plan(image, goal, prefix=prefix)
        # Emulated latency (lockstep simulation) is held here, so the node-clock latency includes it.
        self._hold_for_latency(job, goal, cfg)
        return _Outcome(result, started, expected, prefix.frozen_steps if prefix is not None else 0)

    def _prefix_for(
        self, job: _Job, cfg: PlannerConfig, runtime: Any, started: float, expected: float | None
    ) -> Any:
        """The prefix of the next plan (``cosmos_ros.rtc``), or None when off, unmeasured or no overlap."""
        executing = self._executing
        if cfg.prefix is None or executing is None or expected is None:
            return None
        period = 1.0 / (cfg.options.fps or runtime.profile.action_rate_hz)
        t0 = job.frame_set.newest_stamp_s + runtime.profile.action_delay_s
        return build_prefix(executing[1], t0, period, cfg.options.chunk_size, started + expected, cfg.prefix)

    def _prepare_image(self, job: _Job, cfg: PlannerConfig) -> np.ndarray:
        """The conditioning image of a frame set: tiled (or selected), writable."""
        try:
            image = tile(job.frame_set, cfg.tile_mode)
        except Exception as exc:
            raise _TileError(str(exc)) from exc
        if not image.flags.writeable:
            image = image.copy()  # torch warns on (and may not take) read-only views of message buffers
        return image

    def _deliver(self, job: _Job, goal: str, outcome: _Outcome, timing: WorkTiming) -> None:
        cfg = self.config
        assert cfg is not None and self._pub_plan is not None
        fs, result = job.frame_set, outcome.result
        now = self._node_now()
        self.latency.add(max(0.0, now - outcome.started_node_s))
        stats = self.latency.stats()
        plan = result.to_plan(
            plan_id=self._next_plan_id,
            stamp_s=fs.newest_stamp_s,
            queue_time_s=timing.started_s - fs.newest_received_s,
        )
        plan = dataclasses.replace(
            plan,
            inference_time_s=timing.inference_time_s,
            expected_latency_s=outcome.expected_latency_s or 0.0,
            latency_p95_s=stats.p95_s,
            prefix_steps=outcome.prefix_steps,
            planner_session_id=self._session_id,
        )
        if cfg.frame_id is not None:
            plan = dataclasses.replace(plan, frame_id=cfg.frame_id)
        msg = plan_to_msg(plan)
        self._pub_plan.publish(msg)
        self._report(PlannerState.EVENT_DONE, fs.newest_stamp_s, plan_id=plan.plan_id)
        self._next_plan_id += 1
        self._after_publish(plan, now, stats.p95_s)
        self.counters.add(PLANS_PUBLISHED)
        self.plan_window.add(timing.finished_s, timing.inference_time_s)
        if self._pub_path is not None:
            self._publish_path(plan, msg)
        if self._pub_frames is not None and result.video is not None:
            self._publish_frames(plan, result.video, timing.finished_s)

    def _after_publish(self, plan: Any, now: float, p95_s: float) -> None:
        """Remember the plan for the trigger and the next prefix; count and explain plans that came late."""
        cfg = self.config
        assert cfg is not None
        timing = ChunkTiming(plan.t0_s, plan.step_period_s, plan.num_steps)
        raw = plan.raw_actions if plan.raw_actions is not None else np.zeros((plan.num_steps, 1), np.float32)
        self._executing = (timing, ExecutingChunk(plan.t0_s, plan.step_period_s, np.asarray(raw)))
        if timing.steps_left(now) == 0:
            self.counters.add(PLANS_LATE)
            self._log_throttled(
                PLANS_LATE,
                f"plan {plan.plan_id} published {now - plan.stamp_s:.3f} s after its frame: all "
                f"{plan.num_steps} steps are already past (the safety node will reject it)",
            )
        for text in latency_warnings(p95_s, plan.num_steps, plan.step_period_s, cfg.latency_warn_fraction):
            self._log_throttled("latency_budget", text)

    def _on_deferred(self, job: _Job) -> None:
        """The start policy declined this frame set: the executing plan still covers the expected latency.
        Answered like any other frame set, so a lockstep simulator carries on."""
        self._report(PlannerState.EVENT_DONE, job.frame_set.newest_stamp_s, detail="deferred")

    def _on_worker_error(self, stage: str, job: _Job, exc: BaseException) -> None:
        if isinstance(exc, _TileError):
            cause = TILE_ERROR
        elif isinstance(exc, ServerError):
            cause = SERVER_ERROR
        else:
            cause = MODEL_ERROR if stage == "run" else PUBLISH_ERROR
        self.counters.add(cause)
        self._report(PlannerState.EVENT_DONE, job.frame_set.newest_stamp_s, detail=cause)
        self._log_throttled(
            cause,
            f"{cause}: {type(exc).__name__}: {exc} (frame set at {job.frame_set.newest_stamp_s:.3f} s); "
            "no plan published, planning continues with the next frame set",
            error=True,
        )

    # ---- lockstep reports and emulated latency (cosmos_ros/sim/lockstep.py) -------------------------------
    def _on_goal_and_report(self, msg: String) -> None:
        self._on_goal(msg)
        if self._pub_state is not None and self.worker is not None:
            self._report(PlannerState.EVENT_GOAL, None, goal=self.worker.goal)

    def _report(
        self, event: int, frame_stamp_s: float | None, *, plan_id: int = 0, detail: str = "", goal: str = "",
        release_at_ns: int = 0,
    ) -> None:  # fmt: skip
        if self._pub_state is None:
            return
        msg = PlannerState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.event, msg.plan_id, msg.detail, msg.goal = event, plan_id, detail, goal
        if frame_stamp_s is not None:
            msg.frame_stamp = _ns_to_time(round(frame_stamp_s * 1e9))
        msg.release_at = _ns_to_time(release_at_ns)
        self._pub_state.publish(msg)

    def _hold_for_latency(self, job: _Job, goal: str, cfg: PlannerConfig) -> None:
        """Worker thread: hold a result until the node clock is ``emulated_latency_s`` past its frame.

        While held the worker is busy, as it would be with a model that slow: newer frames wait (latest only).
        A goal change or deactivation ends the hold (the worker then discards the result).
        """
        if cfg.emulated_latency_s <= 0:
            return
        stamp_ns = round(job.frame_set.newest_stamp_s * 1e9)
        release_ns = stamp_ns + round(cfg.emulated_latency_s * 1e9)
        self._report(PlannerState.EVENT_HELD, job.frame_set.newest_stamp_s, release_at_ns=release_ns)
        while self.get_clock().now().nanoseconds < release_ns:
            if not self._active or self.worker is None or self.worker.goal != goal:
                self._report(PlannerState.EVENT_DONE, job.frame_set.newest_stamp_s, detail="discarded")
                return
            time.sleep(0.001)  # polls the (sim) clock; the hold is measured on it, not on this sleep

    # ---- debug outputs -------------------------------------------------------------------------------------
    def _publish_path(self, plan: Any, msg: Any) -> None:
        path = Path()
        path.header.stamp = msg.trajectory.header.stamp
        path.header.frame_id = plan.frame_id
        for k, pose in enumerate(msg.ee_poses.poses):
            ps = PoseStamped()
            ps.header.frame_id = plan.frame_id
            ps.header.stamp = sec_to_time(plan.step_time(k))
            ps.pose = pose
            path.poses.append(ps)
        self._pub_path.publish(path)

    def _publish_frames(self, plan: Any, video: np.ndarray, now: float) -> None:
        cfg = self.config
        assert cfg is not None
        if now - self._last_frames_pub_s < 1.0 / cfg.predicted_frames_max_rate_hz:
            return
        self._last_frames_pub_s = now
        for k, frame in enumerate(np.asarray(video)):
            fields = rgb_to_image_fields(np.ascontiguousarray(frame))
            img = Image()
            img.header.stamp = sec_to_time(plan.stamp_s + k * plan.step_period_s)
            img.header.frame_id = "predicted"
            img.height, img.width, img.encoding = fields.height, fields.width, fields.encoding
            img.is_bigendian, img.step, img.data = fields.is_bigendian, fields.step, fields.data
            self._pub_frames.publish(img)

    def diagnostics_status(self) -> DiagnosticStatus:
        """The planner's status: counters, inference time, plan rate (also used by tests)."""
        now = time.monotonic()
        remote = self._server_backend()
        watch = self._camera_watch
        result = planner_diagnostics(
            PlannerSnapshot(
                counts=self.counters.snapshot(),
                active=self._active,
                goal=self.worker.goal if self.worker else "",
                plan_rate_hz=self.plan_window.rate_hz(now),
                inference_last_s=self.plan_window.last_duration_s(),
                inference_mean_s=self.plan_window.mean_duration_s(),
                latency=self.latency.stats(),
                warmup_latency_s=self.warmup_latency_s,
                next_plan_id=self._next_plan_id,
                frames=self.frames.stats() if self.frames is not None else None,
                server=remote.stats() if remote is not None else None,
                silent_cameras=watch.silent() if watch is not None and self._active else (),
                last_errors=self._last_diag_errors,
            )
        )
        self._last_diag_errors = result.errors
        hardware_id = self.config.model_path if self.config else ""
        return report_to_status(result.report, f"{self.get_name()}: planner", hardware_id)

    def _publish_diagnostics(self) -> None:
        if self._pub_diag is None:
            return
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [self.diagnostics_status()]
        self._pub_diag.publish(arr)

    def _log_throttled(self, cause: str, text: str, error: bool = False) -> None:
        suppressed = self._throttle.check(cause, time.monotonic())
        if suppressed is None:
            return
        if suppressed:
            text += f" ({suppressed} more of this cause since the last report)"
        # Two call sites on purpose: rclpy caches a logging call site's severity and raises if it changes.
        if error:
            self.get_logger().error(text)
        else:
            self.get_logger().warning(text)


def _prefix_refusal(cfg: PlannerConfig, runtime: Any) -> str:
    """Why prefix conditioning cannot run with this runtime ('' when it can, or when it is off)."""
    if cfg.prefix is None:
        return ""
    profile = runtime.profile
    if getattr(profile, "semantics", "absolute") != "absolute":
        return (
            f"prefix_conditioning needs an absolute action space; {profile.name!r} is a delta profile, whose "
            "normalised actions depend on the reference state"
        )
    if cfg.backend == "server" and runtime.backend.info.backend not in PREFIX_BACKENDS:
        return (
            f"prefix_conditioning needs a policy server running backend one of {PREFIX_BACKENDS}; "
            f"{cfg.server_address} runs {runtime.backend.info.backend!r}"
        )
    return ""


def _ns_to_time(ns: int) -> Any:
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class _TileError(RuntimeError):
    """Tiling a frame set failed (counted apart from model errors)."""


def _listdir(path: str) -> list[str]:
    import os

    try:
        return os.listdir(path)
    except OSError:
        return []


def main(args: list[str] | None = None, node_class: type[PlannerNode] | None = None) -> int:
    """Entry point (``ros2 run cosmos_ros planner_node``). Returns the process exit code.

    Exit codes (:func:`~cosmos_ros.nodes.spin.run_nodes`): 0 after a normal shutdown (Ctrl-C, ``ros2
    lifecycle set ... shutdown`` or external), 1 when ``autostart`` is on and configure/activate fails (the
    reason is logged at ERROR), 2 when the parameters cannot even be declared (a value of the wrong type or
    out of range on the command line / params file).
    """
    return run_nodes(lambda: [(node_class or PlannerNode)()], name=NODE_NAME, args=args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
