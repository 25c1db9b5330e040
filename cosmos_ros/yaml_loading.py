"""YAML loading that refuses duplicate mapping keys, at every nesting level.

Why: PyYAML's ``safe_load`` keeps the last of two equal keys without a word, so a limits file with
``max_velocity`` written twice silently runs with whichever came last. Every YAML file this package reads
(safety limits, action-space profiles) goes through :func:`load_yaml_unique`, which refuses the file and
names the key and both lines. (ROS parameter files are parsed by rcl's own C parser, not here; the package's
shipped parameter files are checked by this loader in the tests.)
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping holds the same key twice; the message names the key and both lines."""


class UniqueKeySafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose mappings refuse a key that appears twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<" merge keys are resolved by flatten_mapping, not duplicates
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key; construct_mapping reports it below
                continue
            if first is not None:
                raise DuplicateKeyError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first at line {first.start_mark.line + 1}, "
                    f"again at line {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


UniqueKeySafeLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, UniqueKeySafeLoader.construct_mapping
)


def load_yaml_unique(text: str, name: str = "<string>") -> Any:
    """Parse YAML like ``yaml.safe_load``, but refuse duplicate keys at any nesting level.

    Args:
        text: The YAML document.
        name: Where it came from, for the error message.

    Raises:
        yaml.YAMLError: not valid YAML, or a duplicate key (``DuplicateKeyError``, naming the key).
    """
    loader = UniqueKeySafeLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
