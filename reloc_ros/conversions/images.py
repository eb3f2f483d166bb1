# Copyright 2026 reloc_ros contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Images: ``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy, with cv_bridge's encodings.

The encoding table (names as in ``sensor_msgs/image_encodings.hpp`` plus
OpenCV's ``<depth>C<n>`` family), the builders, and the decoders to raw
pixels, to RGB (the input of every model) and to depth in metres.
"""

from __future__ import annotations

import array
import re
import sys
from typing import Any, Mapping

import cv2
import numpy as np

from reloc_ros.conversions.messages import bytes_field, message_class
from reloc_ros.conversions.stamps import make_header

_HOST_BIGENDIAN = sys.byteorder == "big"


# --------------------------------------------------------------------------
# Image encodings (names as in sensor_msgs/image_encodings.hpp)
# --------------------------------------------------------------------------

_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)
_BAYER_PATTERNS = ("rggb", "bggr", "gbrg", "grbg")
_YUV422_CODES = {
    # UYVY byte order (U0 Y0 V0 Y1); ROS 2 Rolling also names it "uyvy".
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    # YUYV byte order (Y0 U0 Y1 V0); "yuyv" is its newer alias.
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
# OpenCV names a Bayer pattern after the 2x2 block starting at pixel (1, 1), ROS after the one at
# (0, 0), so ROS 'rggb' is OpenCV 'BG' (the mapping cv_bridge uses). The old names exist in every
# OpenCV 4.x, unlike the newer COLOR_BayerRGGB2RGB aliases.
_BAYER_CODES = {
    "rggb": cv2.COLOR_BayerBG2RGB,
    "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB,
    "grbg": cv2.COLOR_BayerGB2RGB,
}

# (dtype, channels) of every encoding known by name, i.e. outside the generic "<depth>C<n>" family.
NAMED_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (_U8, 3), "bgr8": (_U8, 3), "rgba8": (_U8, 4), "bgra8": (_U8, 4),
    "rgb16": (_U16, 3), "bgr16": (_U16, 3), "rgba16": (_U16, 4), "bgra16": (_U16, 4),
    "mono8": (_U8, 1), "mono16": (_U16, 1),
    **{f"bayer_{p}8": (_U8, 1) for p in _BAYER_PATTERNS},
    **{f"bayer_{p}16": (_U16, 1) for p in _BAYER_PATTERNS},
    **{name: (_U8, 2) for name in _YUV422_CODES},
}
_DEPTHS = {"8U": np.uint8, "8S": np.int8, "16U": np.uint16, "16S": np.int16, "32S": np.int32,
           "32F": np.float32, "64F": np.float64}
# OpenCV-style "<depth>C<channels>", channels optional (1); cv_bridge accepts the same family.
_GENERIC_RE = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)(?:C([1-9][0-9]{0,2}))?$")
_CV_CN_MAX = 512

# Every supported encoding by name; the generic family is listed for 1-4 channels but any
# "<depth>C<n>" with n <= 512 decodes.
IMAGE_ENCODINGS: tuple[str, ...] = tuple(NAMED_ENCODINGS) + tuple(
    f"{d}C{n}" for d in _DEPTHS for n in range(1, 5))


def encoding_layout(encoding: str) -> tuple[np.dtype, int]:
    """(dtype, channels) of an encoding, or ValueError listing the supported ones."""
    if encoding in NAMED_ENCODINGS:
        return NAMED_ENCODINGS[encoding]
    m = _GENERIC_RE.match(encoding or "")
    if m and int(m.group(2) or 1) <= _CV_CN_MAX:
        return np.dtype(_DEPTHS[m.group(1)]), int(m.group(2) or 1)
    raise ValueError(f"unsupported image encoding '{encoding}'; supported: {', '.join(NAMED_ENCODINGS)} and "
                     f"<8U|8S|16U|16S|32S|32F|64F>C<n> (e.g. 16UC1, 32FC1, 8UC3)")


# --------------------------------------------------------------------------
# Builders: numpy / core types -> messages
# --------------------------------------------------------------------------

def make_image_msg(types: Mapping[str, Any], array: np.ndarray, encoding: str, stamp_ns: int,
                   frame_id: str) -> Any:
    """``sensor_msgs/msg/Image`` holding ``array`` (a copy) under ``encoding``.

    The array must already have the encoding's dtype and channel count (e.g.
    uint16 ``(H, W)`` for ``mono16``/``16UC1``, float32 for ``32FC1``, uint8
    ``(H, W, 2)`` for ``yuv422``); nothing is cast silently. Rows are packed
    (``step = width * bytes per pixel``) in the host byte order.
    """
    dtype, channels = encoding_layout(encoding)
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ValueError(f"encoding '{encoding}' needs {channels} channel(s), i.e. shape (H, W)"
                         f"{'' if channels == 1 else f' x {channels}'}, got shape {np.shape(array)}")
    if arr.dtype.newbyteorder("=") != dtype.newbyteorder("="):
        raise ValueError(f"encoding '{encoding}' needs dtype {dtype.name}, got {arr.dtype.name}; convert explicitly")
    height, width = int(arr.shape[0]), int(arr.shape[1])
    if height == 0 or width == 0:
        raise ValueError(f"image must not be empty, got {height}x{width}")
    if encoding in _YUV422_CODES and width % 2:
        raise ValueError(f"encoding '{encoding}' packs pixel pairs and needs an even width, got {width}")
    # Native byte order, C-contiguous: what is_bigendian below describes.
    packed = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("="))
    cls = message_class(types, "sensor_msgs/msg/Image")
    return cls(header=make_header(types, stamp_ns, frame_id), height=height, width=width, encoding=str(encoding),
               is_bigendian=int(_HOST_BIGENDIAN), step=width * channels * dtype.itemsize,
               data=bytes_field(cls, packed))


def make_compressed_image_msg(types: Mapping[str, Any], rgb_u8: np.ndarray, fmt: str, stamp_ns: int,
                              frame_id: str, quality: int = 90) -> Any:
    """``sensor_msgs/msg/CompressedImage`` of an RGB (or mono ``(H, W)``) uint8 image.

    ``fmt`` is ``'jpeg'`` or ``'png'``; the format field is written the way
    ROS 2 ``compressed_image_transport`` does (``'rgb8; jpeg compressed bgr8'``,
    ``'mono8; png compressed '``). ``quality`` is the JPEG quality (1-100).
    """
    fmt = str(fmt).lower()
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"compressed format must be 'jpeg' or 'png', got '{fmt}'")
    img = np.asarray(rgb_u8)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"need a uint8 (H, W, 3) RGB or (H, W) mono image, got {img.dtype} {img.shape}")
    if img.size == 0:
        raise ValueError(f"image must not be empty, got shape {img.shape}")
    if img.ndim == 3:
        # Image files hold RGB; OpenCV's encoder expects BGR, as image_transport's bgr8 target says.
        to_encode = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
        format_str = f"rgb8; {fmt} compressed bgr8"
    else:
        to_encode = np.ascontiguousarray(img)
        format_str = f"mono8; {fmt} compressed "
    if fmt == "jpeg":
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"jpeg quality must be in 1..100, got {quality}")
        ok, buf = cv2.imencode(".jpg", to_encode, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, buf = cv2.imencode(".png", to_encode)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {img.shape} image as {fmt}")
    cls = message_class(types, "sensor_msgs/msg/CompressedImage")
    return cls(header=make_header(types, stamp_ns, frame_id), format=format_str, data=bytes_field(cls, buf))


# --------------------------------------------------------------------------
# Readers: messages -> numpy
# --------------------------------------------------------------------------

def _data_buffer(data: Any) -> np.ndarray:
    """Return the bytes of a uint8[] field as a 1-D uint8 array, a view wherever the field allows."""
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8:
            return data.reshape(-1) if data.flags.c_contiguous else np.ascontiguousarray(data).reshape(-1)
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        # rclpy's array.array('B') and bytes expose the buffer protocol: no copy.
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, (list, tuple)):
        if data and isinstance(data[0], bytes):
            # A ROS 2 byte[] field arrives in rclpy as a list of 1-byte bytes objects.
            return np.frombuffer(b"".join(data), dtype=np.uint8)
        return np.asarray(data, dtype=np.uint8)
    raise ValueError(f"cannot read message data of type {type(data).__name__}; expected bytes, array.array, "
                     f"a numpy uint8 array or a list of ints")


# Why an image cannot be decoded (UndecodableImage.reason), as readers count skipped frames.
UNKNOWN_ENCODING = "unknown encoding"
NOT_COLOUR = "encoding has no colour meaning"
ZERO_SIZE = "zero size"
BAD_STEP = "step shorter than a row"
DATA_LENGTH = "data length is not height x step"
ODD_WIDTH = "odd width for a pixel-pair encoding"
COMPRESSED_DEPTH = "compressedDepth, not colour"
COMPRESSED_EMPTY = "compressed data empty"
COMPRESSED_UNREADABLE = "compressed data not decodable"
DEPTH_ENCODING = "not a depth encoding"


class UndecodableImage(ValueError):
    """An image message that cannot be decoded; ``reason`` names the kind of problem (one of the constants above)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _layout(msg: Any) -> tuple[np.dtype, int, int, int, int, np.ndarray]:
    """(dtype, channels, height, width, step, data bytes) of an Image, after every check of the header and size."""
    encoding = str(msg.encoding)
    try:
        dtype, channels = encoding_layout(encoding)
    except ValueError as exc:
        raise UndecodableImage(str(exc), UNKNOWN_ENCODING) from None
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise UndecodableImage(f"image '{encoding}' has zero size ({width}x{height}); a valid image has width, "
                               f"height > 0", ZERO_SIZE)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise UndecodableImage(f"image step {step} is smaller than one row of {width} px x "
                               f"{channels * dtype.itemsize} bytes/px = {row_bytes} bytes for encoding '{encoding}'",
                               BAD_STEP)
    buf = _data_buffer(msg.data)
    if buf.size != height * step:
        raise UndecodableImage(f"image data has {buf.size} bytes but height x step = {height} x {step} = "
                               f"{height * step} (encoding '{encoding}', {width}x{height})", DATA_LENGTH)
    return dtype, channels, height, width, step, buf


