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

"""Data benchmark: bag read + decode + TF throughput, and synthetic rendering throughput.

Run with ``reloc-ros bench`` (prints JSON, ``--json`` also writes it). Figures
are medians over several repetitions measured in this one process.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from reloc_ros import __version__, conversions
from reloc_ros.data.types import Intrinsics

log = logging.getLogger(__name__)
S = 1_000_000_000


def _median_rate(fn: Callable[[], int], repeats: int) -> dict:
    """Run fn (returning the number of frames it handled) ``repeats`` times; median frames/s."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return {"frames_per_s_median": round(statistics.median(rates), 1),
            "frames_per_s_runs": [round(r, 1) for r in rates], "frames": n, "repeats": repeats}


def write_benchmark_bag(path: Path, frames: int, size: tuple[int, int], compressed: bool) -> None:
    """Write a bag of textured frames with a moving TF chain, for timing reads.

    Content does not matter for throughput, but random noise would make JPEG
    unrepresentatively large, so frames are smooth gradients with a moving pattern.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from reloc_ros.geometry import make_pose

    ts = get_typestore(Stores.ROS2_HUMBLE)
    types = ts.types
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    K = Intrinsics(fx=0.8 * w, fy=0.8 * w, cx=w / 2 - 0.5, cy=h / 2 - 0.5, width=w, height=h)
    image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as wr:
        c_img = wr.add_connection(topic, image_type, typestore=ts)
        c_info = wr.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        c_tf = wr.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=ts)
        c_static = wr.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=ts)
        static = conversions.make_tf_message(types, [
            conversions.make_transform_stamped(types, make_pose([0.2, 0, 0.8], [0, 0, 0, 1]), 0, "base_link",
                                               "camera_link"),
            conversions.make_transform_stamped(types, make_pose([0, 0, 0], [-0.5, 0.5, -0.5, 0.5]), 0,
                                               "camera_link", "camera_optical_frame")])
        wr.write(c_static, 0, ts.serialize_cdr(static, "tf2_msgs/msg/TFMessage"))
        period = S // 30
        for k in range(frames * 2 + 4):  # TF at 60 Hz around 30 Hz images
            t = k * period // 2
            yaw = 0.01 * k
            tf = conversions.make_tf_message(types, [
                conversions.make_transform_stamped(types, make_pose([0, 0, 0], [0, 0, 0, 1]), t, "map", "odom"),
                conversions.make_transform_stamped(
                    types, make_pose([0.01 * k, 0, 0], [0, 0, np.sin(yaw / 2), np.cos(yaw / 2)]), t, "odom",
                    "base_link")])
            wr.write(c_tf, t, ts.serialize_cdr(tf, "tf2_msgs/msg/TFMessage"))
        for k in range(frames):
            t = (k + 1) * period + period // 3  # between TF samples: interpolation is exercised
            img = np.stack([(xx + 3 * k) % 256, (yy + 2 * k) % 256, ((xx + yy) // 2) % 256], -1).astype(np.uint8)
            if compressed:
                msg = conversions.make_compressed_image_msg(types, img, "jpeg", t, "camera_optical_frame")
            else:
                msg = conversions.make_image_msg(types, img, "rgb8", t, "camera_optical_frame")
            wr.write(c_img, t, ts.serialize_cdr(msg, image_type))
            wr.write(c_info, t, ts.serialize_cdr(conversions.make_camera_info_msg(types, K, t, "camera_optical_frame"),
                                                 "sensor_msgs/msg/CameraInfo"))


def bench_bag_read(frames: int, repeats: int, compressed: bool, size: tuple[int, int] = (640, 480)) -> dict:
    """Throughput of read_bag_dataset (bag I/O + deserialize + decode + TF lookup) and of its parts."""
    from reloc_ros.data.bag import Bag, BagSource, read_bag_dataset, read_tf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench"
        write_benchmark_bag(path, frames, size, compressed)
        result = {"what": "read_bag_dataset: bag I/O + deserialize + decode + TF ground truth, no resize",
                  "encoding": "jpeg CompressedImage" if compressed else "rgb8 Image",
                  "size": f"{size[0]}x{size[1]}"}
        result["full_read"] = _median_rate(lambda: len(read_bag_dataset(path, BagSource())), repeats)
        with Bag(path) as bag:
            topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
            msgs = [m for _, _, m in bag.messages([topic])]
            tf = read_tf(bag)
        decode = conversions.compressed_to_rgb8 if compressed else conversions.image_to_rgb8
        stamps = np.array([conversions.stamp_to_ns(m.header.stamp) for m in msgs])

        def decode_and_tf() -> int:
            for m in msgs:
                decode(m)
            tf.lookup_many("map", "camera_optical_frame", stamps)
            return len(msgs)

        result["decode_plus_tf"] = _median_rate(decode_and_tf, repeats)
        zero_copy = None
        if not compressed:
            zero_copy = bool(np.shares_memory(conversions.image_to_numpy(msgs[0]), msgs[0].data))
        result["zero_copy_decode"] = zero_copy
    return result


def bench_render(quick: bool = False) -> dict:
    """Synthetic rendering throughput (colour + depth) at 160x120 and 640x480, 'room' scene."""
    from reloc_ros.data.synth import Renderer, make_run

    result = {"what": "Renderer.render (rgb + z-depth) over a route, 'room' scene, seed 0"}
    for size, frames in (((160, 120), 30 if quick else 100), ((640, 480), 4 if quick else 12)):
        run = make_run(route="train", frames=frames, seed=0, size=size)
        renderer = Renderer(run.scene, run.intrinsics)
        poses = run.T_map_cam()

        def render_all() -> int:
            for T in poses:
                renderer.render(T, depth=True)
            return len(poses)

        render_all()  # warm-up: first-touch allocations are not what users wait for
        result[f"{size[0]}x{size[1]}"] = _median_rate(render_all, 3)
    return result


def machine_info() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "reloc_ros": __version__, "date": time.strftime("%Y-%m-%d")}


def run_data_benchmark(frames: int = 300, quick: bool = False) -> dict:
    """All data figures of the foundation: bag read/decode and synthetic rendering."""
    repeats = 3 if quick else 5
    if quick:
        frames = min(frames, 60)
    results = {"machine": machine_info()}
    log.info("timing rgb8 bag reads (%d frames x %d)", frames, repeats)
    results["bag_rgb8_640x480"] = bench_bag_read(frames, repeats, compressed=False)
    log.info("timing jpeg bag reads (%d frames x %d)", frames, repeats)
    results["bag_jpeg_640x480"] = bench_bag_read(frames, repeats, compressed=True)
    results["synthetic_render"] = bench_render(quick)
    return results
