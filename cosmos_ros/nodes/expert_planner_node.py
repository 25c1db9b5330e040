"""Scripted-expert planner: the planner node with the IK expert as its model (the closed loop's ceiling).

Everything but the model is the real ``PlannerNode``: the same frame handling, worker, plan messages, lockstep
reports and emulated latency, so the expert's plans go through the same safety node by the same path as the
policy's. The "model" reads the object positions from the simulator's ``sim_episode`` topic (ground truth, the
expert is allowed to) and returns the IK target for the object the goal names, held for the whole chunk — the
same chunk the demonstrations teach (``cosmos_ros.sim.demos``, ``hold`` mode).

It acknowledges a goal (lockstep) only once it knows the episode that goal belongs to, so it can never plan
for the previous episode's objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from std_msgs.msg import String

from cosmos_ros.msg import PlannerState, SimEpisode
from cosmos_ros.nodes.planner_node import PlannerConfig, PlannerNode
from cosmos_ros.nodes.planner_node import main as planner_main
from cosmos_ros.nodes.sim_node import LATCHED

NODE_NAME = "planner_node"  # it stands in for the planner: same name, topics and parameters


class ExpertRuntime:
    """``plan(image, goal)`` -> the IK target of the named object, repeated ``chunk_size`` times."""

    def __init__(self, cfg: PlannerConfig, episode: Any) -> None:
        from cosmos_ros.action_space import load_profile
        from cosmos_ros.sim.config import load_sim_config
        from cosmos_ros.sim.demos import make_expert
        from cosmos_ros.sim.scene import PandaSim

        self.profile = load_profile(cfg.action_space)
        self.chunk = cfg.options.chunk_size
        self.step_period_s = 1.0 / (cfg.options.fps or self.profile.action_rate_hz)
        sim = PandaSim(load_sim_config())
        sim.reset(0)
        self.expert = make_expert(sim)
        sim.close()
        self._episode = episode  # () -> the latest SimEpisode message, or None

    def plan(self, image: np.ndarray, goal: str) -> Any:
        from cosmos_ros.runtime.policy import PlanResult
        from cosmos_ros.sim.task import parse_goal

        colour = parse_goal(goal)
        episode = self._episode()
        names = list(episode.object_names) if episode is not None else []
        if colour not in names or episode is None:
            raise ValueError(f"the expert cannot plan {goal!r}: objects known: {names}")
        p = episode.object_positions[names.index(colour)]
        target = self.expert.target_for([p.x, p.y, p.z])
        values = np.repeat(target[None, :], self.chunk, axis=0)
        return PlanResult(
            values=values,
            axis_names=tuple(self.profile.axis_names),
            step_period_s=self.step_period_s,
            raw_actions=np.zeros((self.chunk, 0), dtype=np.float32),
            video=None,
            timings={"plan_total": 0.0},
            profile=self.profile.name,
            frame_id=self.profile.frame_id,
            action_delay_s=0.0,
            backend="scripted_expert",
            model_id="ik_expert",
            goal=goal,
            seed=0,
        )


class ExpertPlannerNode(PlannerNode):
    """The planner node with :class:`ExpertRuntime` as its model (see the module docstring)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._episode: SimEpisode | None = None
        self.create_subscription(SimEpisode, "sim_episode", self._on_episode, LATCHED)

    def _make_runtime(self, cfg: PlannerConfig) -> Any:
        return ExpertRuntime(cfg, lambda: self._episode)

    def _on_episode(self, msg: SimEpisode) -> None:
        self._episode = msg

    def _on_goal_and_report(self, msg: String) -> None:
        episode = self._episode
        current = episode is not None and episode.phase in (
            SimEpisode.PHASE_STARTING,
            SimEpisode.PHASE_RUNNING,
        )
        if msg.data and not (current and episode is not None and episode.goal == msg.data):
            return  # not this episode's goal yet: no ack; the simulator sends it again
        self._on_goal(msg)
        if self._pub_state is not None and self.worker is not None:
            self._report(PlannerState.EVENT_GOAL, None, goal=self.worker.goal)


def main(args: list[str] | None = None) -> int:
    return planner_main(args, node_class=ExpertPlannerNode)


if __name__ == "__main__":
    import sys

    sys.exit(main())
