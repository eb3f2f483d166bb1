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

"""A synthetic run written as a real rosbag2 (metadata version 8, readable by ROS 2 Humble).

The topics and the TF layout are those the :mod:`reloc_ros.data.synth`
docstring describes; the bag is written atomically and never overwrites.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reloc_ros.data.synth.config import (BASE_FRAME, CAMERA_LINK_FRAME, MAP_FRAME, ODOM_FRAME, OPTICAL_FRAME,
                                         SceneConfig)
from reloc_ros.data.synth.runs import NS, make_run
from reloc_ros.io_utils import atomic_new_dir

log = logging.getLogger(__name__)

# Topics of the synthetic robot, the names most ROS 2 camera drivers use.
IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
DEPTH_TOPIC = "/camera/depth/image_raw"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"

STORAGES = ("mcap", "sqlite3")


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`write_synthetic_bag` wrote."""

    path: str
    scene: str
    route: str
    seed: int
    frames: int
    size: tuple[int, int]
    storage: str
    depth: bool
    duration_s: float
    route_length_m: float
    speed_mps: float
    laps: float
    message_counts: dict[str, int]
    render_fps: float

    def __str__(self) -> str:
        counts = ", ".join(f"{t} {n}" for t, n in self.message_counts.items())
        return (f"{self.frames} frames {self.size[0]}x{self.size[1]} of scene '{self.scene}' seed {self.seed} "
                f"route {self.route} ({self.route_length_m:.1f} m route, {self.laps:.2f} laps at "
                f"{self.speed_mps:.2f} m/s, {self.duration_s:.1f} s), {self.storage}; messages: {counts}; "
                f"rendered at {self.render_fps:.0f} frames/s")


