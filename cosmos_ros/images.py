"""Camera image messages -> RGB arrays for the model, without cv_bridge and without rclpy.

Why our own converter: cv_bridge is not on PyPI (and on robots it is often built against another OpenCV or
numpy than the one torch wants), but the planner only needs the few 8-bit encodings cameras actually send.
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
* ``is_bigendian`` does not matter for 8-bit channels.

Bad input raises :class:`ImageError` whose ``reason`` is one of :data:`REJECT_REASONS`, so a node can count
rejections per cause and never crash or plan on a broken frame.

``sensor_msgs/CompressedImage`` is decoded with ``cv2.imdecode`` like cv_bridge's
``compressed_imgmsg_to_cv2`` does (by content, channel count decides gray/BGR/BGRA), after checking the
declared size in the PNG/JPEG header against the pixel limit, so an oversized image is rejected before it is
decompressed.
"""

from __future__ import annotations

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
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)

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
    ``data`` (row stride ``step``) unless ``copy`` is set; every other encoding needs one reordering pass and
    comes back as a fresh contiguous array. Either way at most one copy of the pixels is made.

    Args:
        height: ``msg.height``.
        width: ``msg.width``.
        encoding: ``msg.encoding``, one of :data:`SUPPORTED_ENCODINGS`.
        step: ``msg.step``, bytes per row (may exceed ``width * bytes_per_pixel``: row padding).
        data: ``msg.data``; anything with the buffer protocol (``bytes``, ``array.array('B')`` as rclpy
            gives it, ``memoryview``, a uint8 ndarray).
        is_bigendian: ``msg.is_bigendian``; irrelevant for 8-bit channels, accepted for completeness.
        max_pixels: Refuse images with more pixels than this (protects memory and latency).
        copy: Return a writable contiguous copy even when a view would do.

    Returns:
        ``[height, width, 3]`` uint8 RGB. A view of ``data`` (read-only) when ``encoding == "rgb8"`` and
        ``copy`` is false, else a new C-contiguous array.

    Raises:
        ImageError: With ``reason`` ``encoding``, ``size``, ``too_large``, ``step`` or ``data_length``.
        ValueError: ``max_pixels`` is not a positive int (a configuration error, not a bad frame).
    """
    del is_bigendian  # 8-bit channels only: byte order cannot change a value.
    _check_max_pixels(max_pixels)
    if encoding not in _ENCODINGS:
        raise ImageError(
            "encoding", f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    height, width, step = int(height), int(width), int(step)
    _check_pixels(height, width, max_pixels, f"{encoding} image")
    bpp, rgb_index = _ENCODINGS[encoding]
    if step < width * bpp:
        raise ImageError(
            "step", f"step {step} is shorter than one row of {width} {encoding} pixels ({width * bpp} bytes)"
        )
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise ImageError(
            "data_length",
            f"data has {buf.size} bytes but step * height = {step} * {height} = {step * height}",
        )
    # [H, W, C] view honouring the row stride; padding bytes at the end of each row are never touched.
    view = np.lib.stride_tricks.as_strided(
        buf, shape=(height, width, bpp), strides=(step, bpp, 1), writeable=False
    )
    if encoding == "rgb8":
        return np.array(view, order="C") if copy else view
    out = np.empty((height, width, 3), dtype=np.uint8)
    for dst, src in enumerate(rgb_index):  # mono8: (0, 0, 0) replicates gray into R, G and B
        out[..., dst] = view[..., src]
    return out


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
    """Width and height declared in a PNG or JPEG header, or None if neither is recognised.

    Reading the header first lets us refuse a decompression bomb before ``cv2.imdecode`` allocates it.
    """
    b = data[:65536]  # the size sits in the first segments; do not scan a whole payload
    if b.startswith(_PNG_MAGIC) and len(b) >= 24 and b[12:16] == b"IHDR":
        width, height = struct.unpack(">II", b[16:24])
        return int(width), int(height)
    if b.startswith(b"\xff\xd8"):
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


def _codec_of(fmt: str) -> str:
    """The codec a ``CompressedImage.format`` names: "jpeg", "png", "rgb8; jpeg compressed bgr8", ..."""
    low = fmt.strip().lower()
    if "compresseddepth" in low:
        return "compressedDepth"
    tail = low.split(";", 1)[1] if ";" in low else low
    for codec in ("jpeg", "jpg", "png"):
        if codec in tail.split() or tail.startswith(codec):
            return "png" if codec == "png" else "jpeg"
    return tail or "<empty>"


def compressed_to_rgb(fmt: str, data: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode the fields of a ``sensor_msgs/CompressedImage`` to an ``[H, W, 3]`` uint8 RGB array.

    Like cv_bridge, the pixel layout comes from the payload itself (``cv2.IMREAD_UNCHANGED``: 1 channel is
    gray, 3 are BGR, 4 are BGRA), not from the text after "compressed" in ``fmt``; ``fmt`` is only used to
    refuse codecs we do not handle (``compressedDepth``, anything but jpeg/png).

    Args:
        fmt: ``msg.format``, e.g. ``"jpeg"``, ``"png"``, ``"rgb8; jpeg compressed bgr8"``.
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
    codec = _codec_of(fmt)
    if codec not in ("jpeg", "png"):
        raise ImageError(
            "encoding", f"unsupported CompressedImage format {fmt!r} (codec {codec!r}); need jpeg or png"
        )
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageError("size", f"CompressedImage ({fmt!r}) has no data")
    declared = compressed_size(buf[:65536].tobytes())
    if declared is not None:
        _check_pixels(declared[1], declared[0], max_pixels, f"{codec} image (header)")
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 is a declared dependency
        raise ImportError(
            "decoding CompressedImage needs OpenCV: pip install opencv-python-headless"
        ) from exc
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError("decode", f"could not decode {len(buf)} bytes as {codec} (format {fmt!r})")
    if img.dtype != np.uint8:
        raise ImageError(
            "encoding", f"decoded {codec} has pixel type {img.dtype}; only 8-bit images are supported"
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
