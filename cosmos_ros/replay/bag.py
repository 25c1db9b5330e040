"""Reading rosbag2 bags (mcap or sqlite3 storage) with the pure-Python ``rosbags`` library; no rclpy.

Why rosbags and not rosbag2_py: rosbag2_py is not on PyPI and is built per ROS distro; rosbags reads the
files ``ros2 bag record`` writes on Humble, Jazzy and Kilted (metadata versions up to 9, mcap and sqlite3,
zstd compression) without a ROS installation. Messages stay raw CDR bytes: replay never needs to
deserialize them, so any message type plays, including types this machine has no Python class for.

Every failure of the underlying library is turned into a :class:`~cosmos_ros.replay.errors.ReplayError`
subclass that names the bag, so a user sees "corrupt bag X: ..." instead of a stack trace from inside
rosbags.

What is played is what the storage files hold, not what ``metadata.yaml`` says. rosbags' directory reader
joins the two by topic, type *and* QoS, so a bag whose yaml QoS differs from the storage's (rosbag2's own
``talker`` fixtures: deadline ``0`` in the yaml, the maximum in the file) reads as empty, and its
start/duration cut off messages the storage holds. So :class:`Bag` reads each storage file of the bag with
rosbags' per-file readers (decompressing zstd per message when the bag says so), and uses the yaml only for
the file list, the compression mode and warnings (counts or time range that disagree with the storage).
Names are normalised the way rosbag2 does: relative topics (``a_empty``) become absolute, and old-style
types (``sensor_msgs/Image``) become ``sensor_msgs/msg/Image``.
"""

from __future__ import annotations

import heapq
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader

if sys.version_info >= (3, 14):  # pragma: no cover - the stdlib module rosbags uses from 3.14 on
    from compression import zstd
else:
    from backports import zstd  # a dependency of rosbags

