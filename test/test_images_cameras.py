"""Camera encodings that need a colour conversion, and more compressed formats, against independent checks.

Every expectation starts from a known RGB image and is built by our own numpy encoder (YUV 4:2:2 and 4:2:0
with BT.601 video-range coefficients, Bayer mosaics, 16-bit samples, BMP and 16-bit PNG files written byte by
byte), never by the OpenCV function the converter calls. Where chroma is subsampled the test images are
constant over each chroma block, so the only difference allowed is rounding (a few levels); a decoder with
the wrong layout (UYVY read as YUYV, RGGB as BGGR, NV12 as NV21) is off by far more, and each test checks that
too so it can fail.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from cosmos_ros.images import (
    SUPPORTED_ENCODINGS,
    ImageError,
    compressed_size,
    compressed_to_rgb,
    image_to_rgb,
)

# Colours inside the video range, so no channel clips on the way back.
PALETTE = np.array(
    [[200, 40, 40], [40, 180, 60], [50, 60, 200], [220, 220, 60], [128, 128, 128], [30, 200, 200]], np.uint8
)


def blocks(height: int, width: int, bh: int, bw: int, seed: int = 0) -> np.ndarray:
    """An RGB image constant over ``bh`` x ``bw`` blocks (colours from PALETTE)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(PALETTE), size=(-(-height // bh), -(-width // bw)))
    return PALETTE[np.kron(idx, np.ones((bh, bw), int))[:height, :width]]


def rgb_to_yuv601(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 video range (Y 16..235, U/V 16..240), the inverse of what YUV camera encodings mean."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return tuple(np.clip(np.round(c), 0, 255).astype(np.uint8) for c in (y, u, v))  # type: ignore[return-value]


def encode_422(rgb: np.ndarray, order: str, pad: int = 0) -> tuple[int, bytes]:
    """UYVY ("yuv422") or YUYV ("yuv422_yuy2") bytes: one U and V per horizontal pixel pair."""
    y, u, v = rgb_to_yuv601(rgb)
    h, w = y.shape
    out = np.zeros((h, w // 2, 4), np.uint8)
    if order == "uyvy":
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = u[:, ::2], y[:, ::2], v[:, ::2], y[:, 1::2]
    else:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = y[:, ::2], u[:, ::2], y[:, 1::2], v[:, ::2]
    rows = np.full((h, 2 * w + pad), 0xAB, np.uint8)
    rows[:, : 2 * w] = out.reshape(h, 2 * w)
    return 2 * w + pad, rows.tobytes()


def encode_420sp(rgb: np.ndarray, order: str, pad: int = 0) -> tuple[int, bytes]:
    """NV12 (U, V interleaved) or NV21 (V, U): Y plane, then one chroma pair per 2x2 block."""
    y, u, v = rgb_to_yuv601(rgb)
    h, w = y.shape
    step = w + pad
    planes = np.full((h * 3 // 2, step), 0xAB, np.uint8)
    planes[:h, :w] = y
    chroma = np.stack([u[::2, ::2], v[::2, ::2]] if order == "nv12" else [v[::2, ::2], u[::2, ::2]], -1)
    planes[h:, :w] = chroma.reshape(h // 2, w)
    return step, planes.tobytes()


def mosaic(rgb: np.ndarray, pattern: str, pad: int = 0) -> tuple[int, bytes]:
    """One 8-bit sample per pixel, the colour the 2x2 ``pattern`` (e.g. "rggb", row-major) puts there."""
    h, w, _ = rgb.shape
    chan = {"r": 0, "g": 1, "b": 2}
    out = np.full((h, w + pad), 0xAB, np.uint8)
    for k, c in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy:h:2, dx:w:2] = rgb[dy::2, dx::2, chan[c]]
    return w + pad, out.tobytes()


def max_err(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


YUV422 = [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")]


@pytest.mark.parametrize(("encoding", "order"), YUV422)
@pytest.mark.parametrize("pad", [0, 6])
def test_yuv422(encoding: str, order: str, pad: int) -> None:
    rgb = blocks(6, 10, 1, 2)
    step, data = encode_422(rgb, order, pad)
    out = image_to_rgb(6, 10, encoding, step, data)
    assert out.shape == (6, 10, 3) and out.dtype == np.uint8
    assert max_err(out, rgb) <= 3
    other = "yuv422_yuy2" if order == "uyvy" else "yuv422"
    assert max_err(image_to_rgb(6, 10, other, step, data), rgb) > 40  # the test tells the layouts apart


def test_yuv_video_range_extremes() -> None:
    # Y=235 with neutral chroma is white, Y=16 black (one UYVY pair each).
    white = image_to_rgb(1, 2, "yuv422", 4, bytes([128, 235, 128, 235]))
    black = image_to_rgb(1, 2, "yuv422_yuy2", 4, bytes([16, 128, 16, 128]))
    assert white.min() >= 254 and black.max() <= 1


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("pad", [0, 3])
def test_bayer(pattern: str, pad: int) -> None:
    rgb = blocks(24, 32, 8, 8, seed=1)
    step, data = mosaic(rgb, pattern, pad)
    out = image_to_rgb(24, 32, f"bayer_{pattern}8", step, data)
    # Inside each 8x8 block (2 pixels from its edges) the demosaiced colour is the block's colour.
    inner = np.zeros((24, 32), bool)
    for by in range(0, 24, 8):
        for bx in range(0, 32, 8):
            inner[by + 2 : by + 6, bx + 2 : bx + 6] = True
    assert max_err(out[inner], rgb[inner]) <= 1
    swapped = {"rggb": "bggr", "bggr": "rggb", "gbrg": "grbg", "grbg": "gbrg"}[pattern]
    wrong = image_to_rgb(24, 32, f"bayer_{swapped}8", step, data)
    assert max_err(wrong[inner], rgb[inner]) > 100  # red and blue exchanged


@pytest.mark.parametrize("order", ["nv12", "nv21"])
@pytest.mark.parametrize("pad", [0, 4])
def test_nv12_nv21(order: str, pad: int) -> None:
    rgb = blocks(8, 12, 2, 2, seed=2)
    step, data = encode_420sp(rgb, order, pad)
    assert max_err(image_to_rgb(8, 12, order, step, data), rgb) <= 3
    other = "nv21" if order == "nv12" else "nv12"
    assert max_err(image_to_rgb(8, 12, other, step, data), rgb) > 40


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_scaled_like_cv_bridge(encoding: str, big_endian: bool) -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 65536, size=(5, 7), dtype=np.uint32)
    values[0, :4] = [0, 65535, 128, 129]  # 128/257 rounds down, 129/257 up
    pad = 2
    rows = np.full((5, 7 * 2 + pad), 0xCD, np.uint8)
    hi, lo = ((values >> 8) & 0xFF).astype(np.uint8), (values & 0xFF).astype(np.uint8)
    rows[:, 0:14:2], rows[:, 1:14:2] = (hi, lo) if big_endian else (lo, hi)
    out = image_to_rgb(5, 7, encoding, 16, rows.tobytes(), is_bigendian=int(big_endian))
    expected = np.floor(values / 257 + 0.5).astype(np.uint8)  # x * 255 / 65535, rounded
    assert out[0, :4, 0].tolist() == [0, 255, 0, 1]
    np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, axis=2))


@pytest.mark.parametrize(
    ("encoding", "height", "width", "step", "length", "reason"),
    [
        ("yuv422", 2, 3, 6, 12, "size"),  # odd width: a pixel pair is cut in half
        ("nv12", 3, 4, 4, 16, "size"),  # odd height
        ("nv21", 2, 4, 4, 8, "data_length"),  # Y plane only, the chroma plane is missing
        ("yuv422_yuy2", 2, 4, 6, 12, "step"),  # a row of 4 YUYV pixels needs 8 bytes
        ("bayer_rggb8", 1, 4, 4, 4, "size"),
        ("mono16", 2, 2, 4, 7, "data_length"),
        ("yuv420", 2, 2, 2, 6, "encoding"),
        ("32FC1", 2, 2, 8, 16, "encoding"),
    ],
)
def test_bad_camera_frames_are_refused_with_a_reason(
    encoding: str, height: int, width: int, step: int, length: int, reason: str
) -> None:
    with pytest.raises(ImageError) as err:
        image_to_rgb(height, width, encoding, step, bytes(length))
    assert err.value.reason == reason
    if reason == "encoding":
        assert all(e in str(err.value) for e in ("yuv422_yuy2", "bayer_rggb8", "mono16"))


def test_supported_encodings_list_the_new_ones() -> None:
    assert {"yuv422", "yuv422_yuy2", "bayer_grbg8", "nv21", "mono16", "16UC1"} <= set(SUPPORTED_ENCODINGS)


# --- CompressedImage ---------------------------------------------------------------------------------------


def bmp_bytes(rgb: np.ndarray) -> bytes:
    """A 24-bit BMP written by hand: BITMAPINFOHEADER, BGR rows bottom-up, each padded to 4 bytes."""
    h, w, _ = rgb.shape
    row = (w * 3 + 3) // 4 * 4
    pixels = np.zeros((h, row), np.uint8)
    pixels[:, : w * 3] = rgb[::-1, :, ::-1].reshape(h, w * 3)
    header = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, pixels.size, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + pixels.size, 0, 0, 54) + header + pixels.tobytes()


def png16_bytes(gray: np.ndarray) -> bytes:
    """A 16-bit grayscale PNG written by hand (IHDR, one zlib IDAT with filter 0 rows, IEND)."""
    h, w = gray.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + gray[r].astype(">u2").tobytes() for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def test_bmp_written_by_hand() -> None:
    rgb = np.random.default_rng(5).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    data = bmp_bytes(rgb)
    assert compressed_size(data) == (7, 5)
    np.testing.assert_array_equal(compressed_to_rgb("bmp", data), rgb)
    np.testing.assert_array_equal(compressed_to_rgb("", data), rgb)  # empty format: by content


def test_sixteen_bit_png_is_scaled_like_cv_bridge() -> None:
    gray = np.random.default_rng(6).integers(0, 65536, (4, 6), dtype=np.uint32)
    gray[0, :3] = [0, 65535, 129]
    out = compressed_to_rgb("png", png16_bytes(gray))
    expected = np.floor(gray / 257 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, axis=2))
    assert out[0, :3, 0].tolist() == [0, 255, 1]


@pytest.mark.parametrize(("fmt", "ext", "params"), [
    ("tiff", ".tiff", []),
    ("rgb8; tiff compressed bgr8", ".tif", []),
    ("webp", ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # above 100: lossless
    ("", ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
    ("", ".tiff", []),
])  # fmt: skip
def test_lossless_tiff_and_webp_round_trip_a_known_image(fmt: str, ext: str, params: list[int]) -> None:
    rgb = np.random.default_rng(7).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    ok, enc = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), params)
    assert ok
    np.testing.assert_array_equal(compressed_to_rgb(fmt, enc.tobytes()), rgb)
    if ext == ".webp":
        assert compressed_size(enc.tobytes()) == (13, 9)


def test_webp_header_size_refuses_a_bomb_before_decoding() -> None:
    # A VP8X header declaring a 16384 x 16384 canvas, with nothing after it.
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + (16383).to_bytes(3, "little") * 2
    data = b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x
    assert compressed_size(data) == (16384, 16384)
    with pytest.raises(ImageError) as err:
        compressed_to_rgb("webp", data)
    assert err.value.reason == "too_large"


def test_unsupported_codec_error_names_it_without_a_stray_space() -> None:
    with pytest.raises(ImageError) as err:
        compressed_to_rgb("rgb8; jpeg2000 compressed bgr8", b"\x00\x00\x00\x0cjP  ")
    assert err.value.reason == "encoding"
    assert "(codec 'jpeg2000 compressed bgr8')" in str(err.value) and "' jpeg2000" not in str(err.value)
