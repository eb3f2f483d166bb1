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

"""Tests of reloc_ros.conversions.images: raw, colour, depth and compressed images, every encoding."""

from __future__ import annotations

import array
import sys
import types as pytypes
import zlib

import cv2
import numpy as np
import pytest

from conftest import STAMP_NS, cdr_round_trip
from reloc_ros import conversions as conv
from reloc_ros.conversions import images as ci
from reloc_ros.conversions.images import encoding_layout, NAMED_ENCODINGS


def _raw_image(T, data: bytes, height: int, width: int, step: int, encoding: str, big: bool = False):
    """Build an Image by hand, bypassing make_image_msg, for layouts the builder never writes."""
    return T["sensor_msgs/msg/Image"](
        header=conv.make_header(T, 0, "cam"), height=height, width=width, encoding=encoding,
        is_bigendian=int(big), step=step, data=np.frombuffer(data, dtype=np.uint8).copy())


def _random_image(rng, encoding: str, height: int = 5, width: int = 6) -> np.ndarray:
    dtype, channels = encoding_layout(encoding)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype.kind == "f":
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


# --------------------------------------------------------------------------
# Raw images: every encoding round-trips exactly
# --------------------------------------------------------------------------

ROUND_TRIP_ENCODINGS = list(NAMED_ENCODINGS) + [
    "8UC1", "8UC3", "8UC4", "8SC1", "16UC1", "16SC1", "16UC3", "32SC1", "32FC1", "32FC3", "64FC1", "8UC7", "16U"]


@pytest.mark.parametrize("encoding", ROUND_TRIP_ENCODINGS)
def test_image_round_trip_every_encoding(T, ts, encoding):
    rng = np.random.default_rng(zlib.crc32(encoding.encode()))
    img = _random_image(rng, encoding)
    msg = conv.make_image_msg(T, img, encoding, STAMP_NS, "cam")
    dtype, channels = encoding_layout(encoding)
    assert msg.step == img.shape[1] * channels * dtype.itemsize
    assert msg.is_bigendian == int(sys.byteorder == "big")
    for m in (msg, cdr_round_trip(ts, msg)):
        out = conv.image_to_numpy(m)
        assert out.dtype == img.dtype and out.shape == img.shape
        np.testing.assert_array_equal(out, img)
        assert m.encoding == encoding and conv.stamp_to_ns(m.header.stamp) == STAMP_NS


def test_supported_encodings_listed():
    for name in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC1", "8UC3", "16UC1", "32FC1",
                 "bayer_rggb8", "bayer_bggr16", "yuv422", "yuv422_yuy2"):
        assert name in conv.IMAGE_ENCODINGS


def test_row_padded_image_decodes(T):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 65535, size=(4, 5), dtype=np.uint16)
    step = 5 * 2 + 3  # odd padding: rows start at unaligned addresses
    rows = [img[r].astype("<u2").tobytes() + b"\xff\xee\xdd" for r in range(4)]
    msg = _raw_image(T, b"".join(rows), 4, 5, step, "16UC1")
    np.testing.assert_array_equal(conv.image_to_numpy(msg), img)

    rgb = rng.integers(0, 255, size=(3, 4, 3), dtype=np.uint8)
    rows = [rgb[r].tobytes() + bytes(4) for r in range(3)]
    msg = _raw_image(T, b"".join(rows), 3, 4, 16, "bgr8")
    np.testing.assert_array_equal(conv.image_to_numpy(msg), rgb)
    np.testing.assert_array_equal(conv.image_to_rgb8(msg), rgb[..., ::-1])


def test_big_endian_mono16_decodes(T):
    img = np.array([[1, 258, 65535], [4096, 0, 513]], dtype=np.uint16)
    msg = _raw_image(T, img.astype(">u2").tobytes(), 2, 3, 6, "mono16", big=True)
    out = conv.image_to_numpy(msg)
    np.testing.assert_array_equal(out, img)
    assert out.dtype.isnative
    # The same bytes declared little-endian are byte-swapped values: the flag is what decides.
    msg_le = _raw_image(T, img.astype(">u2").tobytes(), 2, 3, 6, "mono16", big=False)
    np.testing.assert_array_equal(conv.image_to_numpy(msg_le), img.byteswap())


