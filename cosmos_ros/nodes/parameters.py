"""rclpy's side of the parameter schemas: ``ParameterDescriptor`` s derived from ``schemas/<node>.yaml``.

The one place that turns a :class:`cosmos_ros.parameter_schema.ParameterSpec` into what ``declare_parameter``
takes, so ``ros2 param describe`` shows the same description, range and "one of" for every node, and rclpy
refuses an out-of-range override at declaration already (the config dataclasses check again, with the same
schema, for values that do not come through rclpy).
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter

from cosmos_ros.parameter_schema import ParameterSchema, ParameterSpec

_UNSET_TYPES = {
    "bool": Parameter.Type.BOOL,
    "int": Parameter.Type.INTEGER,
    "double": Parameter.Type.DOUBLE,
    "string": Parameter.Type.STRING,
    "bool_array": Parameter.Type.BOOL_ARRAY,
    "int_array": Parameter.Type.INTEGER_ARRAY,
    "double_array": Parameter.Type.DOUBLE_ARRAY,
    "string_array": Parameter.Type.STRING_ARRAY,
}


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """The descriptor of one parameter: description, read_only, dynamic typing, numeric range, constraints.

    A numeric range is set only when both ends are bounded (rclpy's ranges are closed intervals); an int's
    ``cosmos_ros::multiple_of`` becomes the range's step (rclpy counts steps from ``from_value``).
    """
    d = ParameterDescriptor(
        description=spec.description,
        read_only=spec.read_only,
        dynamic_typing=spec.dynamic_typing,
        additional_constraints=spec.constraints_text(),
    )
    low, high = spec.bounds
    if low is not None and high is not None and spec.choices is None:
        if spec.element_type == "int" and not spec.is_array:
            step = spec.multiple_of or 1
            d.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=step)]
        elif spec.element_type == "double" and not spec.is_array:
            d.floating_point_range = [
                FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)
            ]
    return d


def declarations(schema: ParameterSchema) -> dict[str, tuple[Any, ParameterDescriptor]]:
    """name -> (default, or the ``Parameter.Type`` of one declared unset; descriptor), in schema order.

    ``node.declare_parameter(name, default, descriptor)`` for each item declares the node's parameters.
    """
    out: dict[str, tuple[Any, ParameterDescriptor]] = {}
    for name, spec in schema.parameters.items():
        default = _UNSET_TYPES[spec.type] if spec.default is None else spec.default
        out[name] = (default, descriptor(spec))
    return out
