"""Each node's ROS parameters, declared once: a YAML schema in generate_parameter_library's format.

Why: a parameter used to be written four or five times (the node's descriptor table, a config dataclass that
re-checked its range, the params file, the launch arguments). Now ``cosmos_ros/schemas/<node>.yaml`` says
it once and this module derives the rest:

- :meth:`ParameterSchema.check` / :meth:`ParameterSchema.validate`: each value against its type and
  validation, with errors that name the parameter and the value (what the config dataclasses call);
- :meth:`ParameterSchema.params_file`: the default ``config/<node>.yaml`` (a test compares it to the
  committed file; ``python -m cosmos_ros.parameter_schema --write`` regenerates them);
- :func:`launch_argument` / :func:`parse_launch_value`: launch arguments that pass a parameter through;
- ``cosmos_ros.nodes.parameters.declarations``: the rclpy ``ParameterDescriptor`` of each (the one
  consumer that imports rclpy; this module must not, so the core and the launch helpers stay ROS-free).

The format (https://github.com/PickNikRobotics/generate_parameter_library, README "YAML Syntax"): the top key
is the node; each parameter has ``type`` (bool, int, double, string, and their ``_array`` forms),
``default_value``, ``description``, ``read_only`` and ``validation``; nested mappings give dotted names
(``float64_per_axis: {topic_pattern: ...}`` is ``float64_per_axis.topic_pattern``). Built-in validators
understood here: ``bounds<>``, ``lt<>``, ``gt<>``, ``lt_eq<>``, ``gt_eq<>``, ``one_of<>``, ``not_empty<>``,
``unique<>``, ``subset_of<>`` and ``element_bounds<>``.

Where this package differs from generate_parameter_library, on purpose:

- No ``default_value``: the parameter is declared by type only and is "not set" (``None``) until given,
  because "not set" has a meaning (``fps``: the action-space profile's). generate_parameter_library would
  make such a parameter mandatory.
- ``dynamic_typing: true``: the value may be the type or an array of it (``compressed``: one bool for all
  cameras or one per camera).
- Custom validators, written like generate_parameter_library's custom ones (``namespace::function: [args]``):

  ``cosmos_ros::one_of_registry: ["module:ATTRIBUTE", ...]``
      the value must be a member (a key, for a mapping) of that registry in the core, e.g.
      ``cosmos_ros.runtime.policy:BACKENDS``; an argument without ``:`` is a literal value the node adds
      (``[auto, "cosmos_ros.runtime.backend:VIEW_POINTS"]``). The choice list is never restated in YAML.
      The registry's module is imported when a value is first checked (not when the schema is read), so
      name only registries whose module the node imports anyway (the safety node must not import torch).
  ``cosmos_ros::subset_of_registry: ["module:ATTRIBUTE"]``
      the same for each element of an array.
  ``cosmos_ros::multiple_of: [k]``
      an int that is a multiple of ``k`` (the descriptor's range step).
  ``cosmos_ros::relative_name: []``
      a non-empty topic name that does not start with ``/`` (namespaces and remapping apply).
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
# Installed with the package (setup.cfg package_data; CMakeLists installs cosmos_ros/ whole), so it is found
# next to this module in the source tree, the colcon install space and a pip install alike.

SCALAR_TYPES = {"bool": bool, "int": int, "double": float, "string": str}
_TYPE_WORDS = {"bool": "a bool", "int": "an integer", "double": "a number", "string": "a string"}
TYPES = (*SCALAR_TYPES, *(f"{t}_array" for t in SCALAR_TYPES))
_KEYS = {"type", "default_value", "description", "read_only", "validation", "dynamic_typing"}
_NUMERIC_VALIDATORS = {"bounds<>", "lt<>", "gt<>", "lt_eq<>", "gt_eq<>", "element_bounds<>"}
_VALIDATORS = {
    *_NUMERIC_VALIDATORS,
    "one_of<>",
    "not_empty<>",
    "unique<>",
    "subset_of<>",
    "cosmos_ros::one_of_registry",
    "cosmos_ros::subset_of_registry",
    "cosmos_ros::multiple_of",
    "cosmos_ros::relative_name",
}


class SchemaError(ValueError):
    """The schema file itself is malformed (a programming error, found by the tests)."""


@functools.cache
def resolve_registry(ref: str) -> tuple[Any, ...]:
    """The members of a core registry named ``"package.module:ATTRIBUTE"`` (keys, for a mapping)."""
    module, sep, attr = ref.partition(":")
    if not sep:
        raise SchemaError(f"registry must be written 'package.module:ATTRIBUTE', got {ref!r}")
    reg = getattr(importlib.import_module(module), attr)
    return tuple(reg.keys() if isinstance(reg, Mapping) else reg)


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of a schema (a registry named by its validation is imported on first use).

    Attributes:
        name: Dotted parameter name.
        type: One of :data:`TYPES`.
        default: The default value (``None``: declared by type, not set unless given).
        description: What it does, with units.
        read_only: May not change after the node declared it.
        dynamic_typing: The value may also be an array of ``type`` (see the module docstring).
        validation: Validator name -> its arguments, as written (``one_of<>``'s list unwrapped).
    """

    name: str
    type: str
    default: Any
    description: str
    read_only: bool = False
    dynamic_typing: bool = False
    validation: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def is_array(self) -> bool:
        return self.type.endswith("_array")

    @property
    def element_type(self) -> str:
        return self.type.removesuffix("_array")

    @property
    def choices(self) -> tuple[Any, ...] | None:
        """Allowed values (elements, for an array): ``one_of<>``, ``subset_of<>`` or a registry."""
        for key in ("one_of<>", "subset_of<>"):
            if key in self.validation:
                return tuple(self.validation[key])
        for key in ("cosmos_ros::one_of_registry", "cosmos_ros::subset_of_registry"):
            if key in self.validation:
                # Imported on first use, not at load: a schema can be read (params file, launch help of
                # other arguments) where the registry's module cannot be imported.
                args = self.validation[key]
                return tuple(m for a in args for m in (resolve_registry(a) if ":" in str(a) else (a,)))
        return None

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """Inclusive (low, high): ``bounds<>``, ``element_bounds<>``, ``gt_eq<>``, ``lt_eq<>``; None: open."""
        v = self.validation
        pair = v.get("bounds<>") or v.get("element_bounds<>")
        if pair:
            return pair[0], pair[1]
        low = v["gt_eq<>"][0] if "gt_eq<>" in v else None
        high = v["lt_eq<>"][0] if "lt_eq<>" in v else None
        return low, high

    @property
    def multiple_of(self) -> int | None:
        arg = self.validation.get("cosmos_ros::multiple_of")
        return int(arg[0]) if arg else None

    def constraints_text(self) -> str:
        """The validation in words (``ros2 param describe``'s additional constraints, launch help)."""
        parts = []
        if self.choices is not None:
            each = "each " if self.is_array else ""
            parts.append(f"{each}one of: " + ", ".join(str(c) for c in self.choices))
        low, high = self.bounds
        if low is not None or high is not None:
            parts.append(f"in [{'-inf' if low is None else low}, {'inf' if high is None else high}]")
        if "gt<>" in self.validation:
            parts.append(f"> {self.validation['gt<>'][0]}")
        if "lt<>" in self.validation:
            parts.append(f"< {self.validation['lt<>'][0]}")
        if self.multiple_of:
            parts.append(f"a multiple of {self.multiple_of}")
        if "not_empty<>" in self.validation:
            parts.append("not empty")
        if "unique<>" in self.validation:
            parts.append("unique")
        if "cosmos_ros::relative_name" in self.validation:
            parts.append("a relative topic name")
        return "; ".join(parts)

    def check(self, value: Any) -> Any:
        """``value`` checked against the type and the validation, as the typed Python value.

        Returns:
            ``None`` for an unset parameter without default, a tuple for arrays, else the scalar (ints given
            for a double become floats).

        Raises:
            ValueError: Wrong type or failed validation; the message names the parameter and the value.
        """
        if value is None:
            if self.default is None:
                return None
            raise ValueError(f"{self.name} must be set ({self.type}), got None")
        if self.dynamic_typing and isinstance(value, (list, tuple)):
            return tuple(self._scalar(v, self.type, value) for v in value)
        if self.is_array:
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{self.name} must be an array of {self.element_type}s, got {value!r}")
            items = tuple(self._scalar(v, self.element_type, value) for v in value)
            self._check_array(items)
            for item in items:
                self._check_value(item, value)
            return items
        typed = self._scalar(value, self.type, value)
        self._check_value(typed, value)
        return typed

    def _scalar(self, v: Any, type_: str, whole: Any) -> Any:
        want = SCALAR_TYPES[type_]
        ok = isinstance(v, want) and (want is bool or not isinstance(v, bool))
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            ok, v = True, float(v)
        if not ok:
            word = _TYPE_WORDS[type_]
            kind = f"{word} or an array of them" if self.dynamic_typing else word
            raise ValueError(f"{self.name} must be {kind}, got {whole!r}")
        if want is float and not math.isfinite(v):
            raise ValueError(f"{self.name} must be a finite number, got {whole!r}")
        return v

    def _check_array(self, items: tuple[Any, ...]) -> None:
        if "not_empty<>" in self.validation and not items:
            raise ValueError(f"{self.name} must list one or more values, got []")
        if "unique<>" in self.validation and len(set(items)) != len(items):
            raise ValueError(f"{self.name} must be unique, got {list(items)}")

    def _check_value(self, v: Any, given: Any) -> None:
        """Validation of one scalar (an array's element); ``given`` is what the error message shows."""
        val, name = self.validation, self.name
        shown = list(given) if isinstance(given, tuple) else given
        if self.choices is not None and v not in self.choices:
            raise ValueError(f"{name} must be one of {list(self.choices)}, got {shown!r}")
        if "not_empty<>" in val and not self.is_array and v == "":
            raise ValueError(f"{name} must not be empty, got ''")
        if "cosmos_ros::relative_name" in val and (not v or v.startswith("/")):
            raise ValueError(f"{name} must be a non-empty relative topic name, got {shown!r}")
        low, high = self.bounds
        if (low is not None and v < low) or (high is not None and v > high):
            raise ValueError(
                f"{name} must be in [{'-inf' if low is None else low}, {'inf' if high is None else high}], "
                f"got {shown!r}"
            )
        if "gt<>" in val and not v > val["gt<>"][0]:
            raise ValueError(f"{name} must be > {val['gt<>'][0]}, got {shown!r}")
        if "lt<>" in val and not v < val["lt<>"][0]:
            raise ValueError(f"{name} must be < {val['lt<>'][0]}, got {shown!r}")
        k = self.multiple_of
        if k and v % k:
            raise ValueError(f"{name} must be a multiple of {k}, got {shown!r}")