def test_big_endian_float_depth(T):
    depth = np.array([[1.25, 0.0]], dtype=np.float32)
    msg = _raw_image(T, depth.astype(">f4").tobytes(), 1, 2, 8, "32FC1", big=True)
    out = conv.depth_to_metres(msg)
    assert out[0, 0] == np.float32(1.25) and np.isnan(out[0, 1])


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "16UC1", "32FC1"])
def test_image_to_numpy_is_zero_copy(T, encoding):
    img = _random_image(np.random.default_rng(2), encoding, 6, 8)
    msg = conv.make_image_msg(T, img, encoding, 0, "cam")
    out = conv.image_to_numpy(msg)
    assert np.shares_memory(out, msg.data)
    # A view: writing through the message changes the decoded pixels.
    before = out.copy()
    msg.data[: msg.step] ^= 0xFF
    assert not np.array_equal(out[0], before[0])


def test_padded_image_is_zero_copy(T):
    data = np.arange(3 * 12, dtype=np.uint8).tobytes()
    msg = _raw_image(T, data, 3, 3, 12, "rgb8")
    out = conv.image_to_numpy(msg)
    assert np.shares_memory(out, msg.data)
    np.testing.assert_array_equal(out[1, 0], [12, 13, 14])


def test_rclpy_style_data_fields_decode():
    """Decode uint8[] as rclpy gives it (array.array('B')), and bytes and lists too."""
    img = np.arange(2 * 3, dtype=np.uint8).reshape(2, 3) * 10
    for data in (array.array("B", img.tobytes()), img.tobytes(), list(img.reshape(-1).tolist()),
                 [bytes([v]) for v in img.reshape(-1)]):
        msg = pytypes.SimpleNamespace(height=2, width=3, step=3, encoding="mono8", is_bigendian=0, data=data)
        np.testing.assert_array_equal(conv.image_to_numpy(msg), img)
    # array.array is read without copying.
    buf = array.array("B", img.tobytes())
    msg = pytypes.SimpleNamespace(height=2, width=3, step=3, encoding="mono8", is_bigendian=0, data=buf)
    out = conv.image_to_numpy(msg)
    buf[0] = 77
    assert out[0, 0] == 77


# --------------------------------------------------------------------------
# Colour conversion for models
# --------------------------------------------------------------------------

def test_image_to_rgb8_channel_orders(T):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 255, size=(4, 5, 3), dtype=np.uint8)
    alpha = rng.integers(0, 255, size=(4, 5, 1), dtype=np.uint8)
    cases = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2),
        "rgb16": rgb.astype(np.uint16) * 256 + 7,
        "bgr16": (rgb[..., ::-1].astype(np.uint16) * 256 + 255),
    }
    for encoding, src in cases.items():
        out = conv.image_to_rgb8(conv.make_image_msg(T, np.ascontiguousarray(src), encoding, 0, "cam"))
        assert out.dtype == np.uint8 and out.shape == (4, 5, 3), encoding
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)


