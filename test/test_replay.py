"""Replay core without ROS: bag reading (mcap and sqlite3 read identically), schedule, remap, errors,
recorder, the demo bag's content, and the CLI's --list / --dry-run / error paths."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from cosmos_ros.images import compressed_msg_to_rgb, image_msg_to_rgb
from cosmos_ros.replay import (
    Bag,
    BagNotFoundError,
    BagRecorder,
    CorruptBagError,
    MissingTopicError,
    ReplayError,
    ReplayOptions,
    UnknownTypeError,
    bag_dir_for,
    build_schedule,
    parse_remap,
    read_info,
    select_topics,
)
from cosmos_ros.replay.types import ensure_type, find_msg_file, import_msg_class, make_typestore, msgdef_of
from cosmos_ros.tools import replay as replay_cli
from cosmos_ros.tools.make_demo_bag import GOAL, START_NS, DemoBagConfig, make_demo_bag, render_scene

SMALL = {"duration_s": 1.0, "fps": 10.0, "width": 64, "height": 48, "state_rate_hz": 20.0}


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    out = {}
    for storage in ("mcap", "sqlite3"):
        out[storage] = root / f"demo_{storage}"
        make_demo_bag(out[storage], DemoBagConfig(storage=storage, **SMALL))
    return out


def all_messages(path: Path) -> list[tuple[int, str, str, bytes]]:
    with Bag(path) as bag:
        return [(m.time_ns, m.topic, m.msgtype, m.data) for m in bag.messages()]


# --- reading ------------------------------------------------------------------------------------------------


def test_mcap_and_sqlite3_read_identically(bags: dict[str, Path]) -> None:
    a, b = read_info(bags["mcap"]), read_info(bags["sqlite3"])
    assert (a.storage, b.storage) == ("mcap", "sqlite3")
    assert a.topics == b.topics
    assert (a.start_ns, a.end_ns, a.message_count) == (b.start_ns, b.end_ns, b.message_count)
    ma, mb = all_messages(bags["mcap"]), all_messages(bags["sqlite3"])
    assert len(ma) == a.message_count > 0
    assert ma == mb  # same order, times, types and bytes
    assert [m[0] for m in ma] == sorted(m[0] for m in ma)


def test_single_storage_file_reads_like_the_directory(bags: dict[str, Path]) -> None:
    ref = all_messages(bags["mcap"])
    assert all_messages(bags["mcap"] / "demo_mcap.mcap") == ref
    assert all_messages(bags["sqlite3"] / "demo_sqlite3.db3") == ref


def test_schedules_identical_across_storages(bags: dict[str, Path]) -> None:
    options = ReplayOptions(topics=("/camera/image_raw", "goal"), rate=2.0, start_offset_s=0.25)
    scheds = []
    for storage in ("mcap", "sqlite3"):
        with Bag(bags[storage]) as bag:
            scheds.append(list(build_schedule(bag.messages, bag.info, options)))
    assert scheds[0] == scheds[1] and len(scheds[0]) > 0


def test_demo_bag_is_deterministic_and_small(tmp_path: Path, bags: dict[str, Path]) -> None:
    again = tmp_path / "again"
    make_demo_bag(again, DemoBagConfig(storage="mcap", **SMALL))
    assert all_messages(again) == all_messages(bags["mcap"])
    with pytest.raises(FileExistsError):
        make_demo_bag(again)
    default = tmp_path / "default"
    counts = make_demo_bag(default)
    size = sum(p.stat().st_size for p in default.iterdir())
    assert size < 4e6, size  # "a few MB"
    assert counts["/camera/image_raw"] == 41 and counts["/goal"] == 5


def test_demo_bag_content(bags: dict[str, Path]) -> None:
    info = read_info(bags["mcap"])
    assert {t: i.msgtype for t, i in info.topics.items()} == {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/camera/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
        "/goal": "std_msgs/msg/String",
        "/joint_states": "sensor_msgs/msg/JointState",
        "/ee_pose": "geometry_msgs/msg/PoseStamped",
    }
    assert info.topics["/goal"].transient_local and not info.topics["/joint_states"].transient_local
    store = get_typestore(Stores.ROS2_KILTED)
    msgs = all_messages(bags["mcap"])
    images = [store.deserialize_cdr(d, t) for _, topic, t, d in msgs if topic == "/camera/image_raw"]
    comps = [
        store.deserialize_cdr(d, t) for _, topic, t, d in msgs if topic == "/camera/image_raw/compressed"
    ]
    assert len(images) == len(comps) == 11
    last = images[-1]
    stamp_ns = last.header.stamp.sec * 10**9 + last.header.stamp.nanosec
    assert stamp_ns == START_NS + 10**9
    rgb = image_msg_to_rgb(last)
    np.testing.assert_array_equal(rgb, render_scene(1.0, 48, 64))
    # compressed images decode to nearly the same picture
    assert comps[-1].format == "rgb8; jpeg compressed bgr8"
    dec = compressed_msg_to_rgb(comps[-1])
    assert dec.shape == rgb.shape and np.abs(dec.astype(int) - rgb.astype(int)).mean() < 6
    # images move: first and last frame differ
    assert not np.array_equal(image_msg_to_rgb(images[0]), rgb)
    goal = next(store.deserialize_cdr(d, t) for _, topic, t, d in msgs if topic == "/goal")
    assert goal.data == GOAL
    js = next(store.deserialize_cdr(d, t) for _, topic, t, d in msgs if topic == "/joint_states")
    assert list(js.name)[:7] == [f"panda_joint{i}" for i in range(1, 8)] and len(js.position) == 10
    # the arm7_joints gripper axis, measured: the opening between the two fingers (their sum, m)
    assert list(js.name)[7:] == ["panda_finger_joint1", "panda_finger_joint2", "gripper"]
    assert js.position[9] == pytest.approx(js.position[7] + js.position[8]) and js.position[9] > 0
    pose = next(store.deserialize_cdr(d, t) for _, topic, t, d in msgs if topic == "/ee_pose")
    assert pose.header.frame_id == "base_link"  # the umi_pose_gripper limits' frame (README pose example)


# --- schedule -----------------------------------------------------------------------------------------------


def schedule(path: Path, options: ReplayOptions, n: int | None = None) -> list:
    with Bag(path) as bag:
        return list(itertools.islice(build_schedule(bag.messages, bag.info, options), n))


def test_recorded_timing_and_rate(bags: dict[str, Path]) -> None:
    info = read_info(bags["mcap"])
    s1 = schedule(bags["mcap"], ReplayOptions())
    s2 = schedule(bags["mcap"], ReplayOptions(rate=2.0))
    assert len(s1) == info.message_count
    for a, b in zip(s1, s2, strict=True):
        assert a.play_time_s == pytest.approx((a.bag_time_ns - info.start_ns) / 1e9)
        assert b.play_time_s == pytest.approx(a.play_time_s / 2)
        assert a.sim_time_ns == a.bag_time_ns and a.loop_index == 0
    assert s1[0].play_time_s == 0.0
    assert s1[-1].play_time_s == pytest.approx(info.duration_s)


def test_start_offset_skips_and_restarts_the_clock(bags: dict[str, Path]) -> None:
    info = read_info(bags["mcap"])
    s = schedule(bags["mcap"], ReplayOptions(start_offset_s=0.5))
    assert all(m.bag_time_ns >= info.start_ns + 5 * 10**8 for m in s)
    assert s[0].play_time_s == pytest.approx((s[0].bag_time_ns - info.start_ns) / 1e9 - 0.5)
    full = schedule(bags["mcap"], ReplayOptions())
    assert len(s) == sum(m.bag_time_ns >= info.start_ns + 5 * 10**8 for m in full)
    with pytest.raises(ValueError, match="past the bag's end"):
        schedule(bags["mcap"], ReplayOptions(start_offset_s=5.0))


def test_end_offset_and_throttle_choose_messages_by_bag_time_only(bags: dict[str, Path]) -> None:
    info = read_info(bags["mcap"])
    full = schedule(bags["mcap"], ReplayOptions())
    cut = schedule(bags["mcap"], ReplayOptions(end_offset_s=0.5))
    assert cut == [m for m in full if m.bag_time_ns <= info.start_ns + 5 * 10**8] and len(cut) < len(full)
    # throttle: camera frames (10 fps, +2 ms) at least 0.3 s apart -> 0.0, 0.3, 0.6, 0.9 s; others untouched
    cam = "/camera/image_raw"
    thr = schedule(bags["mcap"], ReplayOptions(throttle=((cam.lstrip("/"), 0.3),)))
    frames = [m.bag_time_ns - info.start_ns for m in thr if m.topic == cam]
    assert frames == [2_000_000 + k * 300_000_000 for k in range(4)]
    assert [m for m in thr if m.topic != cam] == [m for m in full if m.topic != cam]
    # each loop pass throttles the same way
    looped = schedule(bags["mcap"], ReplayOptions(topics=(cam,), throttle=((cam, 0.3),), loop=True), n=8)
    assert [m.bag_time_ns for m in looped[4:]] == [m.bag_time_ns for m in looped[:4]]
    with pytest.raises(MissingTopicError, match="throttled"):
        schedule(bags["mcap"], ReplayOptions(topics=("/goal",), throttle=((cam, 0.3),)))


def test_loop_continues_the_clock(bags: dict[str, Path]) -> None:
    info = read_info(bags["mcap"])
    one = schedule(bags["mcap"], ReplayOptions(topics=("/goal",)))
    looped = schedule(
        bags["mcap"], ReplayOptions(topics=("/goal",), loop=True, loop_gap_s=0.5), n=3 * len(one)
    )
    period = info.end_ns - info.start_ns + 5 * 10**8
    assert [m.loop_index for m in looped] == [k for k in range(3) for _ in one]
    for k in range(3):
        for a, b in zip(one, looped[k * len(one) : (k + 1) * len(one)], strict=True):
            assert b.data == a.data and b.bag_time_ns == a.bag_time_ns
            assert b.sim_time_ns == a.sim_time_ns + k * period
    times = [m.play_time_s for m in looped]
    assert times == sorted(times)


def test_topic_selection_and_remap(bags: dict[str, Path]) -> None:
    s = schedule(
        bags["mcap"],
        ReplayOptions(topics=("/camera/image_raw", "/goal"), remap=(parse_remap("goal:=/task"),)),
    )
    assert {m.topic for m in s} == {"/camera/image_raw", "/task"}
    info = read_info(bags["mcap"])
    played = select_topics(info, ReplayOptions(remap=(("/goal", "/task"),)))
    assert [(p.bag_topic, p.out_topic) for p in played if p.bag_topic == "/goal"] == [("/goal", "/task")]
    assert len(played) == 5


def test_missing_topic_and_bad_remap(bags: dict[str, Path]) -> None:
    info = read_info(bags["mcap"])
    with pytest.raises(MissingTopicError, match=r"/nope.*camera/image_raw"):
        select_topics(info, ReplayOptions(topics=("/nope",)))
    with pytest.raises(MissingTopicError, match="remap source"):
        select_topics(info, ReplayOptions(topics=("/goal",), remap=(("/joint_states", "/js"),)))
    with pytest.raises(ValueError, match="two types"):
        select_topics(info, ReplayOptions(remap=(("/goal", "/x"), ("/ee_pose", "/x"))))
    with Bag(bags["mcap"]) as bag, pytest.raises(MissingTopicError):
        list(bag.messages(["/nope"]))
    for bad in ("a=b", "a:=b:=c", ":=b", "a:=", "a b:=c", "a:=b/"):
        with pytest.raises(ValueError, match="remap"):
            parse_remap(bad)
    assert parse_remap(" cam:=/ns/cam0 ") == ("/cam", "/ns/cam0")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate": 0.0}, "rate"),
        ({"rate": float("nan")}, "rate"),
        ({"start_offset_s": -1.0}, "start_offset_s"),
        ({"loop_gap_s": -0.1}, "loop_gap_s"),
        ({"remap": (("/a", "/b"), ("a", "/c"))}, "twice"),
        ({"end_offset_s": 0.5, "start_offset_s": 0.5}, "end_offset_s"),
        ({"end_offset_s": float("inf")}, "end_offset_s"),
        ({"throttle": (("/a", 0.0),)}, "throttle interval"),
        ({"throttle": (("/a", 1.0), ("a", 2.0))}, "twice"),
    ],
)
def test_options_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ReplayOptions(**kwargs)


# --- errors -------------------------------------------------------------------------------------------------


def test_missing_bag(tmp_path: Path) -> None:
    with pytest.raises(BagNotFoundError, match="does not exist"):
        Bag(tmp_path / "nope")


def corrupt_cases(tmp_path: Path, bags: dict[str, Path]) -> dict[str, Path]:
    import shutil

    cases = {}
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(b"this is not an mcap file" * 10)
    cases["garbage mcap"] = garbage
    db = tmp_path / "garbage.db3"
    db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    cases["garbage db3"] = db
    trunc = tmp_path / "truncated"
    shutil.copytree(bags["mcap"], trunc)
    f = trunc / "demo_mcap.mcap"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    cases["truncated mcap"] = trunc
    bad_meta = tmp_path / "bad_meta"
    shutil.copytree(bags["sqlite3"], bad_meta)
    (bad_meta / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed")
    cases["bad metadata"] = bad_meta
    no_meta = tmp_path / "no_meta"
    no_meta.mkdir()
    cases["empty dir"] = no_meta
    other = tmp_path / "photo.jpg"
    other.write_bytes(b"\xff\xd8")
    cases["not a bag"] = other
    return cases


def test_corrupt_bags_are_clear_errors(tmp_path: Path, bags: dict[str, Path]) -> None:
    for name, path in corrupt_cases(tmp_path, bags).items():
        with pytest.raises(CorruptBagError) as err, Bag(path) as bag:  # open or read, whichever notices
            list(bag.messages())
        assert str(path) in str(err.value), name


def write_custom_bag(path: Path) -> None:
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/thing", "not_a_pkg/msg/Thing", msgdef="int32 x\n", rihs01="RIHS01_" + "0" * 64)
        w.write(c, 1, b"\x00\x01\x00\x00\x2a\x00\x00\x00")


def test_unknown_type(tmp_path: Path) -> None:
    write_custom_bag(tmp_path / "custom")
    # reading raw bytes works regardless of the type
    assert read_info(tmp_path / "custom").topics["/thing"].msgtype == "not_a_pkg/msg/Thing"
    with pytest.raises(UnknownTypeError, match="not_a_pkg"):
        import_msg_class("not_a_pkg/msg/Thing")
    with pytest.raises(UnknownTypeError, match="form"):
        import_msg_class("std_msgs/String")
    with pytest.raises(UnknownTypeError, match="no class"):
        import_msg_class("std_msgs/msg/NoSuchThing")
    with pytest.raises(UnknownTypeError, match="no definition"):
        BagRecorder(tmp_path / "out", {"/thing": "not_a_pkg/msg/Thing"})
    assert not (tmp_path / "out").exists()


# --- recorder -----------------------------------------------------------------------------------------------


def test_recorder_round_trip_with_our_own_types(tmp_path: Path) -> None:
    store = make_typestore()
    ensure_type(store, "cosmos_ros/msg/ActionSequence")
    T = store.types  # noqa: N806
    traj = T["trajectory_msgs/msg/JointTrajectory"](
        header=T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=5, nanosec=7), frame_id="base"
        ),
        joint_names=["j1", "j2"],
        points=[],
    )
    seq = T["cosmos_ros/msg/ActionSequence"](
        header=T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=5, nanosec=7), frame_id="base"
        ),
        plan_id=3,
        goal="g",
        action_space="arm7_joints",
        model_id="tiny",
        backend="diffusers",
        step_period=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=66_666_667),
        trajectory=traj,
        ee_poses=T["geometry_msgs/msg/PoseArray"](header=traj.header, poses=[]),
        gripper=np.zeros(0),
        raw_width=2,
        raw_actions=np.array([0.5, -0.5], dtype=np.float32),
        inference_time_s=0.1,
        queue_time_s=0.01,
        expected_latency_s=0.0,
        latency_p95_s=0.0,
        prefix_steps=0,
        planner_session_id=0,
    )
    data = bytes(store.serialize_cdr(seq, "cosmos_ros/msg/ActionSequence"))
    out = tmp_path / "out.mcap"
    with BagRecorder(
        out, {"/plan": "cosmos_ros/msg/ActionSequence", "status": "cosmos_ros/msg/SafetyStatus"}
    ) as rec:
        assert rec.write("/plan", 10, data)
        assert rec.topics == ("/plan", "/status")
    assert not rec.write("/plan", 11, data)  # closed
    assert bag_dir_for(out) == tmp_path / "out" and (tmp_path / "out" / "out.mcap").is_file()
    with Bag(bag_dir_for(out)) as bag:
        assert bag.info.topics["/plan"].msgtype == "cosmos_ros/msg/ActionSequence"
        assert bag.info.topics["/status"].count == 0
        (msg,) = list(bag.messages())
        conn = next(c for c in bag._reader.connections if c.topic == "/plan")
        assert "raw_actions" in conn.msgdef.data  # the bag carries the definition
    assert msg.data == data and msg.time_ns == 10
    back = make_typestore()
    ensure_type(back, "cosmos_ros/msg/ActionSequence")
    decoded = back.deserialize_cdr(msg.data, "cosmos_ros/msg/ActionSequence")
    assert decoded.plan_id == 3 and decoded.raw_actions.tolist() == [0.5, -0.5]
    with pytest.raises(ReplayError, match="exists"):
        BagRecorder(out, {"/plan": "std_msgs/msg/String"})


def test_own_type_hash_matches_rosidl_when_built() -> None:
    path = find_msg_file("cosmos_ros/msg/ActionSequence")
    assert path is not None
    json_file = path.with_suffix(".json")
    if not json_file.is_file():
        pytest.skip(reason="no rosidl-generated ActionSequence.json (package not in AMENT_PREFIX_PATH)")
    rosidl_hash = json.loads(json_file.read_text())["type_hashes"][0]["hash_string"]
    assert msgdef_of(make_typestore(), "cosmos_ros/msg/ActionSequence")[1] == rosidl_hash


# --- CLI (no ROS needed for these paths) --------------------------------------------------------------------


def test_cli_list_and_dry_run(bags: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert replay_cli.main([str(bags["sqlite3"]), "--list"]) == 0
    out = capsys.readouterr().out
    assert "sqlite3" in out and "/camera/image_raw/compressed" in out and "sensor_msgs/msg/JointState" in out
    assert (
        replay_cli.main([str(bags["mcap"]), "--dry-run", "--topics", "/goal", "--remap", "/goal:=/task"]) == 0
    )
    assert "/goal -> /task [std_msgs/msg/String]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--dry-run", "--topics", "/nope"], "not in bag"),
        (["--dry-run", "--remap", "bad"], "remap"),
        (["--dry-run", "--rate", "-1"], "rate"),
        (["--record-topics", "/x"], "--record"),
    ],
)
def test_cli_errors(
    bags: dict[str, Path], capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    assert replay_cli.main([str(bags["mcap"]), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("replay: error:") and match in err


def test_cli_corrupt_bag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.mcap"
    bad.write_bytes(b"nope")
    assert replay_cli.main([str(bad), "--list"]) == 2
    assert "cannot open bag" in capsys.readouterr().err


# --- a bag in the layout `ros2 bag record` writes on Humble -------------------------------------------------

HUMBLE_QOS = """- history: 3
  depth: 0
  reliability: 1
  durability: {durability}
  deadline:
    sec: 2147483647
    nsec: 4294967295
  lifespan:
    sec: 2147483647
    nsec: 4294967295
  liveliness: 1
  liveliness_lease_duration:
    sec: 2147483647
    nsec: 4294967295
  avoid_ros_namespace_conventions: false"""


def write_humble_style_bag(path: Path, messages: list[tuple[int, str, str, bytes]]) -> None:
    """Metadata version 5 and sqlite3 schema version 3 (topics with offered_qos_profiles, no message
    definitions), file ``<name>_0.db3``: Humble's rosbag2 layout, written by hand (no rosbag2 here)."""
    import sqlite3

    import yaml

    path.mkdir()
    db_name = f"{path.name}_0.db3"
    topics = {}
    for _, topic, msgtype, _ in messages:
        topics.setdefault(topic, (len(topics) + 1, msgtype))
    con = sqlite3.connect(path / db_name)
    con.executescript(
        "CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);"
        "INSERT INTO schema VALUES (3, 'humble');"
        "CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, "
        "serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);"
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, "
        "timestamp INTEGER NOT NULL, data BLOB NOT NULL);"
        "CREATE INDEX timestamp_idx ON messages (timestamp ASC);"
    )
    for topic, (tid, msgtype) in topics.items():
        qos = HUMBLE_QOS.format(durability=1 if topic == "/goal" else 2)
        con.execute("INSERT INTO topics VALUES (?, ?, ?, 'cdr', ?)", (tid, topic, msgtype, qos))
    con.executemany(
        "INSERT INTO messages(topic_id, timestamp, data) VALUES (?, ?, ?)",
        [(topics[topic][0], t, data) for t, topic, _, data in messages],
    )
    con.commit()
    con.close()
    start, end = messages[0][0], messages[-1][0]
    counts = {t: sum(m[1] == t for m in messages) for t in topics}
    meta = {
        "rosbag2_bagfile_information": {
            "version": 5,
            "storage_identifier": "sqlite3",
            "duration": {"nanoseconds": end - start},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": len(messages),
            "topics_with_message_count": [
                {
                    "topic_metadata": {
                        "name": topic,
                        "type": msgtype,
                        "serialization_format": "cdr",
                        "offered_qos_profiles": HUMBLE_QOS.format(durability=1 if topic == "/goal" else 2),
                    },
                    "message_count": counts[topic],
                }
                for topic, (_, msgtype) in topics.items()
            ],
            "compression_format": "",
            "compression_mode": "",
            "relative_file_paths": [db_name],
            "files": [
                {
                    "path": db_name,
                    "starting_time": {"nanoseconds_since_epoch": start},
                    "duration": {"nanoseconds": end - start},
                    "message_count": len(messages),
                }
            ],
        }
    }
    (path / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


def test_humble_layout_sqlite3_bag_reads_like_ours(tmp_path: Path, bags: dict[str, Path]) -> None:
    ref = all_messages(bags["mcap"])
    write_humble_style_bag(tmp_path / "humble", ref)
    info, ref_info = read_info(tmp_path / "humble"), read_info(bags["mcap"])
    assert info.storage == "sqlite3" and info.topics == ref_info.topics  # incl. the latched /goal
    assert (info.start_ns, info.end_ns) == (ref_info.start_ns, ref_info.end_ns)
    assert all_messages(tmp_path / "humble") == ref
    opts = ReplayOptions(rate=3.0, start_offset_s=0.1)
    assert schedule(tmp_path / "humble", opts) == schedule(bags["mcap"], opts)
