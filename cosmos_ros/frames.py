"""Latest-frame bookkeeping and multi-camera tiling for the planner (no rclpy).

Why only the latest frame: one policy call takes far longer than a camera period, so a queue of frames would
only add latency. Each camera keeps its newest frame; a frame replaced before any plan used it is dropped and
counted (the planner reports the count in diagnostics). The worker takes a *set* (one frame per configured
camera) whose capture stamps lie within a tolerance of the newest one, so a tiled ``concat_view`` image never
mixes views from moments far apart.

Threading: camera callbacks call :meth:`FrameBuffer.push` on one thread while the inference worker calls
:meth:`FrameBuffer.take_set` on another. Every method reads and replaces the shared state under one lock;
nothing is copied out and written back later, so an update can never be lost. Time is passed in (``now_s``)
so tests decide the clock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Why no set could be formed; stable strings for diagnostics.
SET_REASONS: tuple[str, ...] = (
    "no_frames",  # nothing received yet
    "missing_camera",  # at least one configured camera has not sent a frame
    "out_of_sync",  # some frame is older than newest - tolerance
    "stale",  # the newest frame is older than max_age_s at now_s
    "not_new",  # take_set: every frame of the set was already in a set taken before
)

TILE_MODES: tuple[str, ...] = ("horizontal", "vertical", "grid", "select")


@dataclass(frozen=True)
class Frame:
    """One camera image.

    Attributes:
        camera: Configured camera name (e.g. the topic).
        stamp_s: Capture time from the message header (seconds).
        image: ``[H, W, 3]`` uint8 RGB.
        received_s: When the callback received it (the clock passed to ``push``), for queue-time accounting.
    """

    camera: str
    stamp_s: float
    image: np.ndarray = field(compare=False)
    received_s: float = 0.0

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(
                f"image must be a [H, W, 3] uint8 array, got shape {getattr(img, 'shape', None)} "
                f"dtype {getattr(img, 'dtype', None)}"
            )
        if not math.isfinite(self.stamp_s):
            raise ValueError(f"stamp_s must be finite, got {self.stamp_s}")


@dataclass(frozen=True)
class FrameSet:
    """One frame per configured camera, in configured order, stamps within the sync tolerance."""

    frames: tuple[Frame, ...]

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("frames must not be empty")

    @property
    def newest_stamp_s(self) -> float:
        """Stamp a plan made from this set carries (the newest frame used)."""
        return max(f.stamp_s for f in self.frames)

    @property
    def oldest_stamp_s(self) -> float:
        return min(f.stamp_s for f in self.frames)

    @property
    def newest_received_s(self) -> float:
        return max(f.received_s for f in self.frames)

    def by_camera(self, camera: str) -> Frame:
        """The frame of ``camera``; KeyError naming the cameras present if there is none."""
        for f in self.frames:
            if f.camera == camera:
                return f
        raise KeyError(f"no frame for camera {camera!r}; cameras: {[f.camera for f in self.frames]}")


@dataclass(frozen=True)
class SetResult:
    """What :meth:`FrameBuffer.latest_set` / :meth:`FrameBuffer.take_set` found.

    Attributes:
        frame_set: The set, or None.
        reason: ``""`` when ``frame_set`` is set, else one of :data:`SET_REASONS`.
        detail: Human-readable explanation (which camera, how far apart), for throttled logs.
    """

    frame_set: FrameSet | None
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class FrameBufferConfig:
    """Which cameras make a set and how close in time their frames must be.

    Attributes:
        cameras: Camera names, in the order a tiled image shows them. Unique, non-empty.
        sync_tolerance_s: Every frame of a set must have ``stamp >= newest stamp - sync_tolerance_s``.
        max_age_s: If set, a set whose newest stamp is older than ``now_s - max_age_s`` is refused as stale
            (only checked when ``now_s`` is given). None: no age check.
    """

    cameras: tuple[str, ...]
    sync_tolerance_s: float = 0.05
    max_age_s: float | None = None

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError("cameras must name at least one camera, got ()")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be unique, got {self.cameras}")
        if any(not c for c in self.cameras):
            raise ValueError(f"camera names must be non-empty, got {self.cameras}")
        if not (math.isfinite(self.sync_tolerance_s) and self.sync_tolerance_s >= 0):
            raise ValueError(f"sync_tolerance_s must be a finite number >= 0, got {self.sync_tolerance_s}")
        if self.max_age_s is not None and not (math.isfinite(self.max_age_s) and self.max_age_s > 0):
            raise ValueError(f"max_age_s must be > 0 or None, got {self.max_age_s}")


@dataclass(frozen=True)
class FrameStats:
    """Counters since construction (a snapshot).

    Attributes:
        received: Frames pushed, per camera.
        dropped: Frames replaced by a newer one before any set used them, per camera.
        out_of_order: Frames refused because their stamp was not newer than the one held, per camera.
        sets_taken: Sets handed out by ``take_set``.
    """

    received: dict[str, int]
    dropped: dict[str, int]
    out_of_order: dict[str, int]
    sets_taken: int

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values()) + sum(self.out_of_order.values())


class FrameBuffer:
    """Newest frame per camera; hands out synchronized sets. Thread-safe; see the module docstring."""

    def __init__(self, config: FrameBufferConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._latest: dict[str, Frame] = {}
        self._used: set[str] = set()  # cameras whose held frame went into a taken set
        self._received = dict.fromkeys(config.cameras, 0)
        self._dropped = dict.fromkeys(config.cameras, 0)
        self._out_of_order = dict.fromkeys(config.cameras, 0)
        self._sets_taken = 0

    def push(self, camera: str, stamp_s: float, image: np.ndarray, now_s: float) -> bool:
        """Offer a frame; keep it if it is newer than the one held for ``camera``.

        Returns:
            True if kept; False if refused as out of order (stamp not newer than the frame held), counted.

        Raises:
            ValueError: ``camera`` is not configured, or the image/stamp is malformed (the caller converts
                messages first, so this is a programming error, not bad input from the wire).
        """
        if camera not in self._received:
            raise ValueError(f"camera {camera!r} is not configured; cameras: {list(self.config.cameras)}")
        frame = Frame(camera, float(stamp_s), image, float(now_s))
        with self._lock:
            self._received[camera] += 1
            held = self._latest.get(camera)
            if held is not None and frame.stamp_s <= held.stamp_s:
                self._out_of_order[camera] += 1
                return False
            if held is not None and camera not in self._used:
                self._dropped[camera] += 1
            self._latest[camera] = frame
            self._used.discard(camera)
            return True

    def latest_set(self, now_s: float | None = None, tolerance_s: float | None = None) -> SetResult:
        """The newest synchronized set, without marking it used.

        Args:
            now_s: Current time; enables the ``max_age_s`` check.
            tolerance_s: Overrides ``config.sync_tolerance_s`` for this call.
        """
        with self._lock:
            return self._select(now_s, tolerance_s)

    def take_set(self, now_s: float | None = None, tolerance_s: float | None = None) -> SetResult:
        """Like :meth:`latest_set`, but marks the set used: no set is handed out twice.

        A set is new when at least one of its frames has not been in a set taken before (a slow camera's
        frame may appear in several sets; a lagging camera catching up makes a new set even if its stamp is
        not the newest).
        """
        with self._lock:
            result = self._select(now_s, tolerance_s)
            fs = result.frame_set
            if fs is None:
                return result
            if all(f.camera in self._used for f in fs.frames):
                return SetResult(
                    None, "not_new", f"every frame (newest {fs.newest_stamp_s:.6f} s) was already used"
                )
            self._used.update(f.camera for f in fs.frames)
            self._sets_taken += 1
            return result

    def stats(self) -> FrameStats:
        """A snapshot of the counters."""
        with self._lock:
            return FrameStats(
                dict(self._received), dict(self._dropped), dict(self._out_of_order), self._sets_taken
            )

    def clear(self) -> None:
        """Forget held frames (e.g. on deactivate) so a later set never mixes old and new.

        Held frames that no set used are counted as dropped; other counters stay.
        """
        with self._lock:
            for camera in self._latest:
                if camera not in self._used:
                    self._dropped[camera] += 1
            self._latest = {}
            self._used = set()

    def _select(self, now_s: float | None, tolerance_s: float | None) -> SetResult:
        # Caller holds the lock.
        tol = self.config.sync_tolerance_s if tolerance_s is None else tolerance_s
        if not (math.isfinite(tol) and tol >= 0):
            raise ValueError(f"tolerance_s must be a finite number >= 0, got {tolerance_s}")
        if not self._latest:
            return SetResult(None, "no_frames", "no frame received yet")
        missing = [c for c in self.config.cameras if c not in self._latest]
        if missing:
            return SetResult(None, "missing_camera", f"no frame yet from {missing}")
        frames = tuple(self._latest[c] for c in self.config.cameras)
        newest = max(f.stamp_s for f in frames)
        late = [f"{f.camera} ({newest - f.stamp_s:.3f} s behind)" for f in frames if f.stamp_s < newest - tol]
        if late:
            return SetResult(None, "out_of_sync", f"frames more than {tol} s older than the newest: {late}")
        max_age = self.config.max_age_s
        if now_s is not None and max_age is not None and now_s - newest > max_age:
            return SetResult(
                None, "stale", f"newest frame is {now_s - newest:.3f} s old (max_age_s {max_age})"
            )
        return SetResult(FrameSet(frames))


@dataclass(frozen=True)
class TileLayout:
    """How several cameras become one conditioning image.

    Cosmos 3's ``concat_view`` only tells the model that the video "contains concatenated views from multiple
    camera perspectives"; it does not fix an arrangement. ``horizontal`` (side by side, the default) is what
    multi-view robot datasets usually concatenate; ``grid`` suits 3-4 cameras when a very wide image would
    waste the resolution tier's canvas.

    Attributes:
        mode: ``horizontal``: side by side, all scaled to the smallest height (aspect kept).
            ``vertical``: stacked, all scaled to the smallest width. ``grid``: rows of ``columns`` images
            scaled to the smallest height; rows narrower than the widest are padded with black on the right.
            ``select``: just ``camera``'s image, unscaled.
        camera: Camera to use in ``select`` mode.
        columns: Grid columns; None: ``ceil(sqrt(n))``.
    """

    mode: str = "horizontal"
    camera: str = ""
    columns: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in TILE_MODES:
            raise ValueError(f"mode must be one of {TILE_MODES}, got {self.mode!r}")
        if self.mode == "select" and not self.camera:
            raise ValueError("camera must name a camera when mode is 'select', got ''")
        if self.columns is not None and self.columns < 1:
            raise ValueError(f"columns must be >= 1 or None, got {self.columns}")


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    if img.shape[0] == height and img.shape[1] == width:
        return img
    import cv2

    # INTER_AREA: we only shrink (to the smallest size), where it avoids aliasing.
    return np.asarray(cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=cv2.INTER_AREA))


def _to_height(img: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(img.shape[1] * height / img.shape[0]))
    return _resize(img, height, width)


def tile(frames: FrameSet | Sequence[Frame], layout: TileLayout) -> np.ndarray:
    """Combine the frames of a set into one ``[H, W, 3]`` uint8 image (see :class:`TileLayout`).

    Raises:
        ValueError: No frames, or ``select`` names a camera that is not in ``frames``.
    """
    items = tuple(frames.frames if isinstance(frames, FrameSet) else frames)
    if not items:
        raise ValueError("tile needs at least one frame, got none")
    if layout.mode == "select":
        for f in items:
            if f.camera == layout.camera:
                return f.image
        raise ValueError(f"select camera {layout.camera!r} not among {[f.camera for f in items]}")
    images = [f.image for f in items]
    if len(images) == 1:
        return images[0]
    if layout.mode == "vertical":
        width = min(i.shape[1] for i in images)
        scaled = [_resize(i, max(1, round(i.shape[0] * width / i.shape[1])), width) for i in images]
        return np.ascontiguousarray(np.concatenate(scaled, axis=0))
    height = min(i.shape[0] for i in images)
    scaled = [_to_height(i, height) for i in images]
    if layout.mode == "horizontal":
        return np.ascontiguousarray(np.concatenate(scaled, axis=1))
    cols = layout.columns or math.ceil(math.sqrt(len(scaled)))
    rows = [np.concatenate(scaled[r : r + cols], axis=1) for r in range(0, len(scaled), cols)]
    full = max(r.shape[1] for r in rows)
    out = np.zeros((height * len(rows), full, 3), dtype=np.uint8)
    for k, r in enumerate(rows):
        out[k * height : (k + 1) * height, : r.shape[1]] = r
    return out
