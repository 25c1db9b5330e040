"""The setpoint message kinds the safety node can publish (``cosmos_ros.nodes.output_adapters`` makes them).

Here, in a module without ROS imports, so that the safety node's parameter schema and the launch helpers can
name the choices (``output_adapters``) where the message packages are not installed (the Python 3.10 tier).
"""

from __future__ import annotations

ADAPTER_KINDS = ("float64_per_axis", "float64_multi_array", "pose_stamped", "joint_trajectory")

__all__ = ["ADAPTER_KINDS"]
