"""Rosbag replay: read bags (mcap, sqlite3), schedule playback, record outputs (CLI: tools/replay.py).

The modules here are pure Python (``rosbags``); only :mod:`cosmos_ros.replay.player` imports rclpy, and it is
not imported by this package on purpose, so the core can be used and tested without ROS.
"""

from cosmos_ros.replay.bag import Bag, BagInfo, BagMessage, TopicInfo, normalize_topic, read_info
from cosmos_ros.replay.errors import (
    BagNotFoundError,
    CorruptBagError,
    MissingTopicError,
    ReplayError,
    UnknownTypeError,
)
from cosmos_ros.replay.recorder import BagRecorder, bag_dir_for
from cosmos_ros.replay.schedule import (
    PlayedTopic,
    ReplayOptions,
    ScheduledMessage,
    Timeline,
    build_schedule,
    parse_remap,
    plan_replay,
    select_topics,
)

__all__ = [
    "Bag",
    "BagInfo",
    "BagMessage",
    "BagNotFoundError",
    "BagRecorder",
    "CorruptBagError",
    "MissingTopicError",
    "PlayedTopic",
    "ReplayError",
    "ReplayOptions",
    "ScheduledMessage",
    "Timeline",
    "TopicInfo",
    "UnknownTypeError",
    "bag_dir_for",
    "build_schedule",
    "normalize_topic",
    "parse_remap",
    "plan_replay",
    "read_info",
    "select_topics",
]