def image_to_numpy(msg: Any) -> np.ndarray:
    """Pixels of a ``sensor_msgs/Image`` as a numpy array, with cv_bridge's semantics.

    Returns ``(H, W)`` for one channel, ``(H, W, C)`` otherwise, in the
    encoding's dtype (``yuv422`` is ``(H, W, 2)`` uint8, Bayer ``(H, W)``).
    Zero-copy wherever possible: the result is a view of the message buffer
    (row ``step`` padding skipped through strides), so it may be read-only and
    changes with the message; ``.copy()`` it to keep or modify. A copy is made
    only when the message's byte order (``is_bigendian``) differs from the
    host's, so the result always has a native-order dtype that OpenCV and
    torch accept, or when ``data`` is a Python list.

    Raises :class:`UndecodableImage` (a ``ValueError``) for an unknown
    encoding, an empty image, a ``step`` shorter than a row, or ``data``
    whose length is not ``height * step``.
    """
    dtype, channels, height, width, step, buf = _layout(msg)
    msg_big = bool(msg.is_bigendian)
    view_dtype = dtype.newbyteorder(">" if msg_big else "<") if dtype.itemsize > 1 else dtype
    # One strided view over the whole buffer: rows `step` bytes apart, pixels packed within a row.
    out = np.ndarray(shape=(height, width, channels), dtype=view_dtype, buffer=buf, offset=0,
                     strides=(step, channels * dtype.itemsize, dtype.itemsize))
    if dtype.itemsize > 1 and msg_big != _HOST_BIGENDIAN:
        out = out.astype(dtype.newbyteorder("="))
    return out[:, :, 0] if channels == 1 else out


