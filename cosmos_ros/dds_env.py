"""Keep DDS discovery on this machine, on every supported ROS 2 distro (no rclpy import: usable before init).

Iron and later read ``ROS_AUTOMATIC_DISCOVERY_RANGE``; Humble does not know it and reads
``ROS_LOCALHOST_ONLY=1`` instead. Jazzy and later still honour ``ROS_LOCALHOST_ONLY`` but warn that it is
deprecated, so it is set only where ``ROS_DISTRO`` is ``humble``. A caller's own choice (e.g.
``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`` for a benchmark across network namespaces) is kept unless
``override`` is set; Humble then gets no localhost-only flag either, so both distros cross the link alike.
"""

from __future__ import annotations

from collections.abc import MutableMapping

RANGE = "ROS_AUTOMATIC_DISCOVERY_RANGE"
LOCALHOST_ONLY = "ROS_LOCALHOST_ONLY"
# Every variable this module may set, for callers that save and restore their environment around it.
VARIABLES = (RANGE, LOCALHOST_ONLY)


def use_localhost_discovery(env: MutableMapping[str, str], *, override: bool = False) -> None:
    """Set the loopback-only discovery variables in ``env`` (``os.environ`` or a child process's dict).

    Args:
        env: the environment to change in place; its ``ROS_DISTRO`` decides whether Humble's spelling is set.
        override: replace a range the caller already chose (tests that must stay on loopback whatever the
            shell says); otherwise an existing choice is kept.
    """
    if override or RANGE not in env:
        env[RANGE] = "LOCALHOST"
    humble_loopback = env.get("ROS_DISTRO", "") == "humble" and env[RANGE] == "LOCALHOST"
    if humble_loopback and (override or LOCALHOST_ONLY not in env):
        env[LOCALHOST_ONLY] = "1"
