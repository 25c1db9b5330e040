"""Writing raw messages to a new mcap bag (rosbags writer; no rclpy), from any thread.

Why raw bytes: the player's subscriptions use ``raw=True``, so recording never deserializes; the writer
only needs each type's definition, which :mod:`cosmos_ros.replay.types` supplies (standard types from the
rosbags type store, ``cosmos_ros/msg/*`` from their ``.msg`` files), so the bag opens in Foxglove or
``ros2 bag info`` with full schemas.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import StoragePlugin, Writer

from cosmos_ros.replay.bag import normalize_topic
from cosmos_ros.replay.errors import ReplayError
from cosmos_ros.replay.types import make_typestore, msgdef_of, split_type


def bag_dir_for(path: str | Path) -> Path:
    """The bag directory of an output path: ``out.mcap`` -> ``out/``; ``out`` -> ``out/``.

    rosbag2 bags are directories (``metadata.yaml`` + storage files); accepting a ``.mcap`` name keeps the
    command line natural while producing a bag every rosbag2 tool reads.
    """
    p = Path(path)
    return p.with_suffix("") if p.suffix == ".mcap" else p


class BagRecorder:
    """A new mcap bag with fixed topics; :meth:`write` is thread-safe. Use as a context manager.

    Args:
        path: Output bag (see :func:`bag_dir_for`); must not exist.
        topics: Topic -> ``pkg/msg/Name``.

    Raises:
        ReplayError: The output exists or cannot be created.
        UnknownTypeError: A type has no definition (see :func:`cosmos_ros.replay.types.ensure_type`).
    """

    def __init__(self, path: str | Path, topics: Mapping[str, str]) -> None:
        self.path = bag_dir_for(path)
        if self.path.exists():
            raise ReplayError(f"record output {self.path} exists already; choose a new name")
        self._store = make_typestore()
        defs = {}
        for topic, msgtype in topics.items():
            split_type(msgtype)
            defs[normalize_topic(topic)] = (msgtype, *msgdef_of(self._store, msgtype))
        self._lock = threading.Lock()
        self._writer: Any = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        try:
            self._writer.open()
        except Exception as exc:
            raise ReplayError(f"cannot create record output {self.path}: {exc}") from exc
        self._conns = {
            topic: self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs)
            for topic, (msgtype, msgdef, rihs) in defs.items()
        }
        self.counts = dict.fromkeys(self._conns, 0)
        self._closed = False

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self._conns)

    def write(self, topic: str, time_ns: int, data: bytes) -> bool:
        """Append one message; returns False (and writes nothing) once the recorder is closed."""
        with self._lock:
            if self._closed:
                return False
            self._writer.write(self._conns[normalize_topic(topic)], int(time_ns), data)
            self.counts[normalize_topic(topic)] += 1
            return True

    def close(self) -> None:
        """Finish the bag (writes the mcap summary and metadata.yaml). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.close()

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
