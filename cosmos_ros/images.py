"""Camera image messages -> RGB arrays for the model, without cv_bridge and without rclpy.

Why our own converter: cv_bridge is not on PyPI (and on robots it is often built against another OpenCV or
numpy than the one torch wants), but the planner only needs the encodings cameras actually send.
The functions take the plain fields of ``sensor_msgs/Image`` (``height``, ``width``, ``encoding``, ``step``,
``is_bigendian``, ``data``) so they can be tested without a ROS graph, and they return exactly what
``cv_bridge.CvBridge().imgmsg_to_cv2(msg, "rgb8")`` returns for those encodings:

* rows are ``step`` bytes apart and only the first ``width * channels`` bytes of a row are pixels (padding
  after them is ignored). cv_bridge's Python code reshapes to ``step // channels`` pixels per row, which is
  the same whenever ``step`` is a multiple of the pixel size and mis-reads rows otherwise; we follow the
  message definition there;
* ``bgr8``/``bgra8`` are reordered to RGB, the alpha of ``rgba8``/``bgra8`` is dropped (OpenCV's
  ``COLOR_RGBA2RGB``/``COLOR_BGRA2RGB``), ``mono8`` is replicated into three equal channels
  (``COLOR_GRAY2RGB``);
* ``is_bigendian`` does not matter for 8-bit channels; it is honoured for 16-bit ones.

Camera encodings that need a colour conversion go through OpenCV with the codes cv_bridge uses
(``cv_bridge.cpp`` ``getConversionCode``): ``yuv422``/``uyvy`` (UYVY, ``COLOR_YUV2RGB_UYVY``),
``yuv422_yuy2``/``yuyv`` (YUYV, the default of common USB camera drivers, ``COLOR_YUV2RGB_YUY2``), the four
8-bit Bayer mosaics (``bayer_rggb8`` is OpenCV's ``BayerBG``: OpenCV names a pattern by the second row), and
``nv12``/``nv21`` (a ``height`` x ``step`` Y plane followed by a ``height/2`` x ``step`` interleaved
chroma plane). ``mono16`` is scaled to 8 bits as cv_bridge scales between depths (``x * 255 / 65535``,
rounded) and replicated to RGB; ``16UC1`` (depth cameras) is read the same way, although cv_bridge refuses
``16UC1`` -> ``rgb8`` ("not a color format"), so that a depth stream can at least be looked at.

Bad input raises :class:`ImageError` whose ``reason`` is one of :data:`REJECT_REASONS`, so a node can count
rejections per cause and never crash or plan on a broken frame.

``sensor_msgs/CompressedImage`` is decoded with ``cv2.imdecode`` like cv_bridge's
``compressed_imgmsg_to_cv2`` does (by content, channel count decides gray/BGR/BGRA; 16-bit images are scaled
to 8 bits as above): jpeg, png (8 and 16 bit), tiff, bmp and webp, and a message with an empty ``format`` by
its content. The declared size in a PNG/JPEG/BMP/WebP header is checked against the pixel limit first, so an
oversized image is rejected before it is decompressed (TIFF is checked after decoding).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

# Encoding -> (bytes per pixel, source channel index for R, G, B). 8-bit only: what cameras send to a policy.
_ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
PACKED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)  # 8-bit channels, reordered without OpenCV
# Encoding -> (bytes per pixel in a row, OpenCV colour conversion to RGB). Bayer: cv_bridge's table; OpenCV
# names a mosaic by its second row's second and third pixels, so RGGB is "BayerBG".
_CV_ENCODINGS: dict[str, tuple[int, str]] = {
    "yuv422": (2, "COLOR_YUV2RGB_UYVY"),
    "uyvy": (2, "COLOR_YUV2RGB_UYVY"),
    "yuv422_yuy2": (2, "COLOR_YUV2RGB_YUY2"),
    "yuyv": (2, "COLOR_YUV2RGB_YUY2"),
    "bayer_rggb8": (1, "COLOR_BayerBG2RGB"),
    "bayer_bggr8": (1, "COLOR_BayerRG2RGB"),
    "bayer_gbrg8": (1, "COLOR_BayerGR2RGB"),
    "bayer_grbg8": (1, "COLOR_BayerGB2RGB"),
    "nv12": (1, "COLOR_YUV2RGB_NV12"),
    "nv21": (1, "COLOR_YUV2RGB_NV21"),
}
_MONO16_ENCODINGS = ("mono16", "16UC1")
SUPPORTED_ENCODINGS: tuple[str, ...] = PACKED_ENCODINGS + tuple(_CV_ENCODINGS) + _MONO16_ENCODINGS
COMPRESSED_CODECS: tuple[str, ...] = ("jpeg", "png", "tiff", "bmp", "webp")

# Why a frame was refused; stable strings, used as diagnostic counter keys by the planner node.
REJECT_REASONS: tuple[str, ...] = (
    "encoding",  # encoding (or compressed format / decoded pixel type) we do not convert
    "size",  # zero (or negative) height or width
    "step",  # row stride shorter than one row of pixels
    "data_length",  # len(data) != step * height
    "too_large",  # more pixels than the configured limit
    "decode",  # compressed payload that the codec cannot decode
)

# 4096 x 4096: larger than any camera we expect to feed a 720p-tier policy, small enough (48 MiB RGB) that a
# corrupt header cannot make the planner allocate gigabytes.
DEFAULT_MAX_PIXELS = 4096 * 4096


class ImageError(ValueError):
    """A camera frame that cannot be converted.

    Attributes:
        reason: One of :data:`REJECT_REASONS`, for counting rejections by cause.
    """

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"reason must be one of {REJECT_REASONS}, got {reason!r}")
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageFields:
    """The fields of an ``rgb8`` ``sensor_msgs/Image`` (header excluded), ready to copy into a message.

    Attributes:
        height: Rows.
        width: Columns.
        encoding: Always ``"rgb8"``.
        is_bigendian: Always 0 (8-bit channels have no byte order).
        step: Bytes per row, ``width * 3`` (no padding).
        data: ``step * height`` bytes, row-major RGB.
    """

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"height and width must be > 0, got {self.height}x{self.width}")
        if self.step != self.width * 3:
            raise ValueError(f"step must be width * 3 = {self.width * 3}, got {self.step}")
        if len(self.data) != self.step * self.height:
            raise ValueError(
                f"data must be step * height = {self.step * self.height} bytes, got {len(self.data)}"
            )


def _check_max_pixels(max_pixels: int) -> None:
    if not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")


def _check_pixels(height: int, width: int, max_pixels: int, what: str) -> None:
    if height <= 0 or width <= 0:
        raise ImageError("size", f"{what} has zero size: {width}x{height} (width x height)")
    if height * width > max_pixels:
        raise ImageError(
            "too_large",
            f"{what} is {width}x{height} = {height * width} pixels, more than max_pixels = {max_pixels}",
        )


def image_to_rgb(
    height: int,
    width: int,
    encoding: str,
    step: int,
    data: Any,
    *,
    is_bigendian: int | bool = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    copy: bool = False,
) -> np.ndarray:
    """Convert the fields of a ``sensor_msgs/Image`` to an ``[H, W, 3]`` uint8 RGB array.

    Zero-copy where the layout allows it: an ``rgb8`` image comes back as a read-only strided view of
    ``data`` (row stride ``step``) unless ``copy`` is set; every other encoding needs one conversion pass and
    comes back as a fresh contiguous array.

    Args:
        height: ``msg.height``.
        width: ``msg.width``.
        encoding: ``msg.encoding``, one of :data:`SUPPORTED_ENCODINGS`.
        step: ``msg.step``, bytes per row (may exceed ``width * bytes_per_pixel``: row padding).
        data: ``msg.data``; anything with the buffer protocol (``bytes``, ``array.array('B')`` as rclpy
            gives it, ``memoryview``, a uint8 ndarray).
        is_bigendian: ``msg.is_bigendian``; byte order of ``mono16``/``16UC1`` pixels (8-bit: irrelevant).
        max_pixels: Refuse images with more pixels than this (protects memory and latency).
        copy: Return a writable contiguous copy even when a view would do.

    Returns:
        ``[height, width, 3]`` uint8 RGB. A view of ``data`` (read-only) when ``encoding == "rgb8"`` and
        ``copy`` is false, else a new C-contiguous array.

    Raises:
        ImageError: With ``reason`` ``encoding``, ``size`` (also: odd width of a 4:2:2 or 4:2:0 image),
            ``too_large``, ``step`` or ``data_length``.
        ValueError: ``max_pixels`` is not a positive int (a configuration error, not a bad frame).
    """
    _check_max_pixels(max_pixels)
    if encoding not in SUPPORTED_ENCODINGS:
        raise ImageError(
            "encoding", f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    height, width, step = int(height), int(width), int(step)
    _check_pixels(height, width, max_pixels, f"{encoding} image")
    if encoding in _MONO16_ENCODINGS:
        return _mono16_to_rgb(height, width, step, data, bool(is_bigendian))
    if encoding in _CV_ENCODINGS:
        return _cv_to_rgb(height, width, encoding, step, data)
    bpp, rgb_index = _ENCODINGS[encoding]
    view = _rows(height, width, encoding, step, data, bpp, height)
    if encoding == "rgb8":
        return np.array(view, order="C") if copy else view
    out = np.empty((height, width, 3), dtype=np.uint8)
    for dst, src in enumerate(rgb_index):  # mono8: (0, 0, 0) replicates gray into R, G and B
        out[..., dst] = view[..., src]
    return out


def _rows(height: int, width: int, encoding: str, step: int, data: Any, bpp: int, rows: int) -> np.ndarray:
    """``[rows, width, bpp]`` uint8 view of ``data`` honouring the row stride (padding never touched)."""
    if step < width * bpp:
        raise ImageError(
            "step", f"step {step} is shorter than one row of {width} {encoding} pixels ({width * bpp} bytes)"
        )
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * rows:
        raise ImageError(
            "data_length",
            f"data has {buf.size} bytes but {encoding} needs step * {rows} rows = {step} * {rows} = "
            f"{step * rows}",
        )
    return np.lib.stride_tricks.as_strided(
        buf, shape=(rows, width, bpp), strides=(step, bpp, 1), writeable=False
    )


def _even(height: int, width: int, encoding: str, need_height: bool) -> None:
    if width % 2 or (need_height and height % 2):
        what = "width and height" if need_height else "width"
        raise ImageError("size", f"{encoding} needs an even {what}, got {width}x{height} (width x height)")


def _cv_to_rgb(height: int, width: int, encoding: str, step: int, data: Any) -> np.ndarray:
    bpp, code_name = _CV_ENCODINGS[encoding]
    planar = encoding in ("nv12", "nv21")
    if bpp == 2 or planar:  # 4:2:2 pairs and 4:2:0 planes share chroma between neighbouring pixels
        _even(height, width, encoding, need_height=planar)
    elif height < 2 or width < 2:
        raise ImageError("size", f"{encoding} needs at least 2x2 pixels, got {width}x{height}")
    rows = height * 3 // 2 if planar else height
    view = _rows(height, width, encoding, step, data, bpp, rows)
    cv2 = _cv2()
    src = np.ascontiguousarray(view if bpp == 2 else view[..., 0])
    return np.ascontiguousarray(cv2.cvtColor(src, getattr(cv2, code_name)))


def _mono16_to_rgb(height: int, width: int, step: int, data: Any, big_endian: bool) -> np.ndarray:
    pixels = _rows(height, width, "mono16", step, data, 2, height)
    hi, lo = (0, 1) if big_endian else (1, 0)
    values = pixels[..., hi].astype(np.uint32) << 8 | pixels[..., lo]
    return np.repeat(_scale16(values)[..., None], 3, axis=2)


def _scale16(values: np.ndarray) -> np.ndarray:
    """16 -> 8 bits as cv_bridge converts depths (``convertTo(..., 255.0 / 65535.0)``: rounded; no ties,
    since ``x / 257`` is never exactly half-way for an integer ``x``)."""
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 is a declared dependency
        raise ImportError(
            "converting camera images needs OpenCV: pip install opencv-python-headless"
        ) from exc
    return cv2


def image_msg_to_rgb(msg: Any, **kwargs: Any) -> np.ndarray:
    """:func:`image_to_rgb` on anything with ``sensor_msgs/Image``'s attributes (a message, a namespace)."""
    return image_to_rgb(
        msg.height, msg.width, msg.encoding, msg.step, msg.data, is_bigendian=msg.is_bigendian, **kwargs
    )


