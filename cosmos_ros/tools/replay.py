"""``replay``: play a rosbag2 bag (mcap or sqlite3) into the graph and record chosen outputs to a new bag.

Examples::

    ros2 run cosmos_ros replay demo_bag --list
    ros2 run cosmos_ros replay demo_bag --topics /camera/image_raw /goal --remap /camera/image_raw:=/cam0 \\
        --clock --record out.mcap --record-topics /cosmos/plan:cosmos_ros/msg/ActionSequence

(or ``python -m cosmos_ros.tools.replay ...``). Exit codes: 0 done, 2 bad arguments or bag (the message says
why), 3 played fewer messages than the selection holds (besides those the options leave out; a stop by
``--duration`` is not counted; ``--allow-incomplete`` makes it 0), 130 interrupted.

Warnings (metadata and storage disagree, topics skipped) go to stderr, on ``--dry-run`` as on a real run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cosmos_ros.replay.bag import read_info
from cosmos_ros.replay.errors import ReplayError
from cosmos_ros.replay.schedule import ReplayOptions, parse_remap, plan_replay
from cosmos_ros.replay.types import why_not_importable

EXIT_INCOMPLETE = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="replay",
        description="Play a rosbag2 bag (mcap or sqlite3) and record outputs to a new mcap bag.",
    )
    p.add_argument("bag", help="bag directory, or a single .mcap / .db3 file")
    p.add_argument("--list", action="store_true", help="print the bag's topics and exit")
    p.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="topics to play (default: all)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    p.add_argument(
        "--start-offset", type=float, default=0.0, metavar="SEC", help="skip the first SEC of the bag"
    )
    p.add_argument("--loop", action="store_true", help="start again after the last message (until Ctrl-C)")
    p.add_argument("--loop-gap", type=float, default=0.0, metavar="SEC", help="bag time between passes")
    p.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="rename played topics")
    p.add_argument("--clock", action="store_true", help="publish /clock with the bag's time (use_sim_time)")
    p.add_argument("--clock-rate", type=float, default=100.0, metavar="HZ", help="/clock rate (default 100)")
    p.add_argument(
        "--record", type=Path, metavar="OUT", help="new mcap bag for --record-topics (OUT or OUT.mcap)"
    )
    p.add_argument(
        "--record-topics",
        nargs="+",
        default=[],
        metavar="TOPIC[:TYPE]",
        help="topics to record (type optional)",
    )
    p.add_argument(
        "--record-linger", type=float, default=1.0, metavar="SEC", help="keep recording after the end"
    )
    p.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="SEC",
        help="wait for subscribers before playing",
    )
    p.add_argument("--duration", type=float, metavar="SEC", help="stop after SEC of playback")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check topics, types and options against the bag as a real run does, print, exit",
    )
    p.add_argument(
        "--include-service-events",
        action="store_true",
        help="with no --topics, also play service-event topics and /events/write_split (skipped by default)",
    )
    p.add_argument(
        "--strict-types",
        action="store_true",
        help="with no --topics, fail on a topic whose type cannot be imported instead of skipping it",
    )
    p.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="exit 0 even when fewer messages were played than the selection holds",
    )
    return p


def _warn(lines: Sequence[str]) -> None:
    for line in lines:
        print(f"replay: warning: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def fail(msg: str) -> int:
        print(f"replay: error: {msg}", file=sys.stderr)
        return 2

    try:
        if args.list:
            print(read_info(args.bag).table())
            return 0
        options = ReplayOptions(
            topics=tuple(args.topics),
            rate=args.rate,
            start_offset_s=args.start_offset,
            loop=args.loop,
            loop_gap_s=args.loop_gap,
            remap=tuple(parse_remap(r) for r in args.remap),
            include_service_events=args.include_service_events,
            strict_types=args.strict_types,
        )
        if args.record_topics and args.record is None:
            return fail("--record-topics needs --record OUT")
        if args.dry_run:
            plan = plan_replay(read_info(args.bag), options, why_not_importable)
            _warn(plan.warnings)
            for t in plan.played:
                print(f"{t.bag_topic} -> {t.out_topic} [{t.msgtype}]")
            print(f"{plan.expected} messages on the played topics")
            print(f"duration at rate {options.rate}: {plan.timeline.play_time_s(plan.timeline.end_ns):.3f} s")
            return 0
        # rclpy only now: --list and --dry-run work without a ROS installation.
        from cosmos_ros.replay.player import PlayerConfig, play

        config = PlayerConfig(
            publish_clock=args.clock,
            clock_rate_hz=args.clock_rate,
            record_path=args.record,
            record_topics=tuple(args.record_topics),
            record_linger_s=args.record_linger,
            wait_for_subscribers_s=args.wait_for_subscribers,
            duration_s=args.duration,
        )
        report = play(args.bag, options, config)
    except (ReplayError, ValueError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130
    _warn(report.warnings)
    print(report.summary())
    if report.missing and not report.stopped_early and not args.allow_incomplete:
        print(
            f"replay: error: played {report.first_pass} of {report.expected} messages "
            f"({report.left_out} left out by options); --allow-incomplete accepts this",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    return 0


if __name__ == "__main__":
    sys.exit(main())