@dataclass(frozen=True)
class ParameterSchema:
    """A node's parameters in declaration order (see the module docstring).

    Attributes:
        node: The schema's top key (the node's name).
        parameters: Dotted name -> spec.
        source: Where it was read from (for messages).
    """

    node: str
    parameters: Mapping[str, ParameterSpec]
    source: str = ""

    @classmethod
    def load(cls, name: str) -> ParameterSchema:
        """The package's schema ``schemas/<name>.yaml`` (e.g. ``"planner_node"``)."""
        path = SCHEMA_DIR / f"{name}.yaml"
        return cls.from_text(path.read_text(), str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> ParameterSchema:
        """Parse a schema; registries named by custom validators are imported now.

        Raises:
            SchemaError: Unknown key, type or validator, or a default that fails its own validation.
        """
        data = yaml.safe_load(text)
        if not isinstance(data, dict) or len(data) != 1:
            raise SchemaError(f"{source}: want one top-level key (the node name), got {data!r}")
        ((node, body),) = data.items()
        specs = {s.name: s for s in _walk(body, "", source)}
        return cls(node=str(node), parameters=specs, source=source)

    def __getitem__(self, name: str) -> ParameterSpec:
        return self.parameters[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.parameters)

    def default(self, name: str) -> Any:
        """The default of ``name`` (arrays as tuples, so a frozen dataclass can use it)."""
        d = self.parameters[name].default
        return tuple(d) if isinstance(d, list) else d

    def check(self, name: str, value: Any) -> Any:
        """``value`` of parameter ``name`` validated (see :meth:`ParameterSpec.check`)."""
        return self.parameters[name].check(value)

    def validate(self, get: Callable[[str], Any]) -> dict[str, Any]:
        """Every parameter's value from ``get(name)`` (``None``: not set), validated and typed.

        Raises:
            ValueError: The first bad value, naming the parameter and the value.
        """
        return {name: spec.check(get(name)) for name, spec in self.parameters.items()}

    def check_defaults(self) -> None:
        """Every default against its whole validation, registries included (imports them).

        Raises:
            SchemaError: A default that fails, or a registry that cannot be resolved.
        """
        for spec in self.parameters.values():
            if spec.default is not None:
                try:
                    _check_default(spec)
                except (ImportError, AttributeError) as exc:
                    raise SchemaError(f"{self.source}: {spec.name}: registry: {exc}") from None

    def params_file(self, header: Sequence[str] = ()) -> str:
        """The default ros2 params file: every parameter with a default, each with its description.

        Args:
            header: comment lines (without ``#``) put first, e.g. how to run the node with the file.
        """
        lines = [f"# {h}".rstrip() for h in header]
        lines += [
            f"# GENERATED from cosmos_ros/schemas/{self.node}.yaml by",
            "#   python -m cosmos_ros.parameter_schema --write",
            "# Edit the schema, not this file (a test compares the two).",
            "# `/**:` applies to any node name and namespace. Descriptions, units and ranges: the schema, or",
            f"# `ros2 param describe /{self.node} <name>`.",
        ]
        unset = [s for s in self.parameters.values() if s.default is None]
        if unset:
            lines.append('# Declared without a default ("not set" has a meaning), so absent here:')
            for s in unset:
                lines += textwrap.wrap(
                    f"{s.name} ({s.type}): {s.description}",
                    106,
                    initial_indent="#   ",
                    subsequent_indent="#     ",
                )
        lines += ["/**:", "  ros__parameters:"]
        for spec in self.parameters.values():
            if spec.default is None:
                continue
            text = spec.description + (f" ({spec.constraints_text()})" if spec.constraints_text() else "")
            text += " [read-only]" if spec.read_only else ""
            lines += textwrap.wrap(text, 106, initial_indent="    # ", subsequent_indent="    #   ")
            lines.append(f"    {spec.name}: {json.dumps(spec.default)}")
        return "\n".join(lines) + "\n"


def _walk(body: Any, prefix: str, source: str) -> Iterator[ParameterSpec]:
    if not isinstance(body, dict):
        raise SchemaError(f"{source}: {prefix or 'top level'} must be a mapping, got {body!r}")
    for key, entry in body.items():
        name = f"{prefix}{key}"
        if isinstance(entry, dict) and "type" not in entry:
            yield from _walk(entry, name + ".", source)  # a nested group: dotted names
        else:
            yield _spec(name, entry, source)


def _spec(name: str, entry: Any, source: str) -> ParameterSpec:
    where = f"{source}: parameter {name}"
    if not isinstance(entry, dict):
        raise SchemaError(f"{where}: want a mapping, got {entry!r}")
    unknown = set(entry) - _KEYS
    if unknown:
        raise SchemaError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {sorted(_KEYS)}")
    if entry["type"] not in TYPES:
        raise SchemaError(f"{where}: type must be one of {TYPES}, got {entry['type']!r}")
    if not entry.get("description"):
        raise SchemaError(f"{where}: needs a description")
    validation: dict[str, tuple[Any, ...]] = {}
    for vname, args in (entry.get("validation") or {}).items():
        if vname not in _VALIDATORS:
            raise SchemaError(f"{where}: unknown validator {vname!r}; valid: {sorted(_VALIDATORS)}")
        args = tuple(args or ())
        if vname in ("one_of<>", "subset_of<>"):
            args = tuple(args[0])  # generate_parameter_library wraps the list: one_of<>: [[a, b]]
        validation[vname] = args
    spec = ParameterSpec(
        name=name,
        type=entry["type"],
        default=entry.get("default_value"),
        description=" ".join(str(entry["description"]).split()),
        read_only=bool(entry.get("read_only", False)),
        dynamic_typing=bool(entry.get("dynamic_typing", False)),
        validation=validation,
    )
    if spec.default is not None and not any(v.endswith("_registry") for v in validation):
        _check_default(spec)  # registry-checked defaults: ParameterSchema.check_defaults (in the tests)
    return spec


def _check_default(spec: ParameterSpec) -> None:
    try:
        spec.check(spec.default)
    except ValueError as exc:
        raise SchemaError(f"{spec.name}: default_value fails its own validation: {exc}") from None


# ---- launch arguments that pass a parameter through (no `launch` import: tested without it) ---------------
def launch_argument(
    spec: ParameterSpec, default: str = "", note: str = "", empty_keeps: bool = True
) -> tuple[str, str]:
    """``(default, description)`` of a launch argument that sets parameter ``spec``.

    Args:
        spec: The parameter.
        default: The argument's default text.
        note: Extra words for the launch help (why the launch default differs, say).
        empty_keeps: An empty value keeps the params file's (the launch file then passes nothing); False:
            the value is always passed, empty included.
    """
    text = spec.description
    if spec.constraints_text():
        text += f" ({spec.constraints_text()})"
    if spec.is_array:
        text += "; comma separated"
    if empty_keeps and not default:
        text += "; empty: the params file's"
    return default, f"{text}.{' ' + note if note else ''}"


def parse_launch_value(spec: ParameterSpec, text: str) -> Any:
    """A launch argument's text as the parameter's typed, validated value.

    Raises:
        ValueError: Does not parse as the type, or fails validation (the message names the parameter).
    """
    t = text.strip()
    if spec.is_array:
        parts = [p.strip() for p in t.strip("[]").split(",") if p.strip()]
        return list(spec.check([_parse_scalar(spec, spec.element_type, p) for p in parts]))
    return spec.check(_parse_scalar(spec, spec.type, t))


def _parse_scalar(spec: ParameterSpec, type_: str, t: str) -> Any:
    if type_ == "bool":
        if t.lower() in ("true", "1", "yes", "on"):
            return True
        if t.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"launch argument {spec.name} must be true or false, got {t!r}")
    if type_ == "string":
        return t
    convert = SCALAR_TYPES[type_]
    try:
        return convert(t)
    except ValueError:
        raise ValueError(f"launch argument {spec.name} must be {type_}, got {t!r}") from None


