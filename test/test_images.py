"""cosmos_ros.images: Image / CompressedImage fields -> RGB, checked against cv_bridge's documented semantics.

The reference below re-implements what ``cv_bridge.CvBridge().imgmsg_to_cv2(msg, "rgb8")`` does for 8-bit
encodings (an ``[H, step / bpp, C]`` array over ``data``, cut to ``width``, then ``cv2.cvtColor`` with
OpenCV's codes), by a different route than the module (which uses numpy strides), so the two can disagree.
"""

from __future__ import annotations

import array
import importlib.util
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmos_ros.images import (
    PACKED_ENCODINGS,
    REJECT_REASONS,
    ImageError,
    compressed_size,
    compressed_to_rgb,
    image_msg_to_rgb,
    image_to_rgb,
    rgb_to_compressed,
    rgb_to_image_fields,
)

BPP = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
CV_CODE = {
    "rgb8": None,
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}


def cv_bridge_reference(height: int, width: int, encoding: str, step: int, data: bytes) -> np.ndarray:
    """cv_bridge's imgmsg_to_cv2(msg, "rgb8") for 8-bit encodings: rows cut out of data, then cv2.cvtColor.

    Rows are cut at multiples of ``step`` as sensor_msgs/Image defines it. (cv_bridge's Python code reshapes
    to ``step // bpp`` pixels per row, which agrees whenever ``step`` is a multiple of the pixel size and
    mis-reads rows otherwise; the converter follows the message definition.)
    """
    c = BPP[encoding]
    rows = [np.frombuffer(data[r * step : r * step + width * c], np.uint8) for r in range(height)]
    im = np.stack(rows).reshape(height, width, c)
    if c == 1:
        im = im[..., 0]
    code = CV_CODE[encoding]
    return im if code is None else cv2.cvtColor(im, code)


def make_fields(
    rng: np.random.Generator, height: int, width: int, encoding: str, pad: int
) -> tuple[int, bytes]:
    """Random pixels with ``pad`` bytes of 0xEE padding per row; returns (step, data)."""
    c = BPP[encoding]
    step = width * c + pad
    rows = rng.integers(0, 256, size=(height, width * c), dtype=np.uint8)
    padded = np.full((height, step), 0xEE, dtype=np.uint8)
    padded[:, : width * c] = rows
    return step, padded.tobytes()


@pytest.mark.parametrize("encoding", PACKED_ENCODINGS)
@pytest.mark.parametrize("pad", [0, 1, 7])
def test_matches_cv_bridge_reference(encoding: str, pad: int) -> None:
    rng = np.random.default_rng(0)
    height, width = 5, 7
    step, data = make_fields(rng, height, width, encoding, pad)
    out = image_to_rgb(height, width, encoding, step, data)
    ref = cv_bridge_reference(height, width, encoding, step, data)
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize(
    ("encoding", "pixel", "rgb"),
    [
        ("rgb8", [10, 20, 30], [10, 20, 30]),
        ("bgr8", [10, 20, 30], [30, 20, 10]),
        ("rgba8", [10, 20, 30, 40], [10, 20, 30]),
        ("bgra8", [10, 20, 30, 40], [30, 20, 10]),
        ("mono8", [77], [77, 77, 77]),
    ],
)
def test_known_pixel(encoding: str, pixel: list[int], rgb: list[int]) -> None:
    # 2x2 image, the known pixel at (1, 0), everything else 0, one padding byte 0xFF per row.
    c = len(pixel)
    rows = np.zeros((2, 2 * c + 1), dtype=np.uint8)
    rows[:, -1] = 0xFF
    rows[1, :c] = pixel
    out = image_to_rgb(2, 2, encoding, 2 * c + 1, rows.tobytes())
    assert out[1, 0].tolist() == rgb
    assert out[0, 0].tolist() == [0, 0, 0] and out[1, 1].tolist() == [0, 0, 0]


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "array", "memoryview", "ndarray"])
def test_accepts_buffers_rclpy_gives(kind: str) -> None:
    raw = bytes(range(2 * 3 * 3))
    data = {
        "bytes": raw,
        "bytearray": bytearray(raw),
        "array": array.array("B", raw),  # what rclpy puts in msg.data for uint8[]
        "memoryview": memoryview(raw),
        "ndarray": np.frombuffer(raw, np.uint8).copy(),
    }[kind]
    out = image_to_rgb(2, 3, "rgb8", 9, data)
    np.testing.assert_array_equal(out.reshape(-1), np.arange(18, dtype=np.uint8))