def test_image_to_rgb8_mono_replicated_and_16bit_scaled(T):
    grey = np.array([[0, 128, 255]], dtype=np.uint8)
    for encoding in ("mono8", "8UC1"):
        out = conv.image_to_rgb8(conv.make_image_msg(T, grey, encoding, 0, "cam"))
        np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))
    grey16 = np.array([[0, 255, 256, 65535, 32768]], dtype=np.uint16)
    for encoding in ("mono16", "16UC1"):
        out = conv.image_to_rgb8(conv.make_image_msg(T, grey16, encoding, 0, "cam"))
        np.testing.assert_array_equal(out[..., 0], [[0, 0, 1, 255, 128]])
        np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_image_to_rgb8_refuses_float_and_undefined_colour(T):
    depth = np.ones((2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="depth/float image.*depth_to_metres"):
        conv.image_to_rgb8(conv.make_image_msg(T, depth, "32FC1", 0, "cam"))
    with pytest.raises(ValueError, match="'8UC3' has no defined colour meaning"):
        conv.image_to_rgb8(conv.make_image_msg(T, np.zeros((2, 2, 3), np.uint8), "8UC3", 0, "cam"))


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Bayer mosaic by hand: pattern names the colours of pixels (0,0), (0,1), (1,0), (1,1)."""
    idx = {"r": 0, "g": 1, "b": 2}
    out = np.zeros(rgb.shape[:2], dtype=rgb.dtype)
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, idx[pattern[k]]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_flat_colour_demosaics_to_that_colour(T, pattern, bits):
    colour = np.array([200, 90, 30])
    dtype = np.uint8 if bits == 8 else np.uint16
    scale = 1 if bits == 8 else 256
    rgb = np.broadcast_to((colour * scale).astype(dtype), (8, 10, 3))
    msg = conv.make_image_msg(T, _mosaic(rgb, pattern), f"bayer_{pattern}{bits}", 0, "cam")
    out = conv.image_to_rgb8(msg)
    assert out.shape == (8, 10, 3) and out.dtype == np.uint8
    # Demosaicing is lossy at the border; the interior of a flat image must be the colour itself.
    inner = out[2:-2, 2:-2].reshape(-1, 3).astype(int)
    assert np.abs(inner - colour).max() <= 2, (pattern, inner[:3])


def test_bayer_matches_opencv_on_a_textured_image(T):
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 255, size=(6, 8), dtype=np.uint8)
    out = conv.image_to_rgb8(conv.make_image_msg(T, raw, "bayer_rggb8", 0, "cam"))
    np.testing.assert_array_equal(out, cv2.cvtColor(raw, cv2.COLOR_BayerBG2RGB))


def _rgb_to_ycbcr_bt601_video(rgb):
    """BT.601 limited-range Y'CbCr, the inverse of what OpenCV's YUV2RGB_UYVY applies."""
    r, g, b = (float(v) for v in rgb)
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return [int(round(c)) for c in (y, u, v)]


@pytest.mark.parametrize("encoding,order", [("yuv422", "uyvy"), ("uyvy", "uyvy"),
                                            ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")])
def test_yuv422_known_colour(T, encoding, order):
    colour = (180, 60, 120)
    y, u, v = _rgb_to_ycbcr_bt601_video(colour)
    pair = [u, y, v, y] if order == "uyvy" else [y, u, y, v]
    height, width = 2, 4
    data = bytes(pair * (height * width // 2))
    msg = _raw_image(T, data, height, width, width * 2, encoding)
    native = conv.image_to_numpy(msg)
    assert native.shape == (height, width, 2) and native.dtype == np.uint8
    out = conv.image_to_rgb8(msg)
    assert out.shape == (height, width, 3)
    assert np.abs(out.reshape(-1, 3).astype(int) - colour).max() <= 3, out[0, 0]


def test_yuv422_needs_even_width(T):
    with pytest.raises(ValueError, match="even width"):
        conv.make_image_msg(T, np.zeros((2, 3, 2), np.uint8), "yuv422", 0, "cam")


# --------------------------------------------------------------------------
# Depth
# --------------------------------------------------------------------------

def test_depth_16uc1_is_millimetres_and_zero_is_invalid(T):
    mm = np.array([[0, 1500, 65535]], dtype=np.uint16)
    out = conv.depth_to_metres(conv.make_image_msg(T, mm, "16UC1", 0, "depth"))
    assert out.dtype == np.float32
    assert np.isnan(out[0, 0])
    np.testing.assert_allclose(out[0, 1:], [1.5, 65.535], rtol=1e-6)


def test_depth_32fc1_is_metres_and_invalid_values_are_nan(T):
    m = np.array([[0.0, np.nan, 2.5, np.inf, -1.0]], dtype=np.float32)
    msg = conv.make_image_msg(T, m, "32FC1", 0, "depth")
    out = conv.depth_to_metres(msg)
    assert out[0, 2] == np.float32(2.5)
    assert np.isnan(out[0, [0, 1, 3, 4]]).all()
    # A new array: the message is untouched.
    assert conv.image_to_numpy(msg)[0, 0] == 0.0


def test_depth_rejects_colour_encodings(T):
    with pytest.raises(ValueError, match="16UC1.*32FC1.*got 'mono16'"):
        conv.depth_to_metres(conv.make_image_msg(T, np.zeros((2, 2), np.uint16), "mono16", 0, "cam"))


# --------------------------------------------------------------------------
# Compressed images
# --------------------------------------------------------------------------

def _smooth_rgb(height=32, width=48):
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1), np.full_like(xx, 90)],
                    axis=2).astype(np.uint8)


def test_png_round_trip_is_exact(T, ts):
    rgb = _smooth_rgb()
    msg = conv.make_compressed_image_msg(T, rgb, "png", STAMP_NS, "cam")
    assert msg.format == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(conv.compressed_to_rgb8(cdr_round_trip(ts, msg)), rgb)


def test_jpeg_round_trip_is_close_and_keeps_colour_order(T, ts):
    rgb = _smooth_rgb()
    msg = conv.make_compressed_image_msg(T, rgb, "jpeg", STAMP_NS, "cam", quality=95)
    assert msg.format == "rgb8; jpeg compressed bgr8"
    out = conv.compressed_to_rgb8(cdr_round_trip(ts, msg))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() < 3.0
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    out_red = conv.compressed_to_rgb8(conv.make_compressed_image_msg(T, red, "jpeg", 0, "cam"))
    assert out_red[..., 0].min() > 240 and out_red[..., 2].max() < 15


def test_compressed_mono_and_rgb_target(T):
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (4, 1))
    msg = conv.make_compressed_image_msg(T, grey, "png", 0, "cam")
    assert msg.format.startswith("mono8; png compressed")
    np.testing.assert_array_equal(conv.compressed_to_rgb8(msg), np.repeat(grey[..., None], 3, axis=2))
    # A producer that encoded RGB bytes as they are says "compressed rgb8": no channel swap then.
    rgb = _smooth_rgb(8, 8)
    ok, buf = cv2.imencode(".png", rgb)
    assert ok
    msg = T["sensor_msgs/msg/CompressedImage"](header=conv.make_header(T, 0, "cam"),
                                               format="rgb8; png compressed rgb8", data=buf.reshape(-1))
    np.testing.assert_array_equal(conv.compressed_to_rgb8(msg), rgb)


def test_compressed_errors(T):
    msg = T["sensor_msgs/msg/CompressedImage"](header=conv.make_header(T, 0, "cam"), format="jpeg",
                                               data=np.frombuffer(b"not an image at all", np.uint8).copy())
    with pytest.raises(ValueError, match="could not be decoded.*format field 'jpeg'"):
        conv.compressed_to_rgb8(msg)
    msg = T["sensor_msgs/msg/CompressedImage"](header=conv.make_header(T, 0, "cam"),
                                               format="16UC1; compressedDepth png", data=np.zeros(20, np.uint8))
    with pytest.raises(ValueError, match="compressedDepth"):
        conv.compressed_to_rgb8(msg)
    with pytest.raises(ValueError, match="'jpeg' or 'png'"):
        conv.make_compressed_image_msg(T, _smooth_rgb(), "webp", 0, "cam")


# --------------------------------------------------------------------------
# Image errors
# --------------------------------------------------------------------------

def test_image_errors_name_the_problem(T):
    with pytest.raises(ValueError, match=r"has 10 bytes but height x step = 2 x 6 = 12"):
        conv.image_to_numpy(_raw_image(T, bytes(10), 2, 3, 6, "mono16"))
    with pytest.raises(ValueError, match=r"has 13 bytes but height x step = 2 x 6 = 12"):
        conv.image_to_numpy(_raw_image(T, bytes(13), 2, 3, 6, "mono16"))
    with pytest.raises(ValueError, match=r"unsupported image encoding 'rgb9'.*rgb8.*32FC1"):
        conv.image_to_numpy(_raw_image(T, bytes(12), 2, 3, 6, "rgb9"))
    with pytest.raises(ValueError, match=r"step 4 is smaller than one row .* = 6 bytes"):
        conv.image_to_numpy(_raw_image(T, bytes(8), 2, 3, 4, "mono16"))
    with pytest.raises(ValueError, match="zero size"):
        conv.image_to_numpy(_raw_image(T, b"", 0, 3, 3, "mono8"))
    with pytest.raises(ValueError, match="unsupported image encoding ''"):
        conv.image_to_numpy(_raw_image(T, bytes(6), 2, 3, 3, ""))


def test_make_image_msg_refuses_mismatched_arrays(T):
    with pytest.raises(ValueError, match="needs dtype uint16, got uint8"):
        conv.make_image_msg(T, np.zeros((2, 2), np.uint8), "mono16", 0, "cam")
    with pytest.raises(ValueError, match="needs 3 channel"):
        conv.make_image_msg(T, np.zeros((2, 2), np.uint8), "rgb8", 0, "cam")
    with pytest.raises(ValueError, match="unsupported image encoding"):
        conv.make_image_msg(T, np.zeros((2, 2), np.uint8), "grey", 0, "cam")


def test_make_image_msg_packs_non_contiguous_input(T):
    big = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    view = big[::2, 1::2]  # strided view
    msg = conv.make_image_msg(T, view, "rgb8", 0, "cam")
    assert msg.step == 4 * 3 and len(msg.data) == 3 * 12
    np.testing.assert_array_equal(conv.image_to_numpy(msg), view)
    # The message holds a copy: changing the source afterwards does not change it.
    contiguous = np.zeros((2, 2), np.uint16)
    msg = conv.make_image_msg(T, contiguous, "16UC1", 0, "cam")
    contiguous[:] = 9
    assert not conv.image_to_numpy(msg).any()


# --------------------------------------------------------------------------
# Checking without decoding: the same verdict as decoding, with a reason
# --------------------------------------------------------------------------

@pytest.mark.parametrize("data, height, width, step, encoding, reason", [
    (bytes(12), 2, 3, 6, "rgb9", ci.UNKNOWN_ENCODING),
    (b"", 0, 3, 3, "mono8", ci.ZERO_SIZE),
    (bytes(8), 2, 3, 4, "mono16", ci.BAD_STEP),
    (bytes(10), 2, 3, 6, "mono16", ci.DATA_LENGTH),
    (bytes(24), 2, 3, 12, "32FC1", ci.NOT_COLOUR),
    (bytes(18), 2, 3, 9, "8UC3", ci.NOT_COLOUR),
    (bytes(12), 2, 3, 6, "yuv422", ci.ODD_WIDTH),
])
def test_check_rgb8_image_fails_exactly_where_decoding_does(T, data, height, width, step, encoding, reason):
    msg = _raw_image(T, data, height, width, step, encoding)
    with pytest.raises(ci.UndecodableImage) as checked:
        ci.check_rgb8_image(msg)
    with pytest.raises(ci.UndecodableImage) as decoded:
        conv.image_to_rgb8(msg)
    assert checked.value.reason == decoded.value.reason == reason
    assert str(checked.value) == str(decoded.value)


def test_check_rgb8_image_returns_the_size_of_good_images(T):
    for encoding in ("rgb8", "bgr16", "mono8", "16UC1", "bayer_rggb8", "yuyv"):
        img = _random_image(np.random.default_rng(0), encoding, height=4, width=6)
        msg = conv.make_image_msg(T, img, encoding, 0, "cam")
        assert ci.check_rgb8_image(msg) == (6, 4)
        assert conv.image_to_rgb8(msg).shape == (4, 6, 3)


def test_check_compressed_rgb8(T):
    good = conv.make_compressed_image_msg(T, _smooth_rgb(), "jpeg", 0, "cam")
    h, w = _smooth_rgb().shape[:2]
    assert ci.check_compressed_rgb8(good) == (w, h)
    empty = T["sensor_msgs/msg/CompressedImage"](header=conv.make_header(T, 0, "cam"), format="jpeg",
                                                 data=np.zeros(0, np.uint8))
    junk = T["sensor_msgs/msg/CompressedImage"](header=conv.make_header(T, 0, "cam"), format="png",
                                                data=np.frombuffer(b"\x89PNG\r\n\x1a\nrest lost", np.uint8).copy())
    depth = T["sensor_msgs/msg/CompressedImage"](header=conv.make_header(T, 0, "cam"),
                                                 format="16UC1; compressedDepth png", data=np.zeros(20, np.uint8))
    for msg, reason in ((empty, ci.COMPRESSED_EMPTY), (junk, ci.COMPRESSED_UNREADABLE), (depth, ci.COMPRESSED_DEPTH)):
        for fn in (ci.check_compressed_rgb8, conv.compressed_to_rgb8):
            with pytest.raises(ci.UndecodableImage) as err:
                fn(msg)
            assert err.value.reason == reason


def test_an_odd_width_yuv422_image_is_undecodable_not_an_opencv_error(T):
    msg = _raw_image(T, bytes(12), 2, 3, 6, "uyvy")
    with pytest.raises(ValueError, match="needs an even width, got 3"):
        conv.image_to_rgb8(msg)