def _qos(transient_local: bool) -> object:
    """Offered QoS as a Humble recorder stores it: reliable; transient-local for /tf_static."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    # Humble's rosbag2 records history as UNKNOWN with depth 0 and infinite durations as these values.
    infinite = QosTime(sec=9223372036, nsec=854775807)
    return Qos(history=QosHistory.UNKNOWN, depth=0, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
               deadline=infinite, lifespan=infinite, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=infinite, avoid_ros_namespace_conventions=False)


def write_synthetic_bag(out_path: str | Path, route: str = "train", frames: int = 200, seed: int = 0,
                        size: tuple[int, int] = (160, 120), storage: str = "mcap", depth: bool = False,
                        scene: str | SceneConfig = "room", progress: bool = True, rate_hz: float = 10.0,
                        tf_rate_hz: float = 40.0, speed_mps: float | None = None) -> SynthSummary:
    """Render a run and write it as a rosbag2 (metadata version 8, readable by ROS 2 Humble).

    Topics: ``/camera/image_raw`` (rgb8), ``/camera/camera_info``, optionally
    ``/camera/depth/image_raw`` (32FC1 metres, aligned with colour: same
    stamp, frame and size), ``/tf`` and ``/tf_static`` (see the :mod:`reloc_ros.data.synth`
    docstring). Messages are written in stamp order with log time = stamp.
    The bag is written into a temporary directory beside ``out_path`` and
    renamed into place, so a crash never leaves a half-written bag; an existing
    ``out_path`` is never overwritten.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from reloc_ros import conversions as conv

    out = Path(out_path)
    if storage not in STORAGES:
        raise ValueError(f"storage '{storage}' unknown; valid storages: {', '.join(STORAGES)}")
    if out.exists() or out.is_symlink():
        raise ValueError(f"output bag '{out}' already exists; choose a new path (bags are never overwritten)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"cannot write bag '{out}': directory '{parent}' does not exist")
    run = make_run(route=route, frames=frames, seed=seed, size=size, scene=scene, rate_hz=rate_hz,
                   tf_rate_hz=tf_rate_hz, speed_mps=speed_mps)
    ts = get_typestore(Stores.ROS2_HUMBLE)
    types = ts.types
    tf_type, img_type, info_type = "tf2_msgs/msg/TFMessage", "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3

    # Every /tf message, in stamp order: odom->base_link and (at half rate) map->odom.
    tf_events: list[tuple[int, str, str, np.ndarray]] = []
    for stamp, T in zip(run.tf_stamps_ns, run.T_odom_base(run.tf_stamps_ns)):
        tf_events.append((int(stamp), ODOM_FRAME, BASE_FRAME, T))
    for stamp, T in zip(run.map_odom_stamps_ns, run.T_map_odom(run.map_odom_stamps_ns)):
        tf_events.append((int(stamp), MAP_FRAME, ODOM_FRAME, T))
    tf_events.sort(key=lambda e: e[0])

    counts = {TF_STATIC_TOPIC: 0, TF_TOPIC: 0, IMAGE_TOPIC: 0, CAMERA_INFO_TOPIC: 0}
    if depth:
        counts[DEPTH_TOPIC] = 0
    t_render = 0.0
    with atomic_new_dir(out) as tmp_bag:
        with Writer(tmp_bag, version=8, storage_plugin=plugin) as writer:
            c_static = writer.add_connection(TF_STATIC_TOPIC, tf_type, typestore=ts,
                                             offered_qos_profiles=[_qos(transient_local=True)])
            c_tf = writer.add_connection(TF_TOPIC, tf_type, typestore=ts, offered_qos_profiles=[_qos(False)])
            c_img = writer.add_connection(IMAGE_TOPIC, img_type, typestore=ts, offered_qos_profiles=[_qos(False)])
            c_info = writer.add_connection(CAMERA_INFO_TOPIC, info_type, typestore=ts,
                                           offered_qos_profiles=[_qos(False)])
            c_depth = None
            if depth:
                c_depth = writer.add_connection(DEPTH_TOPIC, img_type, typestore=ts,
                                                offered_qos_profiles=[_qos(False)])

            static = conv.make_tf_message(types, [
                conv.make_transform_stamped(types, run.rig.T_base_camlink, run.start_ns, BASE_FRAME,
                                            CAMERA_LINK_FRAME),
                conv.make_transform_stamped(types, run.rig.T_camlink_optical, run.start_ns, CAMERA_LINK_FRAME,
                                            OPTICAL_FRAME)])
            writer.write(c_static, run.start_ns, ts.serialize_cdr(static, tf_type))
            counts[TF_STATIC_TOPIC] += 1

            next_tf = 0

            def flush_tf(until_ns: int) -> None:
                nonlocal next_tf
                while next_tf < len(tf_events) and tf_events[next_tf][0] <= until_ns:
                    stamp, parent_frame, child_frame, T = tf_events[next_tf]
                    msg = conv.make_tf_message(types, [
                        conv.make_transform_stamped(types, T, stamp, parent_frame, child_frame)])
                    writer.write(c_tf, stamp, ts.serialize_cdr(msg, tf_type))
                    counts[TF_TOPIC] += 1
                    next_tf += 1

            frames_iter = run.iter_frames(depth=depth, progress=progress)
            while True:
                t0 = time.perf_counter()
                fr = next(frames_iter, None)
                t_render += time.perf_counter() - t0
                if fr is None:
                    break
                flush_tf(fr.stamp_ns)
                img = conv.make_image_msg(types, fr.rgb, "rgb8", fr.stamp_ns, OPTICAL_FRAME)
                writer.write(c_img, fr.stamp_ns, ts.serialize_cdr(img, img_type))
                info = conv.make_camera_info_msg(types, run.intrinsics, fr.stamp_ns, OPTICAL_FRAME)
                writer.write(c_info, fr.stamp_ns, ts.serialize_cdr(info, info_type))
                counts[IMAGE_TOPIC] += 1
                counts[CAMERA_INFO_TOPIC] += 1
                if c_depth is not None:
                    dmsg = conv.make_image_msg(types, fr.depth, "32FC1", fr.stamp_ns, OPTICAL_FRAME)
                    writer.write(c_depth, fr.stamp_ns, ts.serialize_cdr(dmsg, img_type))
                    counts[DEPTH_TOPIC] += 1
            flush_tf(np.iinfo(np.int64).max)

    summary = SynthSummary(
        path=str(out), scene=run.scene.config.name, route=route, seed=int(seed), frames=run.frames,
        size=(run.intrinsics.width, run.intrinsics.height), storage=storage, depth=bool(depth),
        duration_s=(int(run.tf_stamps_ns[-1]) - run.start_ns) / NS, route_length_m=run.curve.length_m,
        speed_mps=run.speed_mps, laps=run.laps, message_counts=dict(counts),
        render_fps=run.frames / max(t_render, 1e-9))
    log.info("wrote %s: %s", out, summary)
    return summary