def test_rgb8_is_zero_copy_read_only_view_and_copy_flag_copies() -> None:
    data = bytearray(range(2 * 10))  # step 10 = 3 px * 3 + 1 padding
    view = image_to_rgb(2, 3, "rgb8", 10, data)
    assert np.shares_memory(view, np.frombuffer(data, np.uint8))
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0, 0] = 1
    copied = image_to_rgb(2, 3, "rgb8", 10, data, copy=True)
    assert copied.flags.c_contiguous and copied.flags.writeable
    assert not np.shares_memory(copied, np.frombuffer(data, np.uint8))
    np.testing.assert_array_equal(view, copied)


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "bgra8", "mono8"])
def test_other_encodings_copy_exactly_once_into_contiguous(encoding: str) -> None:
    step, data = make_fields(np.random.default_rng(1), 3, 4, encoding, 2)
    out = image_to_rgb(3, 4, encoding, step, data)
    assert out.flags.c_contiguous and out.flags.writeable
    assert not np.shares_memory(out, np.frombuffer(data, np.uint8))


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((2, 2, "32FC1", 8, bytes(16)), "encoding"),
        ((2, 2, "bayer_rggb16", 4, bytes(8)), "encoding"),
        ((2, 2, "RGB8", 6, bytes(12)), "encoding"),  # encodings are case-sensitive in ROS
        ((0, 2, "rgb8", 6, b""), "size"),
        ((2, 0, "rgb8", 0, b""), "size"),
        ((2, 2, "rgb8", 5, bytes(10)), "step"),
        ((2, 2, "rgba8", 7, bytes(14)), "step"),
        ((2, 2, "mono8", 1, bytes(2)), "step"),
        ((2, 2, "rgb8", 6, bytes(11)), "data_length"),
        ((2, 2, "rgb8", 6, bytes(13)), "data_length"),
        ((2, 2, "rgb8", 7, bytes(12)), "data_length"),  # padded step but data without the padding
    ],
)
def test_errors_have_reasons(args: tuple, reason: str) -> None:
    with pytest.raises(ImageError) as err:
        image_to_rgb(*args)
    assert err.value.reason == reason
    assert err.value.reason in REJECT_REASONS
    assert str(err.value)  # a message a human can read


def test_too_large_is_checked_before_the_data() -> None:
    # A header claiming 100k x 100k with no data: refused as too large, without touching data.
    with pytest.raises(ImageError) as err:
        image_to_rgb(100_000, 100_000, "rgb8", 300_000, b"")
    assert err.value.reason == "too_large"
    with pytest.raises(ImageError) as err:
        image_to_rgb(4, 4, "rgb8", 12, bytes(48), max_pixels=15)
    assert err.value.reason == "too_large"
    assert image_to_rgb(4, 4, "rgb8", 12, bytes(48), max_pixels=16).shape == (4, 4, 3)


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_max_pixels_is_a_config_error(bad: object) -> None:
    with pytest.raises(ValueError, match="max_pixels") as err:
        image_to_rgb(1, 1, "rgb8", 3, bytes(3), max_pixels=bad)  # type: ignore[arg-type]
    assert not isinstance(err.value, ImageError)


def test_image_error_rejects_unknown_reason() -> None:
    with pytest.raises(ValueError, match="reason must be one of"):
        ImageError("oops", "x")


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    encoding=st.sampled_from(PACKED_ENCODINGS),
    pad=st.integers(0, 9),
    seed=st.integers(0, 2**16),
)
def test_generated_images_match_reference(
    height: int, width: int, encoding: str, pad: int, seed: int
) -> None:
    step, data = make_fields(np.random.default_rng(seed), height, width, encoding, pad)
    np.testing.assert_array_equal(
        image_to_rgb(height, width, encoding, step, data),
        cv_bridge_reference(height, width, encoding, step, data),
    )


def test_inverse_round_trip_and_fields() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    f = rgb_to_image_fields(rgb[:, ::-1])  # a non-contiguous input is made contiguous
    assert (f.height, f.width, f.encoding, f.step, f.is_bigendian) == (4, 5, "rgb8", 15, 0)
    np.testing.assert_array_equal(image_to_rgb(f.height, f.width, f.encoding, f.step, f.data), rgb[:, ::-1])
    for bad in (np.zeros((4, 5), np.uint8), np.zeros((4, 5, 3), np.float32), np.zeros((0, 5, 3), np.uint8)):
        with pytest.raises(ValueError, match="rgb must be"):
            rgb_to_image_fields(bad)


@pytest.mark.skipif(
    importlib.util.find_spec("sensor_msgs") is None,
    reason="sensor_msgs (ROS 2 message package) not importable",
)
def test_with_real_sensor_msgs_image() -> None:
    from sensor_msgs.msg import Image

    rgb = np.random.default_rng(3).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    f = rgb_to_image_fields(rgb)
    msg = Image(height=f.height, width=f.width, encoding=f.encoding, is_bigendian=f.is_bigendian, step=f.step)
    msg.data = f.data
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)
    # bgr8 with padding, set field by field as a camera driver would
    msg.encoding, msg.step = "bgr8", 4 * 3 + 4
    padded = np.zeros((6, 16), np.uint8)
    padded[:, :12] = rgb[..., ::-1].reshape(6, 12)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)


