"""The planner node's configuration as plain data: its parameters (``schemas/planner_node.yaml``) validated.

Pure (no rclpy): built and tested without a ROS graph. Each parameter's type, range and choices come from the
schema (:mod:`cosmos_ros.parameter_schema`); this module adds only what involves several parameters (a
selected camera among the topics, the backends that can condition on a prefix or run a precision) and the
shape the node uses (nested ``PolicyOptions``, ``TriggerConfig``, ``PrefixConfig``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosmos_ros.frames import TileLayout
from cosmos_ros.latency import TriggerConfig
from cosmos_ros.parameter_schema import ParameterSchema
from cosmos_ros.rtc import PrefixConfig
from cosmos_ros.runtime.options import PolicyOptions
from cosmos_ros.runtime.policy import BACKENDS

SCHEMA = ParameterSchema.load("planner_node")
_D = SCHEMA.default  # dataclass defaults are the schema's, never restated

# torch's device strings this node accepts; a pattern, which the schema format has no validator for.
DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")
PREFIX_BACKENDS = ("fast", "tensorrt")  # backends whose sampler applies an ActionPrefix
# "server" forwards the prefix; configure checks that the server runs one of PREFIX_BACKENDS.
PREFIX_CAPABLE = (*PREFIX_BACKENDS, "server")


@dataclass(frozen=True)
class PlannerConfig:
    """Everything the node reads from its parameters at configure time, validated.

    Attributes are the parameters of ``schemas/planner_node.yaml`` (descriptions and units there), except
    ``options`` / ``trigger`` / ``prefix``, which group parameters for the core. ``fps`` and ``frame_id``
    are ``None`` when not set: the action-space profile provides them. ``compressed`` is resolved to one
    flag per camera topic.
    """

    model_path: str
    device: str = _D("device")
    dtype: str = _D("dtype")
    backend: str = _D("backend")
    precision: str = _D("precision")
    server_address: str = _D("server_address")
    server_connect_timeout_s: float = _D("server_connect_timeout_s")
    server_call_timeout_s: float = _D("server_call_timeout_s")
    action_space: str = _D("action_space")
    options: PolicyOptions = dataclasses.field(default_factory=PolicyOptions)
    camera_topics: tuple[str, ...] = _D("camera_topics")
    compressed: tuple[bool, ...] = (_D("compressed"),)
    camera_timeout_s: float = _D("camera_timeout_s")
    camera_combine: str = _D("camera_combine")
    tile_layout: str = _D("tile_layout")
    selected_camera: str = _D("selected_camera")
    stamp_tolerance_s: float = _D("stamp_tolerance_s")
    goal_topic: str = _D("goal_topic")
    max_plan_rate_hz: float = _D("max_plan_rate_hz")
    warmup: bool = _D("warmup")
    latency_warn_fraction: float = _D("latency_warn_fraction")
    safety_staleness_limit_s: float = _D("safety_staleness_limit_s")
    trigger: TriggerConfig = dataclasses.field(default_factory=TriggerConfig)
    prefix: PrefixConfig | None = None  # None: prefix conditioning off
    max_image_pixels: int = _D("max_image_pixels")
    max_goal_length: int = _D("max_goal_length")
    frame_id: str | None = None
    publish_predicted_frames: bool = _D("publish_predicted_frames")
    predicted_frames_max_rate_hz: float = _D("predicted_frames_max_rate_hz")
    publish_ee_path: bool = _D("publish_ee_path")
    publish_diagnostics: bool = _D("publish_diagnostics")
    diagnostics_period_s: float = _D("diagnostics_period_s")
    log_throttle_s: float = _D("log_throttle_s")
    # Lockstep with a simulator (cosmos_ros/sim/lockstep.py): report on planner_state; emulated latency.
    publish_state: bool = _D("publish_state")
    emulated_latency_s: float = _D("emulated_latency_s")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type, range, choices: the schema's, one message format
            if f.name in SCHEMA.parameters:
                SCHEMA.check(f.name, getattr(self, f.name))
        if not self.model_path:
            raise ValueError("model_path must name a Cosmos 3 pipeline directory, got ''")
        if not DEVICE_RE.match(self.device):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.backend == "server" and not self.server_address:
            raise ValueError("server_address must be unix:///path or host:port with backend 'server', got ''")
        if not self.action_space:
            raise ValueError("action_space must name a profile, got ''")
        if self.frame_id is not None and not self.frame_id:
            raise ValueError("frame_id must be non-empty when set (leave it unset to use the profile's)")
        self._check_cameras()
        self._check_backend_capabilities()

    def _check_cameras(self) -> None:
        if len(self.compressed) != len(self.camera_topics):
            raise ValueError(
                f"compressed must be one bool or one per camera topic ({len(self.camera_topics)}), "
                f"got {len(self.compressed)} values"
            )
        if self.camera_combine == "select" and self.selected_camera not in self.camera_topics:
            raise ValueError(
                f"selected_camera must be one of camera_topics {list(self.camera_topics)} when "
                f"camera_combine is 'select', got {self.selected_camera!r}"
            )
        if self.tiles_views and self.options.view_point != "concat_view":
            raise ValueError(
                f"view_point must be 'concat_view' (or 'auto') when {len(self.camera_topics)} cameras are "
                f"tiled, got {self.options.view_point!r}"
            )

    def _check_backend_capabilities(self) -> None:
        if self.prefix is not None and self.backend not in PREFIX_CAPABLE:
            raise ValueError(
                f"prefix_conditioning needs backend one of {PREFIX_CAPABLE}, got {self.backend!r} (the stock "
                "pipeline's step callback cannot reach its action latents)"
            )
        if self.precision == _D("precision"):
            return  # the model's own dtype: every backend runs it
        able = [name for name, spec in BACKENDS.items() if self.precision in spec.precisions]
        if self.backend not in able:
            raise ValueError(
                f"precision {self.precision!r} needs backend one of {able}, got {self.backend!r}"
                + (" (the policy server's own precision applies)" if self.backend == "server" else "")
            )
        if not self.device.startswith("cuda"):
            # Cheap and certain before any model load; a GPU without FP8 is refused by the backend factory
            # (cosmos_ros.runtime.fp8.Fp8UnsupportedError), which needs torch to ask the device.
            raise ValueError(
                f"precision {self.precision!r} needs a CUDA GPU with FP8 tensor cores (compute capability >= "
                f"8.9), got device {self.device!r}; use precision 'bf16'"
            )

    @property
    def tiles_views(self) -> bool:
        """True when several cameras are combined into one concat_view image."""
        return self.camera_combine == "tile" and len(self.camera_topics) > 1

    @property
    def used_cameras(self) -> tuple[str, ...]:
        """Topics the node subscribes to (the selected one only, in select mode)."""
        return (self.selected_camera,) if self.camera_combine == "select" else self.camera_topics

    @property
    def tile_mode(self) -> TileLayout:
        if self.camera_combine == "select":
            return TileLayout(mode="select", camera=self.selected_camera)
        return TileLayout(mode=self.tile_layout)

    def factory_options(self) -> dict[str, Any]:
        """Keyword arguments for a local backend's factory (``PolicyRuntime.from_config``'s
        ``backend_options``): ``precision`` for the backends that take one (``BackendSpec.precisions``)."""
        return {"precision": self.precision} if BACKENDS[self.backend].precisions else {}


def config_from_parameters(get: Callable[[str], Any]) -> PlannerConfig:
    """Build a :class:`PlannerConfig` from parameter values (``get(name)``; ``None`` = not set).

    Raises:
        ValueError: A value is out of range or inconsistent; the message names the parameter.
    """
    v = SCHEMA.validate(get)
    topics = v["camera_topics"]
    compressed = v["compressed"] if isinstance(v["compressed"], tuple) else (v["compressed"],) * len(topics)
    n_views = 1 if v["camera_combine"] == "select" else len(topics)
    view_point = v["view_point"]
    if view_point == "auto":
        view_point = "concat_view" if n_views > 1 else "ego_view"
    options = PolicyOptions(
        num_inference_steps=v["num_inference_steps"],
        guidance_scale=v["guidance_scale"],
        chunk_size=v["chunk_size"],
        resolution_tier=v["resolution_tier"],
        view_point=view_point,
        fps=v["fps"],
        seed=v["seed"],
        decode_video=v["decode_video"],
    )
    trigger = TriggerConfig(
        early_trigger=v["early_trigger"],
        chunk_size_threshold=v["chunk_size_threshold"],
        early_trigger_margin_steps=v["early_trigger_margin_steps"],
    )
    prefix = (
        PrefixConfig(
            execution_horizon=v["execution_horizon"],
            prefix_attention_schedule=v["prefix_attention_schedule"],
            prefix_strength=v["prefix_strength"],
        )
        if v["prefix_conditioning"]
        else None
    )
    flat = {f.name: v[f.name] for f in dataclasses.fields(PlannerConfig) if f.name in v}
    flat.update(compressed=compressed)
    return PlannerConfig(**flat, options=options, trigger=trigger, prefix=prefix)


__all__ = ["SCHEMA", "PlannerConfig", "config_from_parameters"]
