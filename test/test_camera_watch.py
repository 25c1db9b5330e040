"""cosmos_ros.camera_watch: when a silent camera is reported, and what the report says (no ROS graph)."""

from __future__ import annotations

import pytest

from cosmos_ros.camera_watch import (
    LARGE_FRAMES_PROFILE,
    CameraWatch,
    CameraWatchConfig,
    PublisherView,
    Silence,
    describe_silence,
)

IMAGE = "sensor_msgs/msg/Image"


def ticks(watch: CameraWatch, times: list[float]) -> list[tuple[Silence, ...]]:
    return [watch.tick(t) for t in times]


def test_reported_at_the_timeout_then_every_repeat_and_reset_by_a_frame() -> None:
    watch = CameraWatch(["/a", "/b"], CameraWatchConfig(timeout_s=2.0, repeat_s=3.0, max_step_s=1.0))
    out = ticks(watch, [10.0, 10.5, 11.0, 11.5])
    assert out == [(), (), (), ()] and watch.silent() == ()
    watch.arrived("/b")
    (due,) = ticks(watch, [12.0])
    assert due == (Silence("/a", 2.0, False),)  # /a at 2 s; /b was reset at 11.5 -> 0.5 s
    assert watch.silent() == (Silence("/a", 2.0, False),)
    assert ticks(watch, [13.0, 14.0]) == [(), (Silence("/b", 2.5, True),)]  # /a: repeat after 3 s only
    assert ticks(watch, [15.0, 16.0]) == [(Silence("/a", 5.0, False),), ()]
    watch.arrived("/a")
    assert [s.topic for s in watch.silent()] == ["/b"]
    watch.arrived("/unknown")  # a topic the watch does not know is ignored, not an error


def test_clock_jumps_and_pauses_do_not_raise_false_alarms() -> None:
    watch = CameraWatch(["/cam"], CameraWatchConfig(timeout_s=5.0, max_step_s=1.0))
    # The first /clock under use_sim_time jumps from 0 to the bag's time; a loop jumps back.
    assert ticks(watch, [0.0, 1.7e9, 1.7e9 + 0.5, 100.0]) == [(), (), (), ()]
    assert watch.silent() == ()  # 1.0 + 0.5 + 0.0 s counted, not 1.7e9
    # A lockstep pause: the clock stands still for many ticks.
    assert all(t == () for t in ticks(watch, [100.0] * 50))
    # Then it runs again without frames: reported after 5 s of clock time in total.
    out = ticks(watch, [100.0 + k for k in range(1, 5)])
    assert out[-1] == (Silence("/cam", 5.5, False),) and out[:-1] == [(), (), ()]


def test_reset_starts_over() -> None:
    watch = CameraWatch(["/cam"], CameraWatchConfig(timeout_s=1.0, max_step_s=1.0))
    ticks(watch, [0.0, 1.0, 2.0])
    assert watch.silent()
    watch.reset()
    assert watch.silent() == () and watch.tick(50.0) == ()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"repeat_s": float("nan")}, "repeat_s"),
        ({"max_step_s": -1}, "max_step"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CameraWatchConfig(**kwargs)
    with pytest.raises(ValueError, match="at least one"):
        CameraWatch([], CameraWatchConfig())


def test_advice_without_publishers_points_at_names_and_discovery() -> None:
    text = describe_silence(Silence("/arm/cam", 6.0, False), [], IMAGE, compressed=False)
    assert "'/arm/cam' for 6.0 s (since the planner was activated)" in text
    assert "no publisher" in text and "ROS_DOMAIN_ID" in text and LARGE_FRAMES_PROFILE not in text


def test_advice_for_raw_frames_names_publishers_and_the_transport_fixes() -> None:
    pubs = [
        PublisherView("/camera_driver", IMAGE, reliable=False),
        PublisherView("/sim", IMAGE, reliable=True),
    ]
    text = describe_silence(Silence("/cam", 12.0, True), pubs, IMAGE, compressed=False)
    assert "(since its last one)" in text
    seen = (
        "publishers: 2 (/camera_driver [sensor_msgs/msg/Image, best effort], "
        "/sim [sensor_msgs/msg/Image, reliable])"
    )
    assert seen in text
    for fix in (
        LARGE_FRAMES_PROFILE,
        "FASTDDS_DEFAULT_PROFILES_FILE",
        "CompressedImage",
        "net.core.rmem_max",
    ):
        assert fix in text


def test_advice_for_a_type_mismatch_names_both_types() -> None:
    pubs = [PublisherView("/republish", "sensor_msgs/msg/CompressedImage", reliable=True)]
    text = describe_silence(Silence("/cam", 5.0, False), pubs, IMAGE, compressed=False)
    assert "subscribes sensor_msgs/msg/Image but the topic carries sensor_msgs/msg/CompressedImage" in text
    assert "'compressed' parameter" in text


def test_advice_for_compressed_does_not_blame_frame_size() -> None:
    compressed = "sensor_msgs/msg/CompressedImage"
    text = describe_silence(
        Silence("/cam", 5.0, True), [PublisherView("/c", compressed, True)], compressed, True
    )
    assert LARGE_FRAMES_PROFILE not in text and "publisher is running" in text