def _check_colour(encoding: str, dtype: np.dtype, channels: int, width: int) -> None:
    """Raise UndecodableImage unless image_to_rgb8 can turn this layout into colour."""
    if dtype.kind == "f":
        raise UndecodableImage(f"image encoding '{encoding}' is a depth/float image, not colour; "
                               f"use reloc_ros.conversions.depth_to_metres for depth", NOT_COLOUR)
    named = encoding in NAMED_ENCODINGS and dtype in (_U8, _U16)
    if not (named or (channels == 1 and dtype in (_U8, _U16))):
        raise UndecodableImage(
            f"image encoding '{encoding}' has no defined colour meaning; image_to_rgb8 supports "
            f"rgb8/bgr8/rgba8/bgra8 (and 16-bit forms), mono8/mono16/8UC1/16UC1, bayer_*8/16, "
            f"{'/'.join(_YUV422_CODES)}", NOT_COLOUR)
    if encoding in _YUV422_CODES and width % 2:
        raise UndecodableImage(f"image encoding '{encoding}' packs pixel pairs and needs an even width, got {width}",
                               ODD_WIDTH)


def check_rgb8_image(msg: Any) -> tuple[int, int]:
    """Return ``(width, height)`` of a ``sensor_msgs/Image`` that :func:`image_to_rgb8` can decode.

    Checks the header and the data length only, no pixel is converted:
    :class:`UndecodableImage` (with its ``reason``) exactly where decoding
    would fail.
    """
    dtype, channels, height, width, _, _ = _layout(msg)
    _check_colour(str(msg.encoding), dtype, channels, width)
    return width, height