@pytest.mark.skipif(
    importlib.util.find_spec("cv_bridge") is None, reason="cv_bridge not installed (not on PyPI)"
)
@pytest.mark.parametrize("encoding", PACKED_ENCODINGS)
def test_against_real_cv_bridge(encoding: str) -> None:
    from cv_bridge import CvBridge
    from sensor_msgs.msg import Image

    step, data = make_fields(np.random.default_rng(4), 5, 6, encoding, 3)
    msg = Image(height=5, width=6, encoding=encoding, is_bigendian=0, step=step)
    msg.data = data
    np.testing.assert_array_equal(image_msg_to_rgb(msg), CvBridge().imgmsg_to_cv2(msg, "rgb8"))


# --- CompressedImage ---------------------------------------------------------------------------------------


def scene(height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth content (JPEG-friendly): gradients plus a block."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    rgb[10:30, 20:40] = (200, 30, 30)
    return rgb


def test_png_round_trip_is_exact() -> None:
    rgb = scene()
    fmt, data = rgb_to_compressed(rgb, "png")
    assert fmt == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_to_rgb(fmt, data), rgb)
    np.testing.assert_array_equal(compressed_to_rgb("png", data), rgb)


@pytest.mark.parametrize(
    "fmt", ["jpeg", "JPEG", "jpg", "rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8"]
)
def test_jpeg_formats_decode_close_to_source(fmt: str) -> None:
    rgb = scene()
    _, data = rgb_to_compressed(rgb, "jpeg", quality=95)
    out = compressed_to_rgb(fmt, array.array("B", data))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    # The channel order is right: the red block stays red (a BGR/RGB swap would make it blue).
    assert out[20, 30, 0] > 150 and out[20, 30, 2] < 80
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 3.0


def test_gray_and_rgba_png_follow_cv_bridge() -> None:
    gray = scene()[..., 1].copy()
    ok, enc = cv2.imencode(".png", gray)
    assert ok
    np.testing.assert_array_equal(
        compressed_to_rgb("png", enc.tobytes()), np.repeat(gray[..., None], 3, axis=2)
    )
    bgra = np.dstack([scene()[..., ::-1], np.full(scene().shape[:2], 9, np.uint8)])
    ok, enc = cv2.imencode(".png", bgra)
    assert ok
    np.testing.assert_array_equal(compressed_to_rgb("png", enc.tobytes()), scene())


def test_compressed_size_reads_headers() -> None:
    rgb = scene(30, 50)
    assert compressed_size(rgb_to_compressed(rgb, "png")[1]) == (50, 30)
    assert compressed_size(rgb_to_compressed(rgb, "jpeg")[1]) == (50, 30)
    assert compressed_size(b"not an image") is None


def fake_png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize(
    ("fmt", "data", "kwargs", "reason"),
    [
        ("16UC1; compressedDepth", b"\x00" * 20, {}, "encoding"),
        ("gif", b"GIF89a", {}, "encoding"),
        ("", b"GIF89a\x01\x00", {}, "encoding"),  # empty format: by content, and GIF is not handled
        ("", b"\xff\xd8", {}, "decode"),  # empty format, JPEG by content, truncated
        ("tiff", b"II*\x00", {}, "decode"),
        ("jpeg", b"", {}, "size"),
        ("jpeg", b"\xff\xd8\xff\xe0garbage garbage", {}, "decode"),
        ("png", b"definitely not a png", {}, "decode"),
        ("png", fake_png_header(100_000, 100_000) + b"\x00" * 32, {}, "too_large"),  # refused before decoding
        ("png", rgb_to_compressed(scene(), "png")[1], {"max_pixels": 100}, "too_large"),
        ("jpeg", rgb_to_compressed(scene(), "jpeg")[1][:200], {}, "decode"),  # truncated
    ],
)
def test_compressed_errors_have_reasons(fmt: str, data: bytes, kwargs: dict, reason: str) -> None:
    with pytest.raises(ImageError) as err:
        compressed_to_rgb(fmt, data, **kwargs)
    assert err.value.reason == reason


def test_float_tiff_is_refused() -> None:
    ok, enc = cv2.imencode(".tiff", np.zeros((4, 4), np.float32))
    assert ok
    with pytest.raises(ImageError) as err:
        compressed_to_rgb("tiff", enc.tobytes())
    assert err.value.reason == "encoding" and "float32" in str(err.value)


def test_rgb_to_compressed_validates() -> None:
    with pytest.raises(ValueError, match="codec"):
        rgb_to_compressed(scene(), "webp")
    with pytest.raises(ValueError, match="quality"):
        rgb_to_compressed(scene(), "jpeg", quality=0)
    with pytest.raises(ValueError, match="rgb must be"):
        rgb_to_compressed(np.zeros((2, 2), np.uint8))
