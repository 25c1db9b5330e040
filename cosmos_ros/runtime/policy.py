"""The policy runtime: loader + backend + action-space profile behind one call, ``plan(image, goal)``.

Why one object: the planner node must not know how a checkpoint is loaded, which backend runs it or what the
model's columns mean. It configures a ``PolicyRuntime`` once (everything that can be wrong is rejected there:
model directory, action support, profile, options, backend availability) and then only calls ``plan``.

Backends are chosen by name from ``BACKENDS``, a fixed table of ``name -> (module, factory)``; the
factory is a function ``(pipe, **backend_options) -> PolicyBackend`` in that module. Modules are imported
only when chosen, so a missing optional dependency (TensorRT, say) raises ``ImportError`` with an install
hint only for the user who asked for that backend.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from cosmos_ros.action_space import ActionSpaceProfile, load_profile
from cosmos_ros.plan import Plan
from cosmos_ros.runtime.backend import ActionPrefix, PolicyBackend
from cosmos_ros.runtime.options import PolicyOptions


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives and what to install when its import fails.

    Attributes:
        module: Module to import when the backend is chosen.
        factory: Name of the function ``(pipe, **options) -> PolicyBackend`` in ``module``.
        install_hint: What to install when the import fails.
        remote: The model runs elsewhere (a policy server): nothing is loaded here, and the factory is
            ``(model_path, action_space, domain_name, raw_width, chunk_size, **options) -> PolicyBackend``,
            which connects and checks that the server serves exactly that.
        precisions: Values of :data:`PRECISIONS` the factory takes as ``precision=``; empty: it takes no
            ``precision`` (the model runs in its own dtype, which is what ``bf16`` means).
    """

    module: str
    factory: str
    install_hint: str
    remote: bool = False
    precisions: tuple[str, ...] = ()


# Precision of the generation expert's large linears (cosmos_ros.runtime.fp8): bf16 = the model's own dtype
# (the default), fp8 = e4m3 weights and activations (opt-in). Here, not in fp8.py, so that configuration code
# can name the choices without importing torch.
PRECISIONS = ("bf16", "fp8")


# Read-only: adding a backend is a code change here, reviewed like any other.
BACKENDS: Mapping[str, BackendSpec] = MappingProxyType(
    {
        "diffusers": BackendSpec(
            "cosmos_ros.runtime.diffusers_backend",
            "make_diffusers_backend",
            "pip install -r requirements.txt (torch, diffusers, transformers, accelerate)",
        ),
        "fast": BackendSpec(
            "cosmos_ros.runtime.fast",
            "make_fast_backend",
            "pip install -r requirements.txt (the fast backend needs torch; CUDA for its speed)",
            precisions=PRECISIONS,
        ),
        "tensorrt": BackendSpec(
            "cosmos_ros.runtime.tensorrt_backend",
            "make_tensorrt_backend",
            "pip install tensorrt (x86 GPU) or use JetPack's TensorRT on Jetson",
        ),
        "server": BackendSpec(
            "cosmos_ros.policy_server.client",
            "make_server_backend",
            "pip install grpcio protobuf (the node side needs no torch; see docs/policy_server.md)",
            remote=True,
        ),
    }
)

BackendFactory = Callable[..., PolicyBackend]


def get_backend_factory(name: str) -> BackendFactory:
    """The factory of backend ``name``, importing its module now.

    Raises:
        ValueError: Unknown name (lists the valid names).
        ImportError: The backend's module or one of its dependencies is missing (with an install hint).
    """
    spec = BACKENDS.get(name)
    if spec is None:
        raise ValueError(f"unknown backend {name!r}; valid: {sorted(BACKENDS)}")
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise ImportError(
            f"backend {name!r} is unavailable ({type(exc).__name__}: {exc}); to use it: {spec.install_hint}"
        ) from exc
    factory = getattr(module, spec.factory, None)
    if not callable(factory):
        raise ImportError(f"backend module {spec.module} has no {spec.factory}(pipe, **options) function")
    return factory


