"""cosmos_ros.frames: latest-frame buffer (sync, staleness, drop counting, threads) and tiling."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cosmos_ros.frames import (
    SET_REASONS,
    Frame,
    FrameBuffer,
    FrameBufferConfig,
    FrameSet,
    TileLayout,
    tile,
)


def img(height: int = 4, width: int = 6, value: int = 0) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def buffer(*cameras: str, tol: float = 0.05, max_age: float | None = None) -> FrameBuffer:
    return FrameBuffer(FrameBufferConfig(cameras=cameras, sync_tolerance_s=tol, max_age_s=max_age))


def test_single_camera_latest_and_drop_counting() -> None:
    fb = buffer("cam")
    assert fb.latest_set().reason == "no_frames"
    for k in range(5):
        assert fb.push("cam", 1.0 + 0.1 * k, img(value=k), now_s=1.0 + 0.1 * k)
    res = fb.take_set(now_s=1.5)
    assert res.reason == "" and res.frame_set is not None
    assert res.frame_set.frames[0].image[0, 0, 0] == 4
    assert res.frame_set.newest_stamp_s == pytest.approx(1.4)
    assert res.frame_set.newest_received_s == pytest.approx(1.4)
    st = fb.stats()
    assert st.received == {"cam": 5} and st.dropped == {"cam": 4} and st.sets_taken == 1
    # Same frame is not handed out twice, and the used frame is not counted as dropped when replaced.
    assert fb.take_set().reason == "not_new"
    fb.push("cam", 1.6, img(value=9), now_s=1.6)
    assert fb.stats().dropped == {"cam": 4}
    again = fb.take_set()
    assert again.frame_set is not None and again.frame_set.frames[0].image[0, 0, 0] == 9


def test_latest_set_does_not_consume() -> None:
    fb = buffer("cam")
    fb.push("cam", 1.0, img(), now_s=1.0)
    assert fb.latest_set().frame_set is not None
    assert fb.latest_set().frame_set is not None
    assert fb.take_set().frame_set is not None
    assert fb.stats().sets_taken == 1


def test_out_of_order_and_duplicate_frames_are_refused_and_counted() -> None:
    fb = buffer("cam")
    assert fb.push("cam", 2.0, img(value=2), now_s=2.0)
    assert not fb.push("cam", 1.0, img(value=1), now_s=2.1)
    assert not fb.push("cam", 2.0, img(value=3), now_s=2.2)
    st = fb.stats()
    assert st.out_of_order == {"cam": 2} and st.dropped == {"cam": 0} and st.total_dropped == 2
    fs = fb.latest_set().frame_set
    assert fs is not None and fs.frames[0].image[0, 0, 0] == 2


def test_two_cameras_sync_within_tolerance() -> None:
    fb = buffer("left", "right", tol=0.05)
    fb.push("left", 10.00, img(value=1), now_s=10.0)
    res = fb.latest_set()
    assert res.reason == "missing_camera" and "right" in res.detail
    fb.push("right", 10.04, img(value=2), now_s=10.05)
    res = fb.take_set()
    assert res.frame_set is not None
    assert [f.camera for f in res.frame_set.frames] == ["left", "right"]  # configured order
    assert res.frame_set.newest_stamp_s == pytest.approx(10.04)
    assert res.frame_set.oldest_stamp_s == pytest.approx(10.00)
    # right moves on, left lags beyond the tolerance -> out of sync, naming the lagging camera
    fb.push("right", 10.20, img(value=3), now_s=10.2)
    res = fb.take_set()
    assert res.frame_set is None and res.reason == "out_of_sync" and "left" in res.detail
    # a per-call tolerance override
    assert fb.latest_set(tolerance_s=0.25).frame_set is not None
    fb.push("left", 10.19, img(value=4), now_s=10.21)
    res = fb.take_set()
    assert res.frame_set is not None and res.frame_set.by_camera("left").image[0, 0, 0] == 4
    with pytest.raises(KeyError, match="cameras"):
        res.frame_set.by_camera("wrist")


def test_lagging_camera_catching_up_makes_a_new_set() -> None:
    fb = buffer("a", "b", tol=0.1)
    fb.push("a", 10.00, img(value=1), now_s=10.0)
    fb.push("b", 9.95, img(value=2), now_s=10.0)
    assert fb.take_set().frame_set is not None
    fb.push("b", 9.99, img(value=3), now_s=10.01)  # newer b, but not newer than a's 10.00
    res = fb.take_set()
    assert res.frame_set is not None and res.frame_set.by_camera("b").image[0, 0, 0] == 3
    assert res.frame_set.newest_stamp_s == pytest.approx(10.00)
    assert fb.take_set().reason == "not_new"


def test_tolerance_boundary_is_inclusive() -> None:
    fb = buffer("a", "b", tol=0.5)
    fb.push("a", 1.0, img(), now_s=1.0)
    fb.push("b", 1.5, img(), now_s=1.5)
    assert fb.latest_set().frame_set is not None
    assert fb.latest_set(tolerance_s=0.49).reason == "out_of_sync"


def test_stale_only_with_now() -> None:
    fb = buffer("cam", max_age=0.5)
    fb.push("cam", 1.0, img(), now_s=1.0)
    assert fb.latest_set(now_s=1.5).frame_set is not None
    res = fb.latest_set(now_s=1.6)
    assert res.reason == "stale" and "0.600" in res.detail
    assert fb.latest_set().frame_set is not None  # no clock given, no age check


def test_reasons_are_the_documented_ones() -> None:
    fb = buffer("a", "b", max_age=0.1)
    seen = {fb.latest_set().reason}
    fb.push("a", 1.0, img(), now_s=1.0)
    seen.add(fb.latest_set().reason)
    fb.push("b", 2.0, img(), now_s=2.0)
    seen.add(fb.latest_set().reason)
    fb.push("a", 2.0, img(), now_s=2.0)
    seen.add(fb.latest_set(now_s=5.0).reason)
    assert fb.take_set().frame_set is not None
    seen.add(fb.take_set().reason)
    assert seen == set(SET_REASONS)


def test_clear_counts_unused_frames_and_resets() -> None:
    fb = buffer("a", "b")
    fb.push("a", 1.0, img(), now_s=1.0)
    fb.push("b", 1.0, img(), now_s=1.0)
    assert fb.take_set().frame_set is not None
    fb.push("a", 2.0, img(), now_s=2.0)
    fb.clear()
    assert fb.stats().dropped == {"a": 1, "b": 0}
    assert fb.latest_set().reason == "no_frames"
    # after clear, older stamps are accepted again (e.g. a bag replayed from its start)
    assert fb.push("a", 0.5, img(), now_s=3.0)


def test_config_and_push_validation() -> None:
    with pytest.raises(ValueError, match="cameras"):
        FrameBufferConfig(cameras=())
    with pytest.raises(ValueError, match="unique"):
        FrameBufferConfig(cameras=("a", "a"))
    with pytest.raises(ValueError, match="sync_tolerance_s"):
        FrameBufferConfig(cameras=("a",), sync_tolerance_s=-1.0)
    with pytest.raises(ValueError, match="max_age_s"):
        FrameBufferConfig(cameras=("a",), max_age_s=0.0)
    fb = buffer("a")
    with pytest.raises(ValueError, match="not configured"):
        fb.push("b", 1.0, img(), now_s=1.0)
    with pytest.raises(ValueError, match="uint8"):
        fb.push("a", 1.0, np.zeros((2, 2, 3), np.float32), now_s=1.0)
    with pytest.raises(ValueError, match="finite"):
        fb.push("a", float("nan"), img(), now_s=1.0)
    with pytest.raises(ValueError, match="tolerance_s"):
        fb.latest_set(tolerance_s=-0.1)
    assert fb.stats().received == {"a": 0}  # refused input left no trace


def test_threads_lose_no_update() -> None:
    """Two producers and a consumer hammer the buffer; every frame is either used, dropped or refused."""
    fb = buffer("a", "b", tol=1e9)
    n = 2000
    taken: list[FrameSet] = []
    stop = threading.Event()

    def produce(cam: str) -> None:
        for k in range(n):
            fb.push(cam, float(k), img(1, 1, k % 256), now_s=float(k))
            if k % 20 == 0:
                time.sleep(0.001)  # let the consumer in, so sets are taken while frames arrive

    def consume() -> None:
        while not stop.is_set():
            res = fb.take_set()
            if res.frame_set is not None:
                taken.append(res.frame_set)

    threads = [threading.Thread(target=produce, args=(c,)) for c in ("a", "b")]
    consumer = threading.Thread(target=consume)
    consumer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    stop.set()
    consumer.join(timeout=30)
    assert not consumer.is_alive()
    final = fb.take_set()
    if final.frame_set is not None:
        taken.append(final.frame_set)
    st = fb.stats()
    assert st.received == {"a": n, "b": n}
    assert st.sets_taken == len(taken) > 10  # the threads really interleaved
    assert fb.take_set().reason == "not_new"  # everything held has been used now
    keys = [tuple(f.stamp_s for f in fs.frames) for fs in taken]
    assert len(set(keys)) == len(keys)  # no set handed out twice
    for cam in ("a", "b"):
        cam_stamps = [fs.by_camera(cam).stamp_s for fs in taken]
        assert cam_stamps == sorted(cam_stamps)  # per camera, never backwards
    for cam in ("a", "b"):
        used = len({fs.by_camera(cam).stamp_s for fs in taken})
        # every pushed frame is accounted for exactly once: used by a set, or dropped unused
        assert used + st.dropped[cam] + st.out_of_order[cam] == n, (cam, used, st)


# --- tiling ------------------------------------------------------------------------------------------------


def frame(camera: str, height: int, width: int, value: int) -> Frame:
    return Frame(camera, 1.0, img(height, width, value))


def test_tile_horizontal_scales_to_smallest_height() -> None:
    fs = FrameSet((frame("a", 40, 60, 10), frame("b", 20, 20, 200)))
    out = tile(fs, TileLayout("horizontal"))
    # a is scaled 40x60 -> 20x30 (aspect kept), b unchanged: 20 x (30 + 20)
    assert out.shape == (20, 50, 3) and out.dtype == np.uint8
    assert np.all(out[:, :30] == 10) and np.all(out[:, 30:] == 200)


def test_tile_vertical_scales_to_smallest_width() -> None:
    out = tile([frame("a", 10, 40, 1), frame("b", 10, 20, 2)], TileLayout("vertical"))
    assert out.shape == (5 + 10, 20, 3)
    assert np.all(out[:5] == 1) and np.all(out[5:] == 2)


def test_tile_grid_pads_short_rows_with_black() -> None:
    frames = [frame(c, 10, 10, v) for c, v in (("a", 1), ("b", 2), ("c", 3))]
    out = tile(frames, TileLayout("grid"))  # ceil(sqrt(3)) = 2 columns -> 2 rows
    assert out.shape == (20, 20, 3)
    assert np.all(out[:10, :10] == 1) and np.all(out[:10, 10:] == 2)
    assert np.all(out[10:, :10] == 3) and np.all(out[10:, 10:] == 0)
    assert tile(frames, TileLayout("grid", columns=3)).shape == (10, 30, 3)


def test_tile_select_and_single() -> None:
    frames = [frame("a", 10, 10, 1), frame("wrist", 8, 12, 2)]
    sel = tile(frames, TileLayout("select", camera="wrist"))
    assert sel.shape == (8, 12, 3) and np.all(sel == 2)
    with pytest.raises(ValueError, match="not among"):
        tile(frames, TileLayout("select", camera="ego"))
    assert tile(frames[:1], TileLayout("horizontal")).shape == (10, 10, 3)
    with pytest.raises(ValueError, match="at least one"):
        tile([], TileLayout())


def test_tile_layout_validation() -> None:
    with pytest.raises(ValueError, match="mode"):
        TileLayout("diagonal")
    with pytest.raises(ValueError, match="camera"):
        TileLayout("select")
    with pytest.raises(ValueError, match="columns"):
        TileLayout("grid", columns=0)
