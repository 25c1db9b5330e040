"""Helpers for users' own tests (replaying bags into the nodes, golden comparisons, ROS process harness)."""
