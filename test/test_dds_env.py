"""cosmos_ros.dds_env: loopback-only discovery on every distro, Humble's spelling included."""

from __future__ import annotations

from cosmos_ros.dds_env import LOCALHOST_ONLY, RANGE, use_localhost_discovery


def test_jazzy_and_later_get_the_range_and_not_the_deprecated_flag() -> None:
    env = {"ROS_DISTRO": "jazzy"}
    use_localhost_discovery(env)
    assert env[RANGE] == "LOCALHOST" and LOCALHOST_ONLY not in env


def test_humble_gets_localhost_only_as_well() -> None:
    env = {"ROS_DISTRO": "humble"}
    use_localhost_discovery(env)
    assert env[RANGE] == "LOCALHOST" and env[LOCALHOST_ONLY] == "1"


def test_a_callers_subnet_choice_is_kept_and_humble_then_is_not_pinned_to_loopback() -> None:
    env = {"ROS_DISTRO": "humble", RANGE: "SUBNET"}
    use_localhost_discovery(env)
    assert env == {"ROS_DISTRO": "humble", RANGE: "SUBNET"}


def test_override_forces_loopback_over_the_shell() -> None:
    env = {"ROS_DISTRO": "humble", RANGE: "SUBNET", LOCALHOST_ONLY: "0"}
    use_localhost_discovery(env, override=True)
    assert env[RANGE] == "LOCALHOST" and env[LOCALHOST_ONLY] == "1"
