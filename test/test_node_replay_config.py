"""NodeReplayConfig: the description of one lockstep node replay, checked before any process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosmos_ros.testing.node_replay import DEFAULT_RECORD_TOPICS, NodeReplayConfig


def _config(**overrides: object) -> NodeReplayConfig:
    kwargs: dict[str, object] = {
        "bag": "bags/demo",
        "planner_params": {"seed": 0},
        "safety_params": {"limits_file": "limits.yaml"},
        "topics": ["/camera/image_raw", "/joint_states"],
    }
    kwargs.update(overrides)
    return NodeReplayConfig(**kwargs)  # type: ignore[arg-type]


def test_defaults_and_immutable_copies() -> None:
    planner = {"seed": 0}
    config = _config(planner_params=planner, planner_params_files=["a.yaml"], out_dir="out")
    planner["seed"] = 1  # the caller's dict changes after the check: the config does not
    assert config.planner_params["seed"] == 0
    with pytest.raises(TypeError):
        config.planner_params["seed"] = 2  # type: ignore[index]
    assert config.bag == Path("bags/demo") and config.out_dir == Path("out")
    assert config.topics == ("/camera/image_raw", "/joint_states")
    assert config.planner_params_files == (Path("a.yaml"),)
    assert config.record_topics == DEFAULT_RECORD_TOPICS
    assert config.frame_interval_s == 1.0 and config.clock_step_s is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("frame_interval_s", 0.0),  # 0 must not mean "every frame": None says that
        ("frame_interval_s", float("nan")),
        ("end_offset_s", -1.0),
        ("clock_step_s", 0.0),
        ("startup_timeout_s", None),
        ("plan_timeout_s", float("inf")),
        ("plan_timeout_s", True),
        ("linger_s", -0.1),
        ("domain_id", -1),
        ("topics", ()),
    ],
)
def test_bad_values_are_named(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        _config(**{field: value})


def test_none_means_unset_where_allowed() -> None:
    config = _config(frame_interval_s=None, end_offset_s=None, clock_step_s=None, tick_topic=None)
    assert config.frame_interval_s is None and config.tick_topic is None
