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

"""Tests of reloc_ros.conversions on rosbags' real ROS 2 message classes (and rclpy-like stand-ins)."""

from __future__ import annotations

import array
import sys
import types as pytypes
import zlib

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from reloc_ros import conversions as conv
from reloc_ros.data.types import Intrinsics
from reloc_ros.geometry import covariance_from_std, make_pose

STAMP_NS = 1_700_000_123_456_789_012  # 1700000123.456789012 s: needs both sec and nanosec, fits int32 seconds


@pytest.fixture(scope="module")
def ts():
    return get_typestore(Stores.ROS2_HUMBLE)


@pytest.fixture(scope="module")
def T(ts):
    return ts.types


def _cdr_round_trip(ts, msg):
    """Serialize with the rosbags typestore and read back: what a bag would hold."""
    raw = ts.serialize_cdr(msg, msg.__msgtype__)
    return ts.deserialize_cdr(raw, msg.__msgtype__)


def _raw_image(T, data: bytes, height: int, width: int, step: int, encoding: str, big: bool = False):
    """Build an Image by hand, bypassing make_image_msg, for layouts the builder never writes."""
    return T["sensor_msgs/msg/Image"](
        header=conv.make_header(T, 0, "cam"), height=height, width=width, encoding=encoding,
        is_bigendian=int(big), step=step, data=np.frombuffer(data, dtype=np.uint8).copy())


def _random_image(rng, encoding: str, height: int = 5, width: int = 6) -> np.ndarray:
    dtype, channels = conv._encoding_layout(encoding)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype.kind == "f":
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


# --------------------------------------------------------------------------
# Stamps and headers
# --------------------------------------------------------------------------

def test_stamp_round_trip_splits_seconds_and_nanoseconds(T):
    stamp = conv.stamp_from_ns(T, 1_500_000_001)
    assert (stamp.sec, stamp.nanosec) == (1, 500_000_001)
    assert conv.stamp_to_ns(stamp) == 1_500_000_001
    assert conv.stamp_to_ns(conv.stamp_from_ns(T, STAMP_NS)) == STAMP_NS
    # rospy-style stamps (secs/nsecs) read the same.
    assert conv.stamp_to_ns(pytypes.SimpleNamespace(secs=2, nsecs=3)) == 2_000_000_003


def test_stamp_rejects_negative_and_non_stamps(T):
    with pytest.raises(ValueError, match="stamp must be >= 0"):
        conv.stamp_from_ns(T, -1)
    with pytest.raises(ValueError, match="not a stamp"):
        conv.stamp_to_ns(object())


def test_header_carries_stamp_and_frame(T, ts):
    header = _cdr_round_trip(ts, conv.make_header(T, STAMP_NS, "camera_optical_frame"))
    assert header.frame_id == "camera_optical_frame"
    assert conv.stamp_to_ns(header.stamp) == STAMP_NS


def test_missing_type_in_mapping_is_named(T):
    partial = {k: v for k, v in T.items() if k != "std_msgs/msg/Header"}
    with pytest.raises(ValueError, match="'std_msgs/msg/Header' is missing"):
        conv.make_header(partial, 0, "map")


# --------------------------------------------------------------------------
# Raw images: every encoding round-trips exactly
# --------------------------------------------------------------------------

ROUND_TRIP_ENCODINGS = list(conv._NAMED_ENCODINGS) + [
    "8UC1", "8UC3", "8UC4", "8SC1", "16UC1", "16SC1", "16UC3", "32SC1", "32FC1", "32FC3", "64FC1", "8UC7", "16U"]


@pytest.mark.parametrize("encoding", ROUND_TRIP_ENCODINGS)
def test_image_round_trip_every_encoding(T, ts, encoding):
    rng = np.random.default_rng(zlib.crc32(encoding.encode()))
    img = _random_image(rng, encoding)
    msg = conv.make_image_msg(T, img, encoding, STAMP_NS, "cam")
    dtype, channels = conv._encoding_layout(encoding)
    assert msg.step == img.shape[1] * channels * dtype.itemsize
    assert msg.is_bigendian == int(sys.byteorder == "big")
    for m in (msg, _cdr_round_trip(ts, msg)):
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
    np.testing.assert_array_equal(conv.compressed_to_rgb8(_cdr_round_trip(ts, msg)), rgb)


