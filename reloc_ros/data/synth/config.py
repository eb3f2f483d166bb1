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

"""Settings of the synthetic robot and scene: frame names, scene presets, the camera rig, intrinsics.

Everything here is plain configuration, checked when it is built; the
modules that build, drive and render the scene read it (see
:mod:`reloc_ros.data.synth` for the frame conventions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reloc_ros.data.types import Intrinsics
from reloc_ros.geometry import make_pose

# Frames of the synthetic robot, the names most ROS 2 camera drivers use.
MAP_FRAME = "map"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
CAMERA_LINK_FRAME = "camera_link"
OPTICAL_FRAME = "camera_optical_frame"

ROUTES = ("train", "test")
SHAPES = ("figure8", "squircle")

#: camera_link -> camera_optical_frame (x right = -y_link, y down = -z_link, z forward = x_link).
OPTICAL_Q_XYZW = (-0.5, 0.5, -0.5, 0.5)


@dataclass(frozen=True)
class SceneConfig:
    """Size and content of a synthetic scene.

    ``size_m`` is the inner size (x, y, z) of the room; the map origin is at the
    centre of its floor. ``furniture`` boxes are placed from the seed where
    neither route comes closer than ``clearance_m``. Routes keep
    ``wall_margin_m`` from the walls. ``divider_door_m`` (optional) adds a
    full-height wall across x = 0 with a doorway of that width at y = 0, making
    two rooms. ``train_shape`` / ``test_shape`` name the closed curves the two
    routes follow (one of ``SHAPES``). By default both are figure-eights, the
    test one smaller, shifted and started elsewhere: the query run passes the
    mapped places in similar directions, as in 7-Scenes or Cambridge, which is
    what a relocalizer can learn; ``test_shape='squircle'`` (a rounded
    rectangle near the walls) makes a harder, partly unseen query run.
    ``detail`` (0 to 1) adds a fine, view-independent grain to every surface
    (value noise at 5 and 1.5 cm, like plaster, wood or fabric): the bare
    scenes have smooth patterns that give local features (SIFT, ORB) little
    to hold on to, a textured indoor scene has more.
    """

    name: str = "room"
    size_m: tuple[float, float, float] = (8.0, 6.0, 2.8)
    furniture: int = 6
    wall_margin_m: float = 0.9
    clearance_m: float = 0.45
    divider_door_m: float | None = None
    train_shape: str = "figure8"
    test_shape: str = "figure8"
    detail: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.detail, (int, float)) and 0.0 <= self.detail <= 1.0):
            raise ValueError(f"detail must be in [0, 1] (amplitude of the fine surface texture), got {self.detail!r}")
        sx, sy, sz = (float(v) for v in self.size_m)
        if not all(np.isfinite(v) and v > 0 for v in (sx, sy, sz)):
            raise ValueError(f"scene size must be three finite positive lengths in metres, got {self.size_m}")
        if sz < 1.5:
            raise ValueError(f"scene height must be >= 1.5 m (the camera is mounted at ~0.8 m), got {sz}")
        if min(sx, sy) < 2 * self.wall_margin_m + 1.0:
            raise ValueError(f"scene footprint {sx} x {sy} m leaves no room for a route with wall margin "
                             f"{self.wall_margin_m} m; make it at least {2 * self.wall_margin_m + 1.0} m wide")
        if self.furniture < 0:
            raise ValueError(f"furniture count must be >= 0, got {self.furniture}")
        if self.clearance_m <= 0.15 or self.wall_margin_m <= 0.15:
            raise ValueError("clearance_m and wall_margin_m must exceed 0.15 m (the camera sits 0.1 m ahead "
                             f"of base_link), got {self.clearance_m}, {self.wall_margin_m}")
        for shape in (self.train_shape, self.test_shape):
            if shape not in SHAPES:
                raise ValueError(f"route shape '{shape}' unknown; valid shapes: {', '.join(SHAPES)}")
        if self.divider_door_m is not None and not 0.5 < self.divider_door_m < sy:
            raise ValueError(f"divider_door_m must be in (0.5, {sy}) m, got {self.divider_door_m}")


#: Named scenes: a single room, and two rooms joined by a doorway (larger, for benchmarks).
SCENE_PRESETS: dict[str, SceneConfig] = {
    "room": SceneConfig(),
    "two_rooms": SceneConfig(name="two_rooms", size_m=(14.0, 8.0, 2.8), furniture=12, divider_door_m=1.8),
    "textured_room": SceneConfig(name="textured_room", detail=0.35),
}


def scene_config(scene: str | SceneConfig) -> SceneConfig:
    """Return a preset by name, or the given config unchanged."""
    if isinstance(scene, SceneConfig):
        return scene
    if scene not in SCENE_PRESETS:
        raise ValueError(f"scene '{scene}' unknown; presets: {', '.join(SCENE_PRESETS)}")
    return SCENE_PRESETS[scene]


@dataclass(frozen=True)
class CameraRig:
    """Where the camera sits on the robot: ``base_link -> camera_link``.

    ``forward_m`` / ``height_m`` place camera_link in base_link; ``pitch_deg``
    tilts it down (positive = looking down) so the camera sees floor and walls.
    """

    forward_m: float = 0.1
    height_m: float = 0.8
    pitch_deg: float = 8.0

    @property
    def T_base_camlink(self) -> np.ndarray:
        # Positive rotation about y turns the x axis (forward) towards -z: looking down.
        half = math.radians(self.pitch_deg) / 2
        return make_pose([self.forward_m, 0.0, self.height_m], [0.0, math.sin(half), 0.0, math.cos(half)])

    @property
    def T_camlink_optical(self) -> np.ndarray:
        return make_pose([0.0, 0.0, 0.0], OPTICAL_Q_XYZW)

    @property
    def T_base_optical(self) -> np.ndarray:
        return self.T_base_camlink @ self.T_camlink_optical


def default_intrinsics(width: int = 160, height: int = 120, hfov_deg: float = 70.0) -> Intrinsics:
    """Square-pixel pinhole intrinsics with the given horizontal field of view, centred principal point."""
    if not 1.0 < hfov_deg < 179.0:
        raise ValueError(f"horizontal field of view must be in (1, 179) degrees, got {hfov_deg}")
    w, h = int(width), int(height)
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    f = (w / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return Intrinsics(fx=f, fy=f, cx=(w - 1) / 2.0, cy=(h - 1) / 2.0, width=w, height=h)