from cosmos_ros.replay.errors import BagNotFoundError, CorruptBagError, MissingTopicError, ReplayError


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag.

    Attributes:
        name: Topic name, absolute (``/camera/image_raw``; a recorded ``camera/image_raw`` is made absolute).
        msgtype: ``pkg/msg/Name`` (an old-style ``pkg/Name`` is normalised), or ``pkg/srv/Name_Event``.
        count: Messages on the topic in the storage files.
        transient_local: The recording publisher offered transient-local durability (a latched topic);
            playback offers the same so late subscribers still get the last message.
    """

    name: str
    msgtype: str
    count: int
    transient_local: bool = False

    @property
    def is_service_event(self) -> bool:
        """Service introspection events (``pkg/srv/Name_Event``), recorded by ``ros2 bag record -a``."""
        return "/srv/" in self.msgtype and self.msgtype.endswith("_Event")


@dataclass(frozen=True)
class BagInfo:
    """What is in a bag (as its storage files hold it).

    Attributes:
        path: The path given (bag directory or storage file).
        storage: ``mcap`` or ``sqlite3``.
        start_ns: Receive time of the first message in the storage (ns since the epoch, ROS time).
        end_ns: Receive time of the last message.
        message_count: Messages in the bag.
        topics: By (absolute) name.
        ros_distro: Distro that wrote it, when the metadata says.
        warnings: Where ``metadata.yaml`` and the storage disagree (counts, time range); the storage wins.
    """

    path: Path
    storage: str
    start_ns: int
    end_ns: int
    message_count: int
    topics: dict[str, TopicInfo] = field(default_factory=dict)
    ros_distro: str | None = None
    warnings: tuple[str, ...] = ()

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
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass(frozen=True)
class BagMessage:
    """One recorded message: receive time, (absolute) topic, type and the serialized (CDR) bytes."""

    time_ns: int
    topic: str
    msgtype: str
    data: bytes = field(repr=False)


def normalize_topic(name: str) -> str:
    """Topic names in bags are absolute; accept ``camera/image`` for ``/camera/image``.

    rosbag2 resolves a relative recorded name against the root namespace when it plays, so ``a_empty`` in a
    bag is played as ``/a_empty``; we do the same on reading.
    """
    name = name.strip()
    if not name:
        raise ValueError("topic name must not be empty")
    return name if name.startswith("/") else "/" + name


_OLD_STYLE_TYPE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)/([A-Za-z][A-Za-z0-9_]*)$")


def normalize_type(msgtype: str) -> str:
    """``sensor_msgs/Image`` (old style: Dashing-era bags, some mcap tools) -> ``sensor_msgs/msg/Image``.

    rosbag2 accepts both spellings (``rosbag2_cpp``'s type-name parsing inserts the ``msg`` part); other
    names are returned unchanged.
    """
    m = _OLD_STYLE_TYPE.match(msgtype.strip())
    return f"{m.group(1)}/msg/{m.group(2)}" if m else msgtype.strip()


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


def _missing_metadata_error(path: Path) -> CorruptBagError:
    files = sorted(p.name for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
    hint = (
        f"; it holds {', '.join(files)}: pass a storage file directly, e.g. `replay {path / files[0]}`"
        if files
        else "; it holds no .mcap or .db3 file either"
    )
    return CorruptBagError(f"cannot open bag {path}: {path / 'metadata.yaml'} does not exist{hint}")


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
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            raise _missing_metadata_error(self.path)
        self._reader: Any = None
        self._storages: list[Any] = []
        self._decompress = False
        self.info = self._open()

    def _open(self) -> BagInfo:
        try:
            reader = Reader(self.path)
            reader.open()
        except ReplayError:
            raise
        except Exception as exc:  # rosbags raises ReaderError, but also sqlite3/mcap/yaml errors
            raise CorruptBagError(f"cannot open bag {self.path}: {type(exc).__name__}: {exc}") from exc
        self._reader = reader
        try:
            # A directory reader holds one reader per storage file; a single file is its own storage.
            self._storages = list(getattr(reader.storage, "storages", [reader.storage]))
            self._decompress = reader.compression_mode == "message"
            return self._describe(reader)
        except ReplayError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise CorruptBagError(
                f"bag {self.path} has unreadable metadata: {type(exc).__name__}: {exc}"
            ) from exc

    def _describe(self, reader: Any) -> BagInfo:
        counts: dict[str, int] = {}
        types: dict[str, set[str]] = {}
        latched: dict[str, bool] = {}
        for conn in (c for s in self._storages for c in s.connections):
            name = normalize_topic(conn.topic)
            counts[name] = counts.get(name, 0) + int(conn.msgcount)
            types.setdefault(name, set()).add(normalize_type(conn.msgtype))
            latched[name] = latched.get(name, False) or _offers_transient_local(conn)
        warnings: list[str] = []
        declared: dict[str, int] = {}
        for conn in reader.connections if self._storages != [reader.storage] else []:
            name = normalize_topic(conn.topic)
            declared[name] = declared.get(name, 0) + int(conn.msgcount)
            latched[name] = latched.get(name, False) or _offers_transient_local(conn)
            if name not in types:  # declared in the yaml only: listed with what the storage holds (none)
                types[name], counts[name] = {normalize_type(conn.msgtype)}, 0
        for name, n in sorted(declared.items()):
            if n != counts[name]:
                warnings.append(f"metadata.yaml: {n} messages on {name}; the storage holds {counts[name]}")
        topics = {}
        for name, kinds in types.items():
            if len(kinds) > 1:
                raise CorruptBagError(f"bag {self.path}: topic {name!r} has several types {sorted(kinds)}")
            topics[name] = TopicInfo(name, kinds.pop(), counts[name], latched[name])
        filled = [s.metadata for s in self._storages if s.metadata.message_count]
        count = sum(int(m.message_count) for m in filled)
        start = min((int(m.start_time) for m in filled), default=0)
        end = max((int(m.end_time) - 1 for m in filled), default=0)  # rosbags' end_time is one past the last
        if self._storages != [reader.storage] and count and reader.message_count:
            meta_start, meta_end = int(reader.start_time), int(reader.end_time) - 1
            if start < meta_start or end > meta_end:
                warnings.append(
                    f"the storage holds messages from {start} to {end} ns, outside the metadata's window "
                    f"{meta_start} to {meta_end} ns (start + duration); they are played"
                )
        return BagInfo(
            path=self.path,
            storage=_storage_of(self.path),
            start_ns=start if count else 0,
            end_ns=end if count else 0,
            message_count=count,
            topics=topics,
            ros_distro=reader.ros_distro,
            warnings=tuple(warnings),
        )

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` (all if None) by receive time, merged across the bag's storage files.

        Raises:
            MissingTopicError: A requested topic is not in the bag.
            CorruptBagError: Reading fails part-way (truncated file, damaged chunk).
        """
        if self._reader is None:
            raise ReplayError(f"bag {self.path} is closed")
        wanted = None if topics is None else {self.info.topic(t).name for t in topics}
        streams = []
        for storage in self._storages:
            conns = [c for c in storage.connections if wanted is None or normalize_topic(c.topic) in wanted]
            if conns:
                streams.append(self._read(storage, conns))
        try:
            # Split files follow each other in time; merging keeps the order even where they overlap.
            yield from heapq.merge(*streams, key=lambda m: m.time_ns)
        except ReplayError:
            raise
        except Exception as exc:
            raise CorruptBagError(f"bag {self.path} is damaged: {type(exc).__name__}: {exc}") from exc

    def _read(self, storage: Any, conns: list[Any]) -> Iterator[BagMessage]:
        for conn, t_ns, data in storage.messages(conns):
            raw = zstd.decompress(data) if self._decompress else bytes(data)
            yield BagMessage(int(t_ns), normalize_topic(conn.topic), normalize_type(conn.msgtype), raw)

    def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            self._storages = []
            reader.close()

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _offers_transient_local(conn: Any) -> bool:
    qos = getattr(conn.ext, "offered_qos_profiles", [])
    return any(q.durability == QosDurability.TRANSIENT_LOCAL for q in qos)


def read_info(path: str | Path) -> BagInfo:
    """Open, describe and close a bag (for ``--list``)."""
    with Bag(path) as bag:
        return bag.info