def test_jpeg_round_trip_is_close_and_keeps_colour_order(T, ts):
    rgb = _smooth_rgb()
    msg = conv.make_compressed_image_msg(T, rgb, "jpeg", STAMP_NS, "cam", quality=95)
    assert msg.format == "rgb8; jpeg compressed bgr8"
    out = conv.compressed_to_rgb8(_cdr_round_trip(ts, msg))
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
# Camera info
# --------------------------------------------------------------------------

def test_camera_info_round_trip(T, ts):
    intr = Intrinsics(fx=525.0, fy=520.5, cx=319.5, cy=239.25, width=640, height=480)
    msg = _cdr_round_trip(ts, conv.make_camera_info_msg(T, intr, STAMP_NS, "cam_optical"))
    assert msg.distortion_model == "plumb_bob"
    np.testing.assert_array_equal(msg.d, np.zeros(5))
    np.testing.assert_array_equal(np.asarray(msg.r).reshape(3, 3), np.eye(3))
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4)[:, :3], intr.K_33)
    np.testing.assert_array_equal(np.asarray(msg.k).reshape(3, 3), intr.K_33)
    assert conv.camera_info_to_intrinsics(msg) == intr
    assert conv.camera_info_to_intrinsics(msg, rectified=True) == intr


def test_camera_info_rectified_reads_p_and_binning_roi(T):
    intr = Intrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
    msg = conv.make_camera_info_msg(T, intr, 0, "cam")
    msg.p = np.array([400.0, 0, 300.0, 0, 0, 410.0, 200.0, 0, 0, 0, 1, 0])
    rect = conv.camera_info_to_intrinsics(msg, rectified=True)
    assert (rect.fx, rect.fy, rect.cx, rect.cy) == (400.0, 410.0, 300.0, 200.0)
    msg.binning_x, msg.binning_y = 2, 4
    binned = conv.camera_info_to_intrinsics(msg)
    assert (binned.fx, binned.fy, binned.cx, binned.cy, binned.width, binned.height) == (
        250.0, 125.0, 160.0, 60.0, 320, 120)
    msg.binning_x = msg.binning_y = 0
    msg.roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=100, y_offset=40, height=200, width=300,
                                                    do_rectify=False)
    roi = conv.camera_info_to_intrinsics(msg)
    assert (roi.cx, roi.cy, roi.width, roi.height) == (220.0, 200.0, 300, 200)


def test_camera_info_uncalibrated_is_an_error(T):
    msg = conv.make_camera_info_msg(T, Intrinsics(1, 1, 1, 1, 4, 4), 0, "cam")
    msg.k = np.zeros(9)
    with pytest.raises(ValueError, match=r"fx=0\.0, fy=0\.0"):
        conv.camera_info_to_intrinsics(msg)


def test_camera_info_ros1_field_names():
    """ROS 1 bags (read by rosbags) spell the matrices K, P: readers accept both."""
    ros1_ts = get_typestore(Stores.ROS1_NOETIC)
    R1 = ros1_ts.types
    header = R1["std_msgs/msg/Header"](seq=7, stamp=R1["builtin_interfaces/msg/Time"](sec=5, nanosec=6),
                                       frame_id="cam")
    roi = R1["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    msg = R1["sensor_msgs/msg/CameraInfo"](
        header=header, height=12, width=10, distortion_model="plumb_bob", D=np.zeros(5),
        K=np.array([100.0, 0, 5, 0, 110.0, 6, 0, 0, 1]), R=np.eye(3).reshape(-1),
        P=np.array([90.0, 0, 4, 0, 0, 95.0, 3, 0, 0, 0, 1, 0]), binning_x=0, binning_y=0, roi=roi)
    msg = ros1_ts.deserialize_ros1(ros1_ts.serialize_ros1(msg, msg.__msgtype__), msg.__msgtype__)
    assert conv.camera_info_to_intrinsics(msg) == Intrinsics(100.0, 110.0, 5.0, 6.0, 10, 12)
    assert conv.camera_info_to_intrinsics(msg, rectified=True) == Intrinsics(90.0, 95.0, 4.0, 3.0, 10, 12)
    assert conv.stamp_to_ns(msg.header.stamp) == 5_000_000_006


