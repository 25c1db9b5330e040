"""Bags in the on-disk forms of rosbag2's own test resources, generated with ``rosbags`` (no rosbag2 needed).

Why a generator: rosbag2's test bags (``rosbag2_py/test/resources``, ``rosbag2_tests/resources``) are the
forms real users' bags take, but tests must not fetch them at run time and we do not commit copies of other
projects' files. So each case below rebuilds the *form* of one of them: the same metadata version and layout,
the same disagreement between ``metadata.yaml`` and the storage, the same kind of names, with our own small
content (``std_msgs/String`` or ``rcl_interfaces/Log`` messages whose text says which message they are).

The cases, by what a reader must cope with:

* ``v4`` .. ``v9``: ``metadata.yaml`` as rosbag2 versions 4 (Foxy: QoS as a YAML *string* with numeric
  enums, no ``files``) to 9 (Jazzy and later: QoS as a YAML sequence with named enums) write it; sqlite3
  storage of a v4/v5 bag in the older table layouts (Foxy: no ``schema`` table; Humble: schema 3).
* ``qos_mismatch`` (rosbag2's ``talker`` fixtures): the yaml's QoS has deadline/lifespan 0 while the storage
  has the maximum durations, metadata version 4, and a topic with 0 messages.
* ``split`` (``wbag``, ``multiple_files``): one bag in three storage files.
* ``zstd_file`` / ``zstd_message``: rosbag2's zstd compression of whole files or of each message.
* ``old_style_names``: types written ``std_msgs/String`` (Dashing-era bags, some mcap tools).
* ``relative_names``: topics written ``a_empty`` (``rosbag2_py`` users, conversion scripts).
* ``service_events`` (``bag_with_topics_and_service_events``, Jazzy ``record -a``): ``/events/write_split``
  with 0 messages, two ``test_msgs/srv/BasicTypes_Event`` topics, ``test_msgs/msg/Strings`` topics, plus one
  ``std_msgs/String`` topic that can be played here.
* ``window``: messages before and after the metadata's start/duration (the yaml edited after the fact).
* ``no_metadata``: a bag directory whose ``metadata.yaml`` is missing.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

STORE = get_typestore(Stores.ROS2_KILTED)
STRING = "std_msgs/msg/String"
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
STORAGES = ("mcap", "sqlite3")
# rmw's "infinite" duration as rosbag2 writes it (seconds and nanoseconds of INT64_MAX ns).
MAX_TIME = QosTime(9223372036, 854775807)
ZERO_TIME = QosTime(0, 0)


def qos(
    durability: QosDurability = QosDurability.VOLATILE, limit: QosTime = ZERO_TIME, depth: int = 0
) -> Qos:
    return Qos(
        QosHistory.KEEP_LAST,
        depth,
        QosReliability.RELIABLE,
        durability,
        limit,
        limit,
        QosLiveliness.AUTOMATIC,
        limit,
        False,
    )


LOG = "rcl_interfaces/msg/Log"


def message_cdr(msgtype: str, text: str) -> bytes:
    """A ``std_msgs/String`` or ``rcl_interfaces/Log`` carrying ``text``; other types get a String's bytes
    (never deserialized: replay moves bytes, and these types are not importable here anyway)."""
    if msgtype == LOG:
        stamp = STORE.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0)
        log = STORE.types[LOG](stamp=stamp, level=20, name="talker", msg=text, file="", function="", line=0)
        return bytes(STORE.serialize_cdr(log, LOG))
    return bytes(STORE.serialize_cdr(STORE.types[STRING](data=text), STRING))


@dataclass(frozen=True)
class Topic:
    """A topic to write: name and type as they go on disk; QoS as the storage records it."""

    name: str
    msgtype: str
    count: int
    qos: tuple[Qos, ...] = (qos(),)
    msgdef: str | None = None  # for types the rosbags store does not know (test_msgs, old-style names)


@dataclass(frozen=True)
class Case:
    """A generated bag and what a correct reader finds in it."""

    path: Path
    storage: str
    expected: dict[str, tuple[str, int]]  # absolute topic -> (normalised type, messages in the storage)
    note: str = ""


def _write(
    path: Path,
    storage: str,
    topics: list[Topic],
    *,
    first_ns: int = START_NS,
    compression: CompressionMode | None = None,
    index_from: int = 0,
) -> None:
    """One rosbags bag; message k of a topic is received at ``first_ns + (index_from + k) * PERIOD_NS``
    (topics interleaved by a few ns) and says ``"<topic> <k>"``."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=9, storage_plugin=plugin)
    if compression is not None:
        writer.set_compression(compression, CompressionFormat.ZSTD)
    with writer:
        conns = []
        for t in topics:
            kwargs: dict[str, Any] = {"offered_qos_profiles": t.qos}
            if t.msgdef is not None:
                kwargs.update(msgdef=t.msgdef, rihs01="RIHS01_" + "0" * 64)
            else:
                kwargs["typestore"] = STORE
            conns.append(writer.add_connection(t.name, t.msgtype, **kwargs))
        rows = [
            (first_ns + (index_from + k) * PERIOD_NS + j, conn, t.msgtype, f"{t.name} {index_from + k}")
            for j, (t, conn) in enumerate(zip(topics, conns, strict=True))
            for k in range(t.count)
        ]
        for t_ns, conn, msgtype, text in sorted(rows, key=lambda r: r[0]):
            writer.write(conn, t_ns, message_cdr(msgtype, text))