def _u16_to_u8(img: np.ndarray) -> np.ndarray:
    # Full 16-bit range onto 8 bits (value / 256), as cv_bridge's 16 -> 8 bit conversion does.
    return (img >> 8).astype(np.uint8)


def image_to_rgb8(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` as ``(H, W, 3)`` uint8 RGB, the input of every model.

    * ``rgb8`` is returned as the zero-copy view of :func:`image_to_numpy`
      (possibly read-only; copy before writing); everything else is a new array.
    * ``bgr8``/``rgba8``/``bgra8`` (and their 16-bit forms) are reordered with OpenCV.
    * ``mono8``/``8UC1`` are replicated to three channels.
    * 16-bit data (``mono16``, ``16UC1``, ``rgb16``, ``bayer_*16``, ...) is
      scaled by a fixed 1/256 (the full 16-bit range maps onto 0-255), not
      stretched per image, so training and inference see the same mapping;
      10/12-bit sensors therefore look dark.
    * ``bayer_*`` is demosaiced with OpenCV's bilinear ``COLOR_Bayer*``.
    * ``yuv422``/``uyvy`` and ``yuv422_yuy2``/``yuyv`` go through OpenCV's BT.601 YUV -> RGB.

    Float images (``32FC1`` ...) are depth or other measurements, not colour:
    refused (use :func:`depth_to_metres`), as are multi-channel ``8UC3``-style
    encodings whose channel order is not defined.
    """
    encoding = str(msg.encoding)
    img = image_to_numpy(msg)
    dtype, channels = encoding_layout(encoding)
    _check_colour(encoding, dtype, channels, img.shape[1])
    try:
        return _to_rgb8(img, encoding, dtype)
    except cv2.error as exc:  # a layout OpenCV refuses: undecodable, never a crash of the reader
        raise UndecodableImage(f"OpenCV cannot convert this '{encoding}' image ({img.shape[1]}x{img.shape[0]}) "
                               f"to RGB: {exc}", NOT_COLOUR) from None


def _to_rgb8(img: np.ndarray, encoding: str, dtype: np.dtype) -> np.ndarray:
    img8 = _u16_to_u8(img) if dtype == _U16 else img
    if encoding == "rgb8":
        return img
    if encoding in ("rgb16",):
        return img8
    if encoding in ("bgr8", "bgr16"):
        return cv2.cvtColor(img8, cv2.COLOR_BGR2RGB)
    if encoding in ("rgba8", "rgba16"):
        return cv2.cvtColor(img8, cv2.COLOR_RGBA2RGB)
    if encoding in ("bgra8", "bgra16"):
        return cv2.cvtColor(img8, cv2.COLOR_BGRA2RGB)
    if encoding.startswith("bayer_"):
        code = _BAYER_CODES[encoding[len("bayer_"):len("bayer_") + 4]]
        # Demosaic at full depth, then reduce: interpolation on 16-bit data keeps its precision.
        rgb = cv2.cvtColor(np.ascontiguousarray(img), code)
        return _u16_to_u8(rgb) if rgb.dtype == np.uint16 else rgb
    if encoding in _YUV422_CODES:
        return cv2.cvtColor(np.ascontiguousarray(img), _YUV422_CODES[encoding])
    # mono8, mono16, 8UC1, 16UC1 (the only layouts _check_colour lets through besides the above): grey replicated.
    return cv2.cvtColor(img8, cv2.COLOR_GRAY2RGB)


def depth_to_metres(msg: Any) -> np.ndarray:
    """Decode a depth ``sensor_msgs/Image`` as ``(H, W)`` float32 metres (a new array).

    REP-118: ``16UC1`` holds millimetres, ``32FC1`` metres. Invalid
    measurements become NaN: 0 (the "no return" value of both), NaN, +-inf
    (REP-118's "out of range"; no usable depth) and negative values.
    """
    encoding = str(msg.encoding)
    if encoding not in ("16UC1", "32FC1"):
        raise UndecodableImage(f"depth image encoding must be 16UC1 (millimetres) or 32FC1 (metres) per REP-118, "
                               f"got '{encoding}'", DEPTH_ENCODING)
    img = image_to_numpy(msg)
    if encoding == "16UC1":
        depth = img.astype(np.float32) * np.float32(1e-3)
    else:
        depth = img.astype(np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


def _compressed_buffer(msg: Any) -> tuple[str, np.ndarray]:
    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower():
        raise UndecodableImage(f"CompressedImage format '{fmt}' is compressedDepth (depth transport), not a colour "
                               f"jpeg/png image", COMPRESSED_DEPTH)
    buf = _data_buffer(msg.data)
    if buf.size == 0:
        raise UndecodableImage(f"CompressedImage (format '{fmt}') has no data", COMPRESSED_EMPTY)
    return fmt, buf


def _imdecode(buf: np.ndarray, fmt: str, flags: int) -> np.ndarray:
    try:
        decoded = cv2.imdecode(buf, flags)
    except cv2.error:
        decoded = None
    if decoded is None or decoded.size == 0:
        raise UndecodableImage(f"CompressedImage data ({buf.size} bytes) could not be decoded as jpeg or png "
                               f"(format field '{fmt}')", COMPRESSED_UNREADABLE)
    return decoded


def check_compressed_rgb8(msg: Any) -> tuple[int, int]:
    """Return ``(width, height)`` of a ``sensor_msgs/CompressedImage`` that :func:`compressed_to_rgb8` can decode.

    :class:`UndecodableImage` (with its ``reason``) exactly where decoding
    would fail. The data is decoded once as grey (no colour conversion), the
    only way to know that a jpeg/png body is readable.
    """
    fmt, buf = _compressed_buffer(msg)
    grey = _imdecode(buf, fmt, cv2.IMREAD_GRAYSCALE)
    return int(grey.shape[1]), int(grey.shape[0])


def compressed_to_rgb8(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg or png) as ``(H, W, 3)`` uint8 RGB.

    Decoded with ``cv2.imdecode``; grey images are replicated to three
    channels and 16-bit PNGs reduced to 8 bits. ``compressedDepth`` (the
    depth transport, with its own header) is refused. Every failure is an
    :class:`UndecodableImage` (a ``ValueError``) saying why.
    """
    fmt, buf = _compressed_buffer(msg)
    decoded = _imdecode(buf, fmt, cv2.IMREAD_COLOR)
    # image_transport writes "<encoding>; <fmt> compressed <target>". The target is bgr8 for colour
    # (the file holds true colours). A producer that encoded rgb8 bytes as if BGR says so with an
    # rgb target, and then OpenCV's "BGR" output is already RGB.
    target = fmt.split("compressed", 1)[1].strip().lower() if "compressed" in fmt else ""
    if target.startswith("rgb"):
        return decoded
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