# --------------------------------------------------------------------------
# Poses
# --------------------------------------------------------------------------

def _yaw(deg: float, t=(1.0, -2.0, 0.5)) -> np.ndarray:
    half = np.radians(deg) / 2
    return make_pose(np.array(t), np.array([0.0, 0.0, np.sin(half), np.cos(half)]))


def test_quaternion_order_is_xyzw(T):
    pose = T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=1.0, y=2.0, z=3.0),
        orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=np.sqrt(0.5), w=np.sqrt(0.5)))
    M = conv.pose_to_matrix(pose)
    # A 90 degree yaw maps x onto y.
    np.testing.assert_allclose(M[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(M[:3, 3], [1, 2, 3])
    # Builders write (x, y, z, w): a 60 degree yaw is z = sin 30, w = cos 30.
    msg = conv.make_pose_stamped(T, _yaw(60.0), 0, "map")
    q = msg.pose.orientation
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0, 0, 0.5, np.cos(np.radians(30))], atol=1e-12)


def test_pose_messages_round_trip(T, ts):
    pose = _yaw(-135.0, t=(3.0, 4.0, -1.0)) @ make_pose(np.zeros(3), np.array([0.3, 0.0, 0.0, 0.954]))
    cov = covariance_from_std([0.1, 0.2, 0.3], [0.01, 0.02, 0.03])
    cov[0, 1] = cov[1, 0] = 0.001
    msgs = {
        "geometry_msgs/msg/PoseStamped": conv.make_pose_stamped(T, pose, STAMP_NS, "map"),
        "geometry_msgs/msg/PoseWithCovarianceStamped": conv.make_pose_with_covariance_stamped(
            T, pose, cov, STAMP_NS, "map"),
        "nav_msgs/msg/Odometry": conv.make_odometry(T, pose, STAMP_NS, "odom", "base_link", cov),
        "geometry_msgs/msg/TransformStamped": conv.make_transform_stamped(T, pose, STAMP_NS, "map", "cam"),
    }
    assert set(msgs) == set(conv.POSE_MSGTYPES)
    children = {"nav_msgs/msg/Odometry": "base_link", "geometry_msgs/msg/TransformStamped": "cam"}
    for name, msg in msgs.items():
        back = _cdr_round_trip(ts, msg)
        stamp, frame, child, M = conv.stamped_pose_from_msg(back)
        assert stamp == STAMP_NS
        assert frame == ("odom" if name == "nav_msgs/msg/Odometry" else "map")
        assert child == children.get(name, "")
        np.testing.assert_allclose(M, pose, atol=1e-12)
        cov_back = conv.pose_covariance_from_msg(back)
        if name in ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseWithCovarianceStamped"):
            np.testing.assert_array_equal(cov_back, cov)
        else:
            assert cov_back is None


def test_transform_to_matrix_and_tf_message(T, ts):
    a = _yaw(30.0)
    b = _yaw(-90.0, t=(0, 0, 1))
    tf = _cdr_round_trip(ts, conv.make_tf_message(T, [conv.make_transform_stamped(T, a, 1, "map", "odom"),
                                                      conv.make_transform_stamped(T, b, 2, "odom", "base")]))
    assert [t.child_frame_id for t in tf.transforms] == ["odom", "base"]
    np.testing.assert_allclose(conv.transform_to_matrix(tf.transforms[0].transform), a, atol=1e-12)
    np.testing.assert_allclose(conv.transform_to_matrix(tf.transforms[1].transform), b, atol=1e-12)


def test_odometry_without_covariance_is_not_zero(T):
    odom = conv.make_odometry(T, _yaw(10.0), 0, "odom", "base_link")
    cov = conv.pose_covariance_from_msg(odom)
    np.testing.assert_array_equal(cov, np.eye(6) * conv.UNKNOWN_VARIANCE)
    np.testing.assert_array_equal(np.asarray(odom.twist.covariance).reshape(6, 6), np.eye(6) * conv.UNKNOWN_VARIANCE)