def _meta(path: Path) -> dict[str, Any]:
    return yaml.safe_load((path / "metadata.yaml").read_text())


def _save_meta(path: Path, meta: dict[str, Any]) -> None:
    (path / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


def _qos_string(profiles: list[Any]) -> str:
    """Metadata v4-v8 QoS: a YAML *string* holding a list with numeric enums (rosbag2_storage qos.cpp)."""
    names = {"keep_last": 1, "keep_all": 2, "reliable": 1, "best_effort": 2, "transient_local": 1,
             "volatile": 2, "automatic": 1, "manual_by_topic": 3, "system_default": 0}  # fmt: skip
    out = []
    for p in profiles:
        q = dict(p)
        for key in ("history", "reliability", "durability", "liveliness"):
            q[key] = names.get(str(q[key]), q[key])
        out.append(q)
    return yaml.safe_dump(out, sort_keys=False).rstrip("\n")


def downgrade_metadata(path: Path, version: int) -> None:
    """Rewrite a v9 ``metadata.yaml`` (what rosbags writes) in the form rosbag2 writes for ``version``."""
    meta = _meta(path)
    info = meta["rosbag2_bagfile_information"]
    info["version"] = version
    for entry in info["topics_with_message_count"]:
        tm = entry["topic_metadata"]
        if version < 9:
            tm["offered_qos_profiles"] = _qos_string(tm["offered_qos_profiles"])
        if version < 7:
            tm.pop("type_description_hash", None)
    if version < 8:
        info.pop("ros_distro", None)
    if version < 6:
        info.pop("custom_data", None)
    if version < 5:
        info.pop("files", None)
    _save_meta(path, meta)


def downgrade_sqlite(db: Path, layout: str) -> None:
    """Rewrite a rosbags db3 (schema 4) in an older rosbag2 table layout: ``foxy`` (no schema table, no
    message definitions) or ``humble`` (schema 3)."""
    old = db.with_suffix(".old")
    db.rename(old)
    src, dst = sqlite3.connect(old), sqlite3.connect(db)
    if layout == "humble":
        dst.executescript(
            "CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);"
            "INSERT INTO schema VALUES (3, 'humble');"
        )
    dst.executescript(
        "CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, "
        "serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);"
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, "
        "timestamp INTEGER NOT NULL, data BLOB NOT NULL);"
        "CREATE INDEX timestamp_idx ON messages (timestamp ASC);"
    )
    for row in src.execute("SELECT id, name, type, serialization_format, offered_qos_profiles FROM topics"):
        profiles = yaml.safe_load(row[4]) or []
        dst.execute("INSERT INTO topics VALUES (?, ?, ?, ?, ?)", (*row[:4], _qos_string(profiles)))
    dst.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)", src.execute("SELECT * FROM messages"))
    dst.commit()
    src.close()
    dst.close()
    old.unlink()


