"""What the sim's controllers received and how each episode ended, saved for an independent check.

The sim node appends every tick's accepted setpoint vector (the controllers' input, after the sim's own
refusals) and writes one ``.npz`` per episode. ``eval_closed_loop`` runs ``cosmos_ros.safety.verify`` on
these arrays against ``config/limits/*.yaml``: a check that shares no code with the safety node's limiter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosmos_ros.sim.config import JOINT_NAMES


@dataclass
class EpisodeRecord:
    """One episode: per-tick setpoints (rad / m) as the controllers held them, and the outcome."""

    seed: int
    goal: str
    tick_s: float
    setpoints: list[np.ndarray] = field(default_factory=list)
    measured: list[np.ndarray] = field(default_factory=list)
    # Ticks on which a complete new setpoint arrived (lockstep: every tick once the safety node streams).
    fresh: list[bool] = field(default_factory=list)
    time_to_success_s: float | None = None
    elapsed_s: float = 0.0
    refusals: Counter[str] = field(default_factory=Counter)
    lockstep_timeouts: int = 0
    frames_sent: int = 0
    plans: int = 0
    # Tick index (into ``setpoints``) at which the safety node's decision on a streamed plan arrived: the
    # chunk switches that tools/eval_rtc measures.
    switch_ticks: list[int] = field(default_factory=list)

    def add_tick(self, setpoint: np.ndarray, measured: np.ndarray, fresh: bool) -> None:
        self.setpoints.append(np.asarray(setpoint, dtype=np.float64).copy())
        self.measured.append(np.asarray(measured, dtype=np.float64).copy())
        self.fresh.append(bool(fresh))

    @property
    def success(self) -> bool:
        return self.time_to_success_s is not None

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / f"episode_{self.seed:08d}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        n = len(self.setpoints)
        reasons = sorted(self.refusals)
        np.savez_compressed(
            path,
            seed=np.int64(self.seed),
            goal=np.array(self.goal),
            tick_s=np.float64(self.tick_s),
            joint_names=np.array(JOINT_NAMES),
            setpoints=np.array(self.setpoints).reshape(n, len(JOINT_NAMES)),
            measured=np.array(self.measured).reshape(n, len(JOINT_NAMES)),
            fresh=np.array(self.fresh, dtype=bool),
            time_to_success_s=np.float64(-1.0 if self.time_to_success_s is None else self.time_to_success_s),
            elapsed_s=np.float64(self.elapsed_s),
            refusal_reasons=np.array(reasons, dtype=str),
            refusal_counts=np.array([self.refusals[r] for r in reasons], dtype=np.int64),
            lockstep_timeouts=np.int64(self.lockstep_timeouts),
            frames_sent=np.int64(self.frames_sent),
            plans=np.int64(self.plans),
            switch_ticks=np.array(self.switch_ticks, dtype=np.int64),
        )
        return path


def load_record(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
