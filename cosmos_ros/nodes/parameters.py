"""Parameter descriptors shared by the nodes: one way to say description, units, range and read-only.

Each node keeps its own ``PARAMETERS`` table (name -> (default, descriptor)); this module only builds the
descriptors, so ranges and "one of" constraints read the same in ``ros2 param describe`` for both nodes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


def describe(
    text: str,
    *,
    read_only: bool = False,
    int_range: tuple[int, int, int] | None = None,
    float_range: tuple[float, float] | None = None,
    choices: Sequence[str] | None = None,
    dynamic: bool = False,
) -> ParameterDescriptor:
    """A ParameterDescriptor with the description (units in the text), an optional numeric range
    (``int_range`` = from, to, step; ``float_range`` = from, to) and an optional list of allowed values."""
    d = ParameterDescriptor(description=text, read_only=read_only, dynamic_typing=dynamic)
    if int_range is not None:
        d.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=int_range[2])]
    if float_range is not None:
        d.floating_point_range = [
            FloatingPointRange(from_value=float_range[0], to_value=float_range[1], step=0.0)
        ]
    if choices is not None:
        d.additional_constraints = "one of: " + ", ".join(choices)
    return d