def _storage_file(path: Path) -> Path:
    return next(p for p in path.iterdir() if p.name != "metadata.yaml")


def _plain(count: int = 10) -> list[Topic]:
    return [
        Topic("/chatter", STRING, count),
        Topic("/goal", STRING, 3, (qos(QosDurability.TRANSIENT_LOCAL),)),
    ]


def _expect(topics: list[Topic]) -> dict[str, tuple[str, int]]:
    def norm(name: str, msgtype: str) -> tuple[str, str]:
        parts = msgtype.split("/")
        return ("/" + name.lstrip("/"), f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else msgtype)

    return {norm(t.name, t.msgtype)[0]: (norm(t.name, t.msgtype)[1], t.count) for t in topics}


def make_version(root: Path, storage: str, version: int) -> Case:
    path = root / f"v{version}_{storage}"
    topics = _plain()
    _write(path, storage, topics)
    downgrade_metadata(path, version)
    if storage == "sqlite3" and version <= 5:
        downgrade_sqlite(_storage_file(path), "foxy" if version == 4 else "humble")
    return Case(path, storage, _expect(topics), f"metadata v{version}")


def make_qos_mismatch(root: Path, storage: str) -> Case:
    path = root / f"qos_mismatch_{storage}"
    topics = [
        Topic("/topic", STRING, 10, (qos(limit=MAX_TIME),)),
        Topic("/rosout", LOG, 10, (qos(QosDurability.TRANSIENT_LOCAL, MAX_TIME),)),
        Topic("/parameter_events", "rcl_interfaces/msg/ParameterEvent", 0, (qos(limit=MAX_TIME),)),
    ]
    _write(path, storage, topics)
    meta = _meta(path)
    for entry in meta["rosbag2_bagfile_information"]["topics_with_message_count"]:
        for p in entry["topic_metadata"]["offered_qos_profiles"]:
            for key in ("deadline", "lifespan", "liveliness_lease_duration"):
                p[key] = {"sec": 0, "nsec": 0}  # the yaml says 0 where the storage says "infinite"
    _save_meta(path, meta)
    downgrade_metadata(path, 4)
    return Case(path, storage, _expect(topics), "talker: yaml QoS differs from storage QoS")


def make_split(root: Path, storage: str, parts: int = 3) -> Case:
    path = root / f"split_{storage}"
    path.mkdir()
    per_part = 4
    metas = []
    for i in range(parts):
        part = root / f"_part{i}_{storage}"
        _write(part, storage, [Topic("/chatter", STRING, per_part)], index_from=i * per_part)
        f = _storage_file(part)
        f.rename(path / f"split_{storage}_{i}{f.suffix}")
        metas.append(_meta(part)["rosbag2_bagfile_information"])
        shutil.rmtree(part)
    info = metas[0]
    info["relative_file_paths"] = [p.name for p in sorted(path.iterdir())]
    info["files"] = [
        dict(m["files"][0], path=name) for m, name in zip(metas, info["relative_file_paths"], strict=True)
    ]
    info["message_count"] = parts * per_part
    info["duration"] = {"nanoseconds": (parts * per_part - 1) * PERIOD_NS}
    info["topics_with_message_count"][0]["message_count"] = parts * per_part
    _save_meta(path, {"rosbag2_bagfile_information": info})
    return Case(path, storage, {"/chatter": (STRING, parts * per_part)}, f"{parts} storage files")