def test_pose_type_detection_without_msgtype():
    """Recognise the kind of rclpy messages (no __msgtype__) from their fields."""
    ns = pytypes.SimpleNamespace
    stamp = ns(sec=3, nanosec=4)
    pose = ns(position=ns(x=1.0, y=2.0, z=3.0), orientation=ns(x=0.0, y=0.0, z=0.0, w=1.0))
    tr = ns(translation=ns(x=1.0, y=2.0, z=3.0), rotation=ns(x=0.0, y=0.0, z=0.0, w=1.0))
    cov = list(np.eye(6).reshape(-1))
    cases = [
        (ns(header=ns(stamp=stamp, frame_id="map"), pose=pose), ""),
        (ns(header=ns(stamp=stamp, frame_id="map"), pose=ns(pose=pose, covariance=cov)), ""),
        (ns(header=ns(stamp=stamp, frame_id="map"), child_frame_id="base", pose=ns(pose=pose, covariance=cov),
            twist=ns()), "base"),
        (ns(header=ns(stamp=stamp, frame_id="map"), child_frame_id="cam", transform=tr), "cam"),
    ]
    for msg, child in cases:
        stamp_ns, frame, child_out, M = conv.stamped_pose_from_msg(msg)
        assert (stamp_ns, frame, child_out) == (3_000_000_004, "map", child)
        np.testing.assert_array_equal(M[:3, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="not a stamped pose message"):
        conv.stamped_pose_from_msg(ns(header=ns(stamp=stamp, frame_id="map")))
    with pytest.raises(ValueError, match="'sensor_msgs/msg/Image' carries no stamped pose"):
        conv.stamped_pose_from_msg(cases[0][0], msgtype="sensor_msgs/Image")


def test_bad_quaternions_raise(T):
    Q, P = T["geometry_msgs/msg/Quaternion"], T["geometry_msgs/msg/Point"]
    nan_pose = T["geometry_msgs/msg/Pose"](position=P(x=0.0, y=0.0, z=0.0),
                                           orientation=Q(x=0.0, y=0.0, z=float("nan"), w=1.0))
    with pytest.raises(ValueError, match="pose orientation contains NaN"):
        conv.pose_to_matrix(nan_pose)
    zero_tf = T["geometry_msgs/msg/Transform"](translation=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                                               rotation=Q(x=0.0, y=0.0, z=0.0, w=0.0))
    with pytest.raises(ValueError, match="transform rotation has zero norm"):
        conv.transform_to_matrix(zero_tf)
    # An uninitialised (all-zero) TransformStamped must not read as identity.
    msg = T["geometry_msgs/msg/TransformStamped"](header=conv.make_header(T, 0, "map"), child_frame_id="odom",
                                                  transform=zero_tf)
    with pytest.raises(ValueError, match="zero norm"):
        conv.stamped_pose_from_msg(msg)


def test_builders_refuse_non_rigid_and_bad_covariance(T):
    bad = np.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(ValueError, match="not a finite rigid transform"):
        conv.make_pose_stamped(T, bad, 0, "map")
    with pytest.raises(ValueError, match="not positive definite"):
        conv.make_pose_with_covariance_stamped(T, np.eye(4), np.zeros((6, 6)), 0, "map")


# --------------------------------------------------------------------------
# rclpy-like message classes: builders must give them what their setters accept
# --------------------------------------------------------------------------

def _strict_rclpy_like_types(names):
    """Stand-ins for rclpy classes: not dataclasses, reject numpy values as rclpy's setters do."""
    classes = {}

    def check(field, value):
        if isinstance(value, np.ndarray):
            raise TypeError(f"{field}: numpy array where rclpy wants a list/array.array")
        if isinstance(value, np.generic):
            raise TypeError(f"{field}: numpy scalar {type(value)} where rclpy wants a Python number")
        if isinstance(value, array.array) and value.typecode != "B":
            raise TypeError(f"{field}: array.array typecode {value.typecode}")
        if isinstance(value, list):
            for v in value:
                if not isinstance(v, (float, Fake)):
                    raise TypeError(f"{field}: list element {v!r} is not a float or message")

    class Fake:
        def __init__(self, **kwargs):
            for key, value in kwargs.items():
                check(key, value)
                setattr(self, key, value)

    for name in names:
        classes[name] = type(name.split("/")[-1], (Fake,), {})
    return classes


def test_builders_and_readers_work_on_rclpy_like_classes():
    R = _strict_rclpy_like_types(conv.BUILDER_MSGTYPES)
    rgb = _smooth_rgb(6, 8)
    img = conv.make_image_msg(R, rgb, "rgb8", STAMP_NS, "cam")
    assert isinstance(img.data, array.array)
    np.testing.assert_array_equal(conv.image_to_rgb8(img), rgb)
    comp = conv.make_compressed_image_msg(R, rgb, "png", 0, "cam")
    np.testing.assert_array_equal(conv.compressed_to_rgb8(comp), rgb)
    intr = Intrinsics(50.0, 51.0, 4.0, 3.0, 8, 6)
    assert conv.camera_info_to_intrinsics(conv.make_camera_info_msg(R, intr, 0, "cam")) == intr
    pose = _yaw(45.0)
    odom = conv.make_odometry(R, pose, STAMP_NS, "odom", "base", np.eye(6) * 0.5)
    stamp, frame, child, M = conv.stamped_pose_from_msg(odom)
    assert (stamp, frame, child) == (STAMP_NS, "odom", "base")
    np.testing.assert_allclose(M, pose, atol=1e-12)
    np.testing.assert_array_equal(conv.pose_covariance_from_msg(odom), np.eye(6) * 0.5)
    tf = conv.make_tf_message(R, [conv.make_transform_stamped(R, pose, 0, "map", "odom")])
    np.testing.assert_allclose(conv.stamped_pose_from_msg(tf.transforms[0])[3], pose, atol=1e-12)


def test_ros_message_types_imports_msg_modules(monkeypatch):
    fake_pkg = pytypes.ModuleType("fake_msgs")
    fake_msg = pytypes.ModuleType("fake_msgs.msg")

    class Thing:
        pass

    fake_msg.Thing = Thing
    monkeypatch.setitem(sys.modules, "fake_msgs", fake_pkg)
    monkeypatch.setitem(sys.modules, "fake_msgs.msg", fake_msg)
    assert conv.ros_message_types(["fake_msgs/msg/Thing"]) == {"fake_msgs/msg/Thing": Thing}
    with pytest.raises(ImportError, match="has no message 'Other'"):
        conv.ros_message_types(["fake_msgs/msg/Other"])
    with pytest.raises(ImportError, match="'surely_absent_msgs' is not importable"):
        conv.ros_message_types(["surely_absent_msgs/msg/X"])
    with pytest.raises(ValueError, match="pkg/msg/Type"):
        conv.ros_message_types(["not_a_type"])


def test_pose_array_and_diagnostics_round_trip_through_cdr(T, ts):
    poses = np.stack([make_pose([1.0, 2.0, 0.5], [0.0, 0.0, 0.38268343, 0.92387953]),
                      make_pose([-1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0])])
    msg = conv.make_pose_array(T, poses, 7_000_000_001, "map")
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, "geometry_msgs/msg/PoseArray"), "geometry_msgs/msg/PoseArray")
    assert back.header.frame_id == "map" and conv.stamp_to_ns(back.header.stamp) == 7_000_000_001
    assert np.allclose(np.stack([conv.pose_to_matrix(p) for p in back.poses]), poses, atol=1e-9)
    assert conv.make_pose_array(T, np.zeros((0, 4, 4)), 1, "map").poses == []
    bad = poses.copy()
    bad[1, :3, :3] *= 2.0  # not a rotation: must never reach a topic
    with pytest.raises(ValueError, match="not a finite rigid transform"):
        conv.make_pose_array(T, bad, 1, "map")

    diag = conv.make_diagnostic_array(T, 5, "relocalization: /relocalization", "WARN", "no frames",
                                      {"rate (Hz)": 3.14159, "model": "lab.pt", "dropped": 4})
    typ = "diagnostic_msgs/msg/DiagnosticArray"
    (status,) = ts.deserialize_cdr(ts.serialize_cdr(diag, typ), typ).status
    assert status.level == 1 and status.name == "relocalization: /relocalization" and status.message == "no frames"
    assert [(kv.key, kv.value) for kv in status.values] == [("rate (Hz)", "3.142"), ("model", "lab.pt"),
                                                            ("dropped", "4")]
    with pytest.raises(ValueError, match="level must be one of OK, WARN, ERROR, STALE"):
        conv.make_diagnostic_array(T, 5, "x", "FINE", "", {})