@dataclass(frozen=True, eq=False)
class PlanResult:
    """One decoded plan and how it was made.

    Attributes:
        values: ``[T, D]`` float64 physical values (see ``axis_names``).
        axis_names: Names of the D columns (x, y, z, qx, qy, qz, qw, gripper, or joint names + gripper).
        step_period_s: Time between steps (``1 / fps`` told to the model).
        raw_actions: ``[T, W]`` float32 model-normalised actions (W = domain raw width), for logging.
        video: ``[F, H, W, 3]`` uint8 predicted frames when ``decode_video`` was on, else ``None``.
        timings: Seconds per stage (backend stages + ``decode_actions`` + ``plan_total``).
        profile: Action-space profile name.
        frame_id: Frame the values are expressed in.
        action_delay_s: Profile's delay from frame capture to action 0.
        backend: Backend name.
        model_id: Checkpoint path.
        goal: Goal text the plan was conditioned on.
        seed: Noise seed used.
    """

    values: np.ndarray
    axis_names: tuple[str, ...]
    step_period_s: float
    raw_actions: np.ndarray
    video: np.ndarray | None
    timings: dict[str, float]
    profile: str
    frame_id: str
    action_delay_s: float
    backend: str
    model_id: str
    goal: str
    seed: int

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.axis_names):
            raise ValueError(
                f"values shape {self.values.shape} does not match {len(self.axis_names)} axis names"
            )
        if not self.step_period_s > 0:
            raise ValueError(f"step_period_s must be > 0, got {self.step_period_s}")

    def to_plan(
        self,
        plan_id: int,
        stamp_s: float,
        t0_s: float | None = None,
        queue_time_s: float = 0.0,
    ) -> Plan:
        """The ``Plan`` for the safety node; ``t0_s`` defaults to ``stamp_s + action_delay_s``."""
        return Plan(
            plan_id=plan_id,
            stamp_s=stamp_s,
            t0_s=stamp_s + self.action_delay_s if t0_s is None else t0_s,
            step_period_s=self.step_period_s,
            axis_names=self.axis_names,
            values=self.values,
            frame_id=self.frame_id,
            action_space=self.profile,
            goal=self.goal,
            model_id=self.model_id,
            backend=self.backend,
            raw_actions=self.raw_actions,
            inference_time_s=float(self.timings.get("plan_total", 0.0)),
            queue_time_s=queue_time_s,
        )


