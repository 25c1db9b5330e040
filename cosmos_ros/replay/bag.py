"""Reading rosbag2 bags (mcap or sqlite3 storage) with the pure-Python ``rosbags`` library; no rclpy.

Why rosbags and not rosbag2_py: rosbag2_py is not on PyPI and is built per ROS distro; rosbags reads the
files ``ros2 bag record`` writes on Humble, Jazzy and Kilted (metadata versions up to 9, mcap and sqlite3,
zstd compression) without a ROS installation. Messages stay raw CDR bytes: replay never needs to
deserialize them, so any message type plays, including types this machine has no Python class for.

Every failure of the underlying library is turned into a :class:`~cosmos_ros.replay.errors.ReplayError`
subclass that names the bag, so a user sees "corrupt bag X: ..." instead of a stack trace from inside
rosbags.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader

from cosmos_ros.replay.errors import BagNotFoundError, CorruptBagError, MissingTopicError, ReplayError


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag.

    Attributes:
        name: Topic name as recorded (absolute, e.g. ``/camera/image_raw``).
        msgtype: ``pkg/msg/Name``.
        count: Messages on the topic.
        transient_local: The recording publisher offered transient-local durability (a latched topic);
            playback offers the same so late subscribers still get the last message.
    """

    name: str
    msgtype: str
    count: int
    transient_local: bool = False


@dataclass(frozen=True)
class BagInfo:
    """What is in a bag.

    Attributes:
        path: The path given (bag directory or storage file).
        storage: ``mcap`` or ``sqlite3``.
        start_ns: Receive time of the first message (ns since the epoch, ROS time).
        end_ns: Receive time of the last message.
        message_count: Messages in the bag.
        topics: By name.
        ros_distro: Distro that wrote it, when the metadata says.
    """

    path: Path
    storage: str
    start_ns: int
    end_ns: int
    message_count: int
    topics: dict[str, TopicInfo] = field(default_factory=dict)
    ros_distro: str | None = None

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def topic(self, name: str) -> TopicInfo:
        """The topic ``name``; MissingTopicError listing the bag's topics otherwise."""
        key = normalize_topic(name)
        if key not in self.topics:
            raise MissingTopicError(f"topic {key!r} is not in bag {self.path}; it has: {sorted(self.topics)}")
        return self.topics[key]

    def table(self) -> str:
        """A printable listing (``replay --list``)."""
        lines = [
            f"bag: {self.path}  storage: {self.storage}  messages: {self.message_count}  "
            f"duration: {self.duration_s:.3f} s  distro: {self.ros_distro or '?'}"
        ]
        width = max((len(t) for t in self.topics), default=5)
        lines.append(f"  {'topic':<{width}}  {'count':>7}  type")
        for t in sorted(self.topics.values(), key=lambda t: t.name):
            latched = "  (transient_local)" if t.transient_local else ""
            lines.append(f"  {t.name:<{width}}  {t.count:>7}  {t.msgtype}{latched}")
        return "\n".join(lines)


@dataclass(frozen=True)
class BagMessage:
    """One recorded message: receive time, topic, type and the serialized (CDR) bytes."""

    time_ns: int
    topic: str
    msgtype: str
    data: bytes = field(repr=False)


def normalize_topic(name: str) -> str:
    """Topic names in bags are absolute; accept ``camera/image`` for ``/camera/image``."""
    name = name.strip()
    if not name:
        raise ValueError("topic name must not be empty")
    return name if name.startswith("/") else "/" + name


def _storage_of(path: Path) -> str:
    if path.is_dir():
        suffixes = {p.suffix for p in path.iterdir()}
        if ".mcap" in suffixes:
            return "mcap"
        if ".db3" in suffixes:
            return "sqlite3"
        if ".zstd" in suffixes:  # file-compressed bag: storage file name ends with .mcap.zstd / .db3.zstd
            names = [p.name for p in path.iterdir()]
            return "mcap" if any(".mcap." in n for n in names) else "sqlite3"
        return "unknown"
    return {".mcap": "mcap", ".db3": "sqlite3"}.get(path.suffix, "unknown")


class Bag:
    """An open bag. Use as a context manager; :meth:`messages` may be called again (for looping).

    Args:
        path: A bag directory (with ``metadata.yaml``) or a single ``.mcap`` / ``.db3`` file.

    Raises:
        BagNotFoundError: ``path`` does not exist.
        CorruptBagError: It cannot be opened as a rosbag2 bag.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagNotFoundError(f"bag {self.path} does not exist")
        self._reader: Any = None
        self.info = self._open()

    def _open(self) -> BagInfo:
        try:
            reader = Reader(self.path)
            reader.open()
        except ReplayError:
            raise
        except FileNotFoundError as exc:  # a directory without metadata.yaml
            raise CorruptBagError(f"cannot open bag {self.path}: {exc}") from exc
        except Exception as exc:  # rosbags raises ReaderError, but also sqlite3/mcap/yaml errors
            raise CorruptBagError(f"cannot open bag {self.path}: {type(exc).__name__}: {exc}") from exc
        self._reader = reader
        try:
            topics = {}
            for name, t in reader.topics.items():
                if t.msgtype is None:
                    raise CorruptBagError(f"bag {self.path}: topic {name!r} is recorded with several types")
                qos = [q for c in t.connections for q in getattr(c.ext, "offered_qos_profiles", [])]
                latched = any(q.durability == QosDurability.TRANSIENT_LOCAL for q in qos)
                topics[name] = TopicInfo(name, t.msgtype, int(t.msgcount), latched)
            count = int(reader.message_count)
            return BagInfo(
                path=self.path,
                storage=_storage_of(self.path),
                start_ns=int(reader.start_time) if count else 0,
                end_ns=int(reader.end_time) - 1 if count else 0,  # rosbags' end_time is one past the last
                message_count=count,
                topics=topics,
                ros_distro=reader.ros_distro,
            )
        except ReplayError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise CorruptBagError(
                f"bag {self.path} has unreadable metadata: {type(exc).__name__}: {exc}"
            ) from exc

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` (all if None) in the order the storage returns them (by receive time).

        Raises:
            MissingTopicError: A requested topic is not in the bag.
            CorruptBagError: Reading fails part-way (truncated file, damaged chunk).
        """
        if self._reader is None:
            raise ReplayError(f"bag {self.path} is closed")
        wanted = None if topics is None else {self.info.topic(t).name for t in topics}
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        try:
            for conn, t_ns, data in self._reader.messages(connections=conns):
                yield BagMessage(int(t_ns), conn.topic, conn.msgtype, bytes(data))
        except ReplayError:
            raise
        except Exception as exc:
            raise CorruptBagError(f"bag {self.path} is damaged: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_info(path: str | Path) -> BagInfo:
    """Open, describe and close a bag (for ``--list``)."""
    with Bag(path) as bag:
        return bag.info