def _check_rgb(rgb: Any) -> None:
    if (
        not isinstance(rgb, np.ndarray)
        or rgb.ndim != 3
        or rgb.shape[2] != 3
        or rgb.dtype != np.uint8
        or rgb.shape[0] == 0
        or rgb.shape[1] == 0
    ):
        raise ValueError(
            f"rgb must be a non-empty [H, W, 3] uint8 array, got shape {getattr(rgb, 'shape', None)} "
            f"dtype {getattr(rgb, 'dtype', None)}"
        )


def rgb_to_image_fields(rgb: np.ndarray) -> ImageFields:
    """The inverse, for debug output: ``[H, W, 3]`` uint8 RGB -> the fields of an ``rgb8`` Image.

    Raises:
        ValueError: ``rgb`` is not a non-empty ``[H, W, 3]`` uint8 array.
    """
    _check_rgb(rgb)
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    return ImageFields(height, width, "rgb8", 0, width * 3, np.ascontiguousarray(rgb).tobytes())


# --- CompressedImage ---------------------------------------------------------------------------------------

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers that carry the image size (all SOFn except DHT C4, JPG C8, DAC CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def compressed_size(data: bytes) -> tuple[int, int] | None:
    """Width and height declared in a PNG, JPEG, BMP or WebP header, or None if none is recognised.

    Reading the header first lets us refuse a decompression bomb before ``cv2.imdecode`` allocates it.
    """
    b = data[:65536]  # the size sits in the first segments; do not scan a whole payload
    if b.startswith(_PNG_MAGIC) and len(b) >= 24 and b[12:16] == b"IHDR":
        width, height = struct.unpack(">II", b[16:24])
        return int(width), int(height)
    if b.startswith(b"\xff\xd8"):
        return _jpeg_size(b)
    if b.startswith(b"BM") and len(b) >= 26:  # BITMAPINFOHEADER: int32 width, height (negative: top-down)
        width, height = struct.unpack("<ii", b[18:26])
        return abs(width), abs(height)
    if b.startswith(b"RIFF") and b[8:12] == b"WEBP":
        return _webp_size(b)
    return None


def _jpeg_size(b: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length field
            i += 2
            continue
        (seg_len,) = struct.unpack(">H", b[i + 2 : i + 4])
        if marker in _JPEG_SOF and i + 9 <= len(b):
            height, width = struct.unpack(">HH", b[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + seg_len
    return None


def _webp_size(b: bytes) -> tuple[int, int] | None:
    """The canvas size of a WebP (https://developers.google.com/speed/webp/docs/riff_container)."""
    chunk = b[12:16]
    if chunk == b"VP8X" and len(b) >= 30:  # 24-bit canvas width - 1, height - 1
        return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    if chunk == b"VP8L" and len(b) >= 25 and b[20] == 0x2F:  # 14-bit width - 1, height - 1
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(b) >= 30 and b[23:26] == b"\x9d\x01\x2a":  # key frame: 14-bit sizes
        width, height = struct.unpack("<HH", b[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _sniff(data: bytes) -> str | None:
    """The codec of a payload by its magic bytes (for a CompressedImage with an empty ``format``)."""
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data.startswith(b"BM"):
        return "bmp"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    return None


_CODEC_NAMES = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "tiff": "tiff", "tif": "tiff", "bmp": "bmp",
                "webp": "webp"}  # fmt: skip


def _codec_of(fmt: str) -> str:
    """The codec a ``CompressedImage.format`` names ("jpeg", "rgb8; jpeg compressed bgr8", ...), or ""."""
    low = fmt.strip().lower()
    if "compresseddepth" in low:
        return "compressedDepth"
    tail = (low.split(";", 1)[1] if ";" in low else low).strip()
    words = re.split(r"[^a-z0-9]+", tail)  # whole words: "jpeg2000" is not "jpeg"
    for name, codec in _CODEC_NAMES.items():
        if name in words:
            return codec
    return tail


def compressed_to_rgb(fmt: str, data: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode the fields of a ``sensor_msgs/CompressedImage`` to an ``[H, W, 3]`` uint8 RGB array.

    Like cv_bridge, the pixel layout comes from the payload itself (``cv2.IMREAD_UNCHANGED``: 1 channel is
    gray, 3 are BGR, 4 are BGRA; 16-bit samples are scaled to 8 bits), not from the text after "compressed"
    in ``fmt``; ``fmt`` is only used to refuse codecs we do not handle (``compressedDepth``, anything but
    :data:`COMPRESSED_CODECS`). An empty ``fmt`` is decoded by content.

    Args:
        fmt: ``msg.format``, e.g. ``"jpeg"``, ``"png"``, ``"rgb8; jpeg compressed bgr8"``, ``""``.
        data: ``msg.data`` (any buffer).
        max_pixels: Refuse images with more pixels than this, before decoding when the header says so.

    Returns:
        A new C-contiguous ``[H, W, 3]`` uint8 RGB array.

    Raises:
        ImageError: ``encoding`` (codec or decoded pixel type not handled), ``size`` (empty payload or
            zero-size image), ``too_large``, ``decode`` (corrupt payload).
        ImportError: OpenCV is not installed.
    """
    _check_max_pixels(max_pixels)
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageError("size", f"CompressedImage ({fmt!r}) has no data")
    head = buf[:65536].tobytes()
    codec = _codec_of(fmt) or _sniff(head) or ""
    if codec not in COMPRESSED_CODECS:
        named = f"codec {codec!r}" if fmt.strip() else f"content starting {head[:8]!r}"
        raise ImageError(
            "encoding",
            f"unsupported CompressedImage format {fmt!r} ({named}); "
            f"need one of {', '.join(COMPRESSED_CODECS)}",
        )
    declared = compressed_size(head)
    if declared is not None:
        _check_pixels(declared[1], declared[0], max_pixels, f"{codec} image (header)")
    cv2 = _cv2()
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError("decode", f"could not decode {len(buf)} bytes as {codec} (format {fmt!r})")
    if img.dtype == np.uint16:
        img = _scale16(img)
    elif img.dtype != np.uint8:
        raise ImageError(
            "encoding", f"decoded {codec} has pixel type {img.dtype}; only 8- and 16-bit images are supported"
        )
    _check_pixels(img.shape[0], img.shape[1], max_pixels, f"decoded {codec} image")
    channels = 1 if img.ndim == 2 else img.shape[2]
    codes = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
    if channels not in codes:
        raise ImageError("encoding", f"decoded {codec} has {channels} channels; expected 1, 3 or 4")
    return np.ascontiguousarray(cv2.cvtColor(img, codes[channels]))


def compressed_msg_to_rgb(msg: Any, **kwargs: Any) -> np.ndarray:
    """:func:`compressed_to_rgb` on anything with ``sensor_msgs/CompressedImage``'s attributes."""
    return compressed_to_rgb(msg.format, msg.data, **kwargs)


def rgb_to_compressed(rgb: np.ndarray, codec: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """Encode ``[H, W, 3]`` uint8 RGB as a CompressedImage payload (for test bags and debug output).

    Returns:
        ``(format, data)`` with ``format`` as image_transport's compressed plugin writes it
        (``"rgb8; jpeg compressed bgr8"``), so consumers built for that plugin accept it.

    Raises:
        ValueError: Bad array, codec or quality.
    """
    if codec not in ("jpeg", "png"):
        raise ValueError(f"codec must be 'jpeg' or 'png', got {codec!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    _check_rgb(rgb)
    import cv2

    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if codec == "jpeg" else []
    ok, enc = cv2.imencode(".jpg" if codec == "jpeg" else ".png", bgr, params)
    if not ok:  # pragma: no cover - cv2 encodes any valid uint8 image
        raise ValueError(f"cv2.imencode failed for a {rgb.shape} image as {codec}")
    return f"rgb8; {codec} compressed bgr8", enc.tobytes()