class PolicyRuntime:
    """A configured policy: ``plan(image, goal) -> PlanResult``. Construct with :meth:`from_config`.

    The constructor does no loading (no side effects): it takes a ready backend, which lets tests and the fast
    path's agreement checks build runtimes around one already-loaded pipeline.
    """

    def __init__(
        self,
        backend: PolicyBackend,
        profile: ActionSpaceProfile,
        options: PolicyOptions | None = None,
        model_id: str = "",
    ) -> None:
        self.backend = backend
        self.profile = profile
        self.options = options if options is not None else PolicyOptions()
        self.model_id = model_id

    @classmethod
    def from_config(
        cls,
        model_path: str | Path,
        device: str = "cpu",
        dtype: str = "float32",
        profile: str | Path | ActionSpaceProfile = "umi_pose_gripper",
        backend: str | BackendFactory = "diffusers",
        options: PolicyOptions | Mapping[str, Any] | None = None,
        backend_options: Mapping[str, Any] | None = None,
        profile_dirs: Iterable[str | Path] | None = None,
        enable_safety_checker: bool | None = None,
    ) -> PolicyRuntime:
        """Validate everything, load the model, build the backend.

        Order matters: the cheap checks (options, profile, backend import) run before the expensive load, so a
        typo costs milliseconds, not a model load.

        Args:
            model_path: Local pipeline directory (see ``cosmos_ros.runtime.loader``).
            device: ``cpu`` or ``cuda[:N]``.
            dtype: ``float32``, ``bfloat16`` or ``float16``.
            profile: Profile name (in ``config/action_spaces``), a YAML path, or a profile object.
            backend: A name in ``BACKENDS`` or a factory ``(pipe, **backend_options) -> PolicyBackend``.
            options: ``PolicyOptions`` or a mapping of its fields.
            backend_options: Keyword arguments for the backend factory.
            profile_dirs: Where to look up profile names (default: the package's config directories).
            enable_safety_checker: Override the checkpoint's Cosmos guardrail setting (``None`` keeps it).

        Raises:
            ValueError: Bad option, profile, device or dtype, or a profile whose width does not match its
                domain.
            cosmos_ros.action_space.UnknownProfileError: Unknown profile name.
            cosmos_ros.runtime.loader.ModelLoadError: Model directory missing/incomplete/corrupt or unusable.
            ImportError: The chosen backend's dependencies are missing.
        """
        opts = (
            options if isinstance(options, PolicyOptions) else PolicyOptions.from_mapping(dict(options or {}))
        )
        prof = profile if isinstance(profile, ActionSpaceProfile) else load_profile(profile, profile_dirs)
        factory = backend if callable(backend) else get_backend_factory(backend)
        if isinstance(backend, str) and BACKENDS[backend].remote:
            # Nothing to load here (and no diffusers to import): the server checks its model against the
            # profile, the client checks the server against this profile at connect.
            remote = factory(
                model_path=str(model_path),
                action_space=prof.name,
                domain_name=prof.domain_name,
                raw_width=prof.raw_width,
                chunk_size=opts.chunk_size,
                **dict(backend_options or {}),
            )
            return cls(backend=remote, profile=prof, options=opts, model_id=str(model_path))
        from cosmos_ros.runtime.loader import domain_raw_width, load_pipeline

        width = domain_raw_width(prof.domain_name)
        if prof.raw_width != width:
            raise ValueError(
                f"profile {prof.name!r} lays out {prof.raw_width} columns but domain {prof.domain_name!r} "
                f"has raw width {width}"
            )
        pipe = load_pipeline(
            model_path,
            device=device,
            dtype=dtype,
            required_width=width,
            enable_safety_checker=enable_safety_checker,
        )
        be = factory(pipe, **dict(backend_options or {}))
        return cls(backend=be, profile=prof, options=opts, model_id=str(model_path))

    def plan(
        self,
        image: np.ndarray,
        goal: str,
        seed: int | None = None,
        reference: Sequence[float] | np.ndarray | None = None,
        prefix: ActionPrefix | None = None,
    ) -> PlanResult:
        """Predict and decode one action chunk.

        Args:
            image: ``[H, W, 3]`` uint8 RGB (cameras already tiled for ``concat_view``).
            goal: Instruction text, non-empty.
            seed: Overrides the configured seed for this call.
            reference: Reference state for delta profiles (see ``ActionSpaceProfile.decode``).
            prefix: Prefix conditioning for this call (``cosmos_ros.rtc.build_prefix``), normalised actions.

        Raises:
            ValueError: Bad image/goal, or decoding failed (incl. ``DegenerateRotationError``).
        """
        t0 = time.perf_counter()
        if not isinstance(goal, str) or not goal.strip():
            raise ValueError(f"goal must be a non-empty string, got {goal!r}")
        request = self.options.request(
            image, goal, self.profile.domain_name, default_fps=self.profile.action_rate_hz, seed=seed
        )
        if prefix is not None:
            request = dataclasses.replace(request, prefix=prefix)
        raw = self.backend.run(request)
        t1 = time.perf_counter()
        axis_names, values = self.profile.decode(raw.actions, reference)
        t2 = time.perf_counter()
        timings = dict(raw.timings)
        timings["decode_actions"] = t2 - t1
        timings["plan_total"] = t2 - t0
        return PlanResult(
            values=values,
            axis_names=axis_names,
            step_period_s=1.0 / request.fps,
            raw_actions=raw.actions,
            video=raw.video,
            timings=timings,
            profile=self.profile.name,
            frame_id=self.profile.frame_id,
            action_delay_s=self.profile.action_delay_s,
            backend=getattr(self.backend, "name", "custom"),
            model_id=self.model_id,
            goal=goal,
            seed=request.seed,
        )


__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "BackendSpec",
    "PlanResult",
    "PolicyOptions",
    "PolicyRuntime",
    "get_backend_factory",
]