def make_zstd(root: Path, storage: str, mode: str) -> Case:
    path = root / f"zstd_{mode}_{storage}"
    topics = _plain()
    _write(path, storage, topics, compression=CompressionMode[mode.upper()])
    return Case(path, storage, _expect(topics), f"zstd {mode} compression")


def make_old_style_names(root: Path, storage: str) -> Case:
    path = root / f"old_style_names_{storage}"
    topics = [Topic("/chatter", "std_msgs/String", 5, msgdef="string data\n")]
    _write(path, storage, topics)
    return Case(path, storage, _expect(topics), "types written pkg/Type")


def make_relative_names(root: Path, storage: str) -> Case:
    path = root / f"relative_names_{storage}"
    topics = [Topic("a_empty", STRING, 4), Topic("ns/b_topic", STRING, 2)]
    _write(path, storage, topics)
    return Case(path, storage, _expect(topics), "relative topic names")


BASIC_EVENT_DEF = "uint8 info\n"  # stands in for service_msgs/ServiceEventInfo + request + response
WRITE_SPLIT_DEF = "string closed_file\nstring opened_file\nstring node_name\n"


def make_service_events(root: Path, storage: str) -> Case:
    path = root / f"service_events_{storage}"
    latched = (qos(QosDurability.TRANSIENT_LOCAL, MAX_TIME),)
    topics = [
        Topic("/events/write_split", "rosbag2_interfaces/msg/WriteSplitEvent", 0, msgdef=WRITE_SPLIT_DEF),
        Topic("/test_service1/_service_event", "test_msgs/srv/BasicTypes_Event", 4, latched, BASIC_EVENT_DEF),
        Topic("/test_service2/_service_event", "test_msgs/srv/BasicTypes_Event", 4, latched, BASIC_EVENT_DEF),
        Topic("/test_topic1", "test_msgs/msg/Strings", 1, msgdef="string string_value\n"),
        Topic("/chatter", STRING, 3),
    ]
    _write(path, storage, topics)
    return Case(path, storage, _expect(topics), "Jazzy record -a: service events, write_split")


def make_window(root: Path, storage: str) -> Case:
    """Messages outside the metadata's window: the yaml claims a later start and a shorter duration."""
    path = root / f"window_{storage}"
    topics = _plain()
    _write(path, storage, topics)
    meta = _meta(path)
    info = meta["rosbag2_bagfile_information"]
    info["starting_time"]["nanoseconds_since_epoch"] = START_NS + 2 * PERIOD_NS
    info["duration"]["nanoseconds"] = 3 * PERIOD_NS
    _save_meta(path, meta)
    return Case(path, storage, _expect(topics), "storage outside the yaml's start/duration")


def make_no_metadata(root: Path, storage: str) -> Case:
    path = root / f"no_metadata_{storage}"
    topics = _plain(3)
    _write(path, storage, topics)
    (path / "metadata.yaml").unlink()
    return Case(path, storage, _expect(topics), "metadata.yaml missing")


MAKERS: dict[str, Callable[[Path, str], Case]] = {
    **{f"v{v}": (lambda root, storage, v=v: make_version(root, storage, v)) for v in range(4, 10)},  # type: ignore[misc]
    "qos_mismatch": make_qos_mismatch,
    "split": make_split,
    "zstd_file": lambda root, storage: make_zstd(root, storage, "file"),
    "zstd_message": lambda root, storage: make_zstd(root, storage, "message"),
    "old_style_names": make_old_style_names,
    "relative_names": make_relative_names,
    "service_events": make_service_events,
    "window": make_window,
    "no_metadata": make_no_metadata,
}


def make_all(root: Path) -> dict[str, Case]:
    """Every case in both storages, keyed ``"<case>/<storage>"``."""
    return {f"{name}/{storage}": make(root, storage) for name, make in MAKERS.items() for storage in STORAGES}