# ---- the default params files -------------------------------------------------------------------------
# config file -> (schema, header lines). The header says how to use the file; everything else is derived.
PARAMS_FILES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "config/planner.yaml": (
        "planner_node",
        (
            "The planner node's parameters (cosmos_ros/nodes/planner_node.py) as a ros2 params file:",
            "  ros2 run cosmos_ros planner_node --ros-args --params-file config/planner.yaml "
            "-p model_path:=/path/to/model",
            "All values are read at configure time (changes are refused while configured).",
        ),
    ),
    "config/safety.yaml": (
        "safety_node",
        (
            "The safety node's parameters (cosmos_ros/nodes/safety_node.py) as a ros2 params file:",
            "  ros2 run cosmos_ros safety_node --ros-args --params-file config/safety.yaml "
            "-p limits_file:=config/limits/arm7_joints.yaml",
            "All values are read at configure time (changes are refused while configured). The safety LIMITS",
            "(bounds, velocity/acceleration/jerk, staleness, frame) are not parameters: they live in the",
            "limits file, read-only. All topic names are relative, so namespaces and remapping apply.",
        ),
    ),
}


def generated_params_file(rel: str) -> str:
    """The text ``config/...`` file ``rel`` must have (see :data:`PARAMS_FILES`)."""
    node, header = PARAMS_FILES[rel]
    return ParameterSchema.load(node).params_file(header)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cosmos_ros.parameter_schema [--write] [REPO]``: check (or rewrite) the params files."""
    args = list(sys.argv[1:] if argv is None else argv)
    write = "--write" in args
    roots = [a for a in args if a != "--write"]
    root = Path(roots[0] if roots else ".")
    stale = []
    for rel in PARAMS_FILES:
        want = generated_params_file(rel)
        path = root / rel
        if path.exists() and path.read_text() == want:
            continue
        if write:
            path.write_text(want)
            print(f"wrote {path}")
        else:
            stale.append(rel)
    for rel in stale:
        print(f"{rel} differs from its schema; run: python -m cosmos_ros.parameter_schema --write")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
