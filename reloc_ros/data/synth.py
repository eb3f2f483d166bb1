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

"""A synthetic indoor scene with exact ground truth, rendered and written as a real rosbag2.

Tests, the demo and the benchmarks need posed images whose poses are known
exactly and whose content is learnable, without downloading a dataset. This
module builds a room of axis-aligned boxes with procedural textures, drives a
robot through it and ray-casts exact RGB + depth, then writes what a real
robot would have recorded.

Conventions
-----------
* The map frame has its origin at the centre of the room on the floor,
  x and y along the walls, z up (REP-103). Units are metres and radians.
* Poses are 4x4 ``T_a_b`` mapping points from frame ``b`` into ``a``
  (:mod:`reloc_ros.geometry`).
* ``base_link`` lies on the floor, x forward, y left, z up; ``camera_link`` is
  the camera body (same convention, mounted above the base and pitched down a
  little); ``camera_optical_frame`` is z forward, x right, y down, rotated from
  ``camera_link`` by the standard quaternion ``(-0.5, 0.5, -0.5, 0.5)``.
* Depth is z-depth along the optical axis in metres (what a depth camera
  gives), not the length of the ray.
* Pixel ``(u, v)`` has its centre at integer coordinates, so the principal
  point of a W x H image is ``((W - 1) / 2, (H - 1) / 2)`` (OpenCV).

TF in the bag (REP-105)
-----------------------
``/tf_static`` holds base_link -> camera_link -> camera_optical_frame once, on a
transient-local connection as recorded bags have. ``/tf`` holds odom ->
base_link at ``tf_rate_hz`` and map -> odom at half that rate, at stamps that
never coincide with image stamps, so readers must interpolate. map -> odom
starts at the robot's start pose (odometry starts counting where the robot
starts) and then drifts slowly (a few cm and about a degree per lap); odom ->
base_link is chosen so the chain map -> odom -> base_link is the true pose.
The true pose at an image stamp is *defined* as tf2's interpolation of those
samples (see :class:`SyntheticRun`), so a reader that interpolates ``/tf``
recovers the rendered camera pose to rounding error.

Speed: by default 0.4 m/s, raised when needed so the frames cover a whole lap
of the route (see :func:`make_run`).

Determinism: the scene depends on ``(scene, seed)`` only, so a train and a test
run with the same seed see the same room; the route depends on ``(scene, seed,
route)``. The same arguments give bit-identical images and bag content on one
machine.
"""

from __future__ import annotations

import colorsys
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from reloc_ros.data.types import Intrinsics, PoseDataset
from reloc_ros.errors import RelocError
from reloc_ros.geometry import invert_pose, make_pose
from reloc_ros.io_utils import atomic_new_dir

log = logging.getLogger(__name__)

# Topics and frames of the synthetic robot, the names most ROS 2 camera drivers use.
IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
DEPTH_TOPIC = "/camera/depth/image_raw"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
MAP_FRAME = "map"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
CAMERA_LINK_FRAME = "camera_link"
OPTICAL_FRAME = "camera_optical_frame"

ROUTES = ("train", "test")
DEFAULT_SPEED_MPS = 0.4
STORAGES = ("mcap", "sqlite3")
SHAPES = ("figure8", "squircle")

#: camera_link -> camera_optical_frame (x right = -y_link, y down = -z_link, z forward = x_link).
OPTICAL_Q_XYZW = (-0.5, 0.5, -0.5, 0.5)

#: Stamp of the first sample of each route: the test run is recorded a day after the mapping run.
_START_NS = {"train": 1_700_000_000 * 10**9, "test": 1_700_086_400 * 10**9}
_NS = 1_000_000_000

# Fixed light direction (map frame, pointing towards the light): per-face constant shading.
_LIGHT_DIR = np.array([0.5, 0.3, 0.8]) / np.linalg.norm([0.5, 0.3, 0.8])


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Materials: procedural textures as functions of surface coordinates (metres)
# ---------------------------------------------------------------------------

def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float64)


def _lattice(i: np.ndarray, j: np.ndarray, salt: float) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) at integer lattice points (a hash, no state)."""
    x = np.sin(i * 12.9898 + j * 78.233 + salt * 37.719) * 43758.5453
    return x - np.floor(x)


def _value_noise(u: np.ndarray, v: np.ndarray, salt: float) -> np.ndarray:
    """Two octaves of smooth value noise in [0, 1] at surface coordinates (metres): cells of 5 and 1.5 cm."""
    out = np.zeros_like(u)
    for cell, weight, k in ((0.05, 0.65, 0.0), (0.015, 0.35, 1.0)):
        x, y = u / cell, v / cell
        i, j = np.floor(x), np.floor(y)
        fx, fy = x - i, y - j
        fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)  # smoothstep: no grid lines
        s = salt + 101.0 * k
        top = _lattice(i, j, s) * (1 - fx) + _lattice(i + 1, j, s) * fx
        bottom = _lattice(i, j + 1, s) * (1 - fx) + _lattice(i + 1, j + 1, s) * fx
        out += weight * (top * (1 - fy) + bottom * fy)
    return out


def _soft(x: np.ndarray, sharpness: float = 2.5) -> np.ndarray:
    """Soft step in [0, 1]: crisp enough to give edges, smooth enough not to alias at 128 px."""
    return 0.5 + 0.5 * np.tanh(sharpness * x)


@dataclass
class Material:
    """A procedural texture on a plane, evaluated at surface coordinates (u, v) in metres.

    ``u`` runs along the surface horizontally (or along x on floor and ceiling),
    ``v`` up (or along y). Colour = pattern blend of ``c0``/``c1``, plus a linear
    colour ramp along u over ``[u_lo, u_hi]`` (so places along one wall differ),
    with rectangular posters ``(u0, u1, v0, v1)`` painted on top. Every term
    depends on the hit point only, so the texture is the same from any view.
    """

    pattern: str
    c0: np.ndarray
    c1: np.ndarray
    period: float = 0.6
    angle: float = 0.0
    phase: float = 0.0
    ramp: np.ndarray = field(default_factory=lambda: np.zeros(3))
    u_lo: float = -1.0
    u_hi: float = 1.0
    blobs: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (cu, cv, sigma)
    posters: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (u0, u1, v0, v1)
    poster_colours: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))  # border, a, b
    detail: float = 0.0  # amplitude of the fine grain (SceneConfig.detail)
    salt: float = 0.0  # makes each material's grain its own

    def colour(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """RGB in [0, 1] (n, 3) at surface coordinates ``u``, ``v`` (n,)."""
        p = self.period
        if self.pattern == "stripes":  # vertical bands
            w = _soft(np.sin(2 * np.pi * u / p + self.phase))
        elif self.pattern == "hstripes":  # horizontal bands (shelf boards)
            w = _soft(np.sin(2 * np.pi * v / p + self.phase))
        elif self.pattern == "checker":
            w = _soft(np.sin(np.pi * u / p + self.phase) * np.sin(np.pi * v / p), 4.0)
        elif self.pattern == "grating":  # oriented sinusoid
            w = 0.5 + 0.5 * np.sin(2 * np.pi * (u * np.cos(self.angle) + v * np.sin(self.angle)) / p + self.phase)
        elif self.pattern == "waves":  # horizontal wavy bands
            w = _soft(np.sin(2 * np.pi * v / p + 1.6 * np.sin(2 * np.pi * u / (3.0 * p) + self.phase)))
        elif self.pattern == "blobs":
            acc = np.zeros_like(u)
            for cu, cv, sig in self.blobs:
                acc += np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2.0 * sig * sig))
            w = np.clip(acc, 0.0, 1.0)
        elif self.pattern == "rings":
            w = _soft(np.sin(2 * np.pi * np.hypot(u - self.blobs[0, 0], v - self.blobs[0, 1]) / p + self.phase))
        else:  # pragma: no cover - patterns are fixed in this module
            raise ValueError(f"unknown pattern '{self.pattern}'")
        col = self.c0[None, :] + (self.c1 - self.c0)[None, :] * w[:, None]
        span = max(self.u_hi - self.u_lo, 1e-6)
        col = col + self.ramp[None, :] * ((u - self.u_lo) / span - 0.5)[:, None]
        if self.detail:
            col = col * (1.0 + self.detail * (2.0 * _value_noise(u, v, self.salt) - 1.0))[:, None]
        for (u0, u1, v0, v1), (c_border, c_a, c_b) in zip(self.posters, self.poster_colours):
            inside = (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
            if not inside.any():
                continue
            uu, vv = u[inside], v[inside]
            # A border frame and an inner area split along the diagonal: asymmetric, so
            # a poster also tells which way up and from which side it is seen.
            bw = 0.12 * min(u1 - u0, v1 - v0)
            border = (uu < u0 + bw) | (uu > u1 - bw) | (vv < v0 + bw) | (vv > v1 - bw)
            diag = (uu - u0) / (u1 - u0) > (vv - v0) / (v1 - v0)
            col[inside] = np.where(border[:, None], c_border, np.where(diag[:, None], c_a, c_b))
        return col


def _wall_material(rng: np.random.Generator, pattern: str, hue: float, u_lo: float, u_hi: float,
                   height: float) -> Material:
    """Make a wall material: distinct hue and pattern, a colour ramp along it, and posters as landmarks."""
    c0 = _hsv(hue, rng.uniform(0.35, 0.55), rng.uniform(0.55, 0.7))
    c1 = _hsv(hue + rng.uniform(0.05, 0.12), rng.uniform(0.5, 0.8), rng.uniform(0.8, 0.95))
    ramp = _hsv(hue + 0.5, 0.8, 1.0) - 0.5
    length = u_hi - u_lo
    mat = Material(pattern=pattern, c0=c0, c1=c1, period=float(rng.uniform(0.55, 0.8)),
                   angle=float(rng.uniform(0.3, 1.2)), phase=float(rng.uniform(0, 2 * np.pi)),
                   ramp=0.35 * ramp, u_lo=u_lo, u_hi=u_hi)
    if pattern == "blobs":
        n = max(6, int(length * 2.5))
        mat.blobs = np.stack([rng.uniform(u_lo, u_hi, n), rng.uniform(0.0, height, n),
                              rng.uniform(0.25, 0.5, n)], axis=1)
    n_posters = max(2, int(length / 2.5))
    rects: list[list[float]] = []
    for _ in range(50 * n_posters):
        if len(rects) == n_posters:
            break
        w, h = rng.uniform(0.6, 1.2), rng.uniform(0.5, 0.9)
        u0 = rng.uniform(u_lo + 0.3, u_hi - 0.3 - w)
        v0 = rng.uniform(0.9, min(1.5, height - h - 0.2))
        if all(u0 > r[1] + 0.4 or u0 + w < r[0] - 0.4 for r in rects):
            rects.append([u0, u0 + w, v0, v0 + h])
    rects.sort()
    mat.posters = np.array(rects, dtype=np.float64).reshape(-1, 4)
    mat.poster_colours = np.array([[_hsv(rng.uniform(), 0.2, 0.15), _hsv(rng.uniform(), 0.85, 0.95),
                                    _hsv(rng.uniform(), 0.7, 0.6)] for _ in rects]).reshape(-1, 3, 3)
    return mat


def _box_material(rng: np.random.Generator, kind: str) -> Material:
    hue = float(rng.uniform())
    c0 = _hsv(hue, rng.uniform(0.5, 0.8), rng.uniform(0.35, 0.5))
    c1 = _hsv(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.3, 0.6), rng.uniform(0.75, 0.95))
    pattern = {"table": "grating", "shelf": "hstripes", "pillar": "checker", "cabinet": "rings",
               "divider": "stripes"}[kind]
    mat = Material(pattern=pattern, c0=c0, c1=c1, period=float(rng.uniform(0.25, 0.4)),
                   angle=float(rng.uniform(0, np.pi)), phase=float(rng.uniform(0, 2 * np.pi)))
    if pattern == "rings":
        mat.blobs = np.array([[rng.uniform(-5, 5), rng.uniform(0, 1.0), 0.0]])
    return mat


# ---------------------------------------------------------------------------
# Routes: closed curves in the free space, parameterised by arc length
# ---------------------------------------------------------------------------

@dataclass
class RouteCurve:
    """A closed planar curve the robot follows, and how base_link's heading varies along it.

    ``shape`` is evaluated with half extents ``ax``, ``ay`` around ``(cx, cy)``;
    ``direction`` -1 traverses it backwards. Heading = tangent + a sinusoidal
    wobble of ``wobble_rad`` with wavelength ``wobble_len_m`` of arc length, so
    the camera also looks a little sideways. Drift of odometry grows with
    distance travelled: ``drift_xy_m`` and ``drift_yaw_rad`` per lap.
    """

    shape: str
    cx: float
    cy: float
    ax: float
    ay: float
    direction: int
    start_frac: float
    wobble_rad: float
    wobble_len_m: float
    wobble_phase: float
    drift_xy_m: tuple[float, float]
    drift_yaw_rad: float
    _s_table: np.ndarray = field(init=False, repr=False)
    _th_table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Arc length of the analytic curve by dense trapezoid integration; theta(s) is
        # then interpolated from the table while positions and tangents stay analytic.
        th = np.linspace(0.0, 2 * np.pi, 8193)
        dx, dy = self._dxy(th)
        speed = np.hypot(dx, dy)
        s = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(th))])
        self._s_table, self._th_table = s, th

    @property
    def length_m(self) -> float:
        return float(self._s_table[-1])

    def _xy(self, th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.shape == "figure8":
            return self.cx + self.ax * np.sin(th), self.cy + self.ay * np.sin(2 * th)
        k = 1.6  # squircle: a rounded rectangle with a smooth, regular parameterisation
        return (self.cx + self.ax * np.tanh(k * np.cos(th)) / np.tanh(k),
                self.cy + self.ay * np.tanh(k * np.sin(th)) / np.tanh(k))

    def _dxy(self, th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.shape == "figure8":
            return self.ax * np.cos(th), 2 * self.ay * np.cos(2 * th)
        k = 1.6
        sech2_c = 1.0 - np.tanh(k * np.cos(th)) ** 2
        sech2_s = 1.0 - np.tanh(k * np.sin(th)) ** 2
        return (-self.ax * k * sech2_c * np.sin(th) / np.tanh(k), self.ay * k * sech2_s * np.cos(th) / np.tanh(k))

    def _theta(self, s_travel: np.ndarray) -> np.ndarray:
        s = np.mod(self.start_frac * self.length_m + self.direction * s_travel, self.length_m)
        return np.interp(s, self._s_table, self._th_table)

    def xy_yaw(self, s_travel_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position (x, y) and heading of base_link after travelling ``s_travel_m`` metres."""
        s_travel = np.asarray(s_travel_m, dtype=np.float64)
        th = self._theta(s_travel)
        x, y = self._xy(th)
        dx, dy = self._dxy(th)
        yaw = np.arctan2(self.direction * dy, self.direction * dx)
        yaw = yaw + self.wobble_rad * np.sin(2 * np.pi * s_travel / self.wobble_len_m + self.wobble_phase)
        return x, y, yaw

    def sample_xy(self, n: int = 2000) -> np.ndarray:
        """(n, 2) points evenly spaced in arc length around the whole curve."""
        x, y, _ = self.xy_yaw(np.linspace(0.0, self.length_m, n, endpoint=False))
        return np.stack([x, y], axis=1)

    def drift(self, s_travel_m: np.ndarray) -> np.ndarray:
        """Odometry drift D (n, 4, 4) after ``s_travel_m``: map->odom = T_map_base(start) @ D."""
        frac = np.asarray(s_travel_m, dtype=np.float64) / self.length_m
        # Mostly linear in distance, with a slow wiggle as wheel slip comes and goes.
        wig = 0.15 * np.sin(2 * np.pi * frac * 1.3)
        yaw = self.drift_yaw_rad * (frac + wig)
        return _planar_poses(self.drift_xy_m[0] * (frac + wig), self.drift_xy_m[1] * (frac - wig), yaw)


def _planar_poses(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, z: float = 0.0) -> np.ndarray:
    """(n, 4, 4) poses at (x, y, z) rotated by yaw about z."""
    x, y, yaw = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                    np.asarray(yaw, np.float64))
    T = np.zeros(x.shape + (4, 4))
    c, s = np.cos(yaw), np.sin(yaw)
    T[..., 0, 0], T[..., 0, 1], T[..., 1, 0], T[..., 1, 1] = c, -s, s, c
    T[..., 2, 2] = 1.0
    T[..., 3, 3] = 1.0
    T[..., 0, 3], T[..., 1, 3], T[..., 2, 3] = x, y, z
    return T


def _xyyaw(T_n44: np.ndarray) -> np.ndarray:
    """(n, 3) x, y, yaw of planar poses (rotation about z only)."""
    return np.stack([T_n44[:, 0, 3], T_n44[:, 1, 3], np.arctan2(T_n44[:, 1, 0], T_n44[:, 0, 0])], axis=1)


def _interp_planar(stamps_ns: np.ndarray, xyyaw_n3: np.ndarray, query_ns: np.ndarray, what: str) -> np.ndarray:
    """Planar poses at ``query_ns`` between samples, as tf2 interpolates: lerp, and yaw along the shorter arc."""
    q = np.asarray(query_ns, dtype=np.int64).reshape(-1)
    if q.size and (q.min() < stamps_ns[0] or q.max() > stamps_ns[-1]):
        raise ValueError(f"{what}: stamps outside the sampled range [{stamps_ns[0]}, {stamps_ns[-1]}] ns "
                         "are not extrapolated")
    i = np.clip(np.searchsorted(stamps_ns, q, side="right") - 1, 0, len(stamps_ns) - 2)
    alpha = (q - stamps_ns[i]).astype(np.float64) / (stamps_ns[i + 1] - stamps_ns[i]).astype(np.float64)
    a, b = xyyaw_n3[i], xyyaw_n3[i + 1]
    dyaw = np.mod(b[:, 2] - a[:, 2] + np.pi, 2 * np.pi) - np.pi
    return _planar_poses(a[:, 0] + alpha * (b[:, 0] - a[:, 0]), a[:, 1] + alpha * (b[:, 1] - a[:, 1]),
                         a[:, 2] + alpha * dyaw)


def _dist_to_rects(pts_n2: np.ndarray, lo_k2: np.ndarray, hi_k2: np.ndarray) -> np.ndarray:
    """(n, k) distances in the plane from points to axis-aligned rectangles (0 inside)."""
    if len(lo_k2) == 0:
        return np.full((len(pts_n2), 0), np.inf)
    p = pts_n2[:, None, :]
    gap = np.maximum(np.maximum(lo_k2[None] - p, p - hi_k2[None]), 0.0)
    return np.hypot(gap[..., 0], gap[..., 1])


# ---------------------------------------------------------------------------
# Scene
# ---------------------------------------------------------------------------

@dataclass
class Scene:
    """Room, boxes, materials and the two routes of one ``(config, seed)``.

    Surfaces are numbered: 0..5 are the room's faces ``axis * 2 + (0 low, 1 high)``
    (0/1 the walls at x = -X/2, +X/2, 2/3 at y = -Y/2, +Y/2, 4 floor, 5 ceiling);
    box k has faces ``6 + 6 k + axis * 2 + side`` the same way.
    """

    config: SceneConfig
    seed: int
    room_lo: np.ndarray
    room_hi: np.ndarray
    boxes_lo: np.ndarray  # (k, 3)
    boxes_hi: np.ndarray  # (k, 3)
    box_kinds: list[str]
    surface_materials: list[Material]
    surface_shade: np.ndarray  # (6 + 6k,) Lambertian factor per face
    routes: dict[str, RouteCurve]

    @property
    def n_surfaces(self) -> int:
        return len(self.surface_materials)

    def inside_box(self, pts_n3: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(n,) True where a point is inside (or within ``margin`` of) any box."""
        p = np.asarray(pts_n3, dtype=np.float64).reshape(-1, 3)[:, None, :]
        if len(self.boxes_lo) == 0:
            return np.zeros(len(p), dtype=bool)
        inside = np.all((p >= self.boxes_lo[None] - margin) & (p <= self.boxes_hi[None] + margin), axis=2)
        return inside.any(axis=1)

    def inside_room(self, pts_n3: np.ndarray, margin: float = 0.0) -> np.ndarray:
        p = np.asarray(pts_n3, dtype=np.float64).reshape(-1, 3)
        return np.all((p > self.room_lo + margin) & (p < self.room_hi - margin), axis=1)


def _make_route_curve(cfg: SceneConfig, route: str, rng: np.random.Generator) -> RouteCurve:
    half_x = cfg.size_m[0] / 2 - cfg.wall_margin_m
    half_y = cfg.size_m[1] / 2 - cfg.wall_margin_m
    # The test run keeps a little inside the mapping run's envelope (0.25-0.6 m in from the
    # free space's edge against 0-0.3 m), like a query run through a mapped space.
    inset = (0.0, 0.3) if route == "train" else (0.25, 0.6)
    ax, ay = half_x - rng.uniform(*inset), half_y - rng.uniform(*inset)
    cx = rng.uniform(-1, 1) * 0.5 * (half_x - ax)
    cy = rng.uniform(-1, 1) * 0.5 * (half_y - ay)
    drift_dir = rng.uniform(0, 2 * np.pi)
    drift_mag = rng.uniform(0.03, 0.06)
    return RouteCurve(
        shape=cfg.train_shape if route == "train" else cfg.test_shape, cx=float(cx), cy=float(cy),
        ax=float(ax), ay=float(ay), direction=1,
        start_frac=float(rng.uniform()), wobble_rad=float(rng.uniform(0.2, 0.35)),
        wobble_len_m=float(rng.uniform(3.0, 5.0)), wobble_phase=float(rng.uniform(0, 2 * np.pi)),
        drift_xy_m=(float(drift_mag * np.cos(drift_dir)), float(drift_mag * np.sin(drift_dir))),
        drift_yaw_rad=float(np.radians(rng.uniform(0.7, 1.5)) * rng.choice([-1.0, 1.0])))


def build_scene(scene: str | SceneConfig = "room", seed: int = 0) -> Scene:
    """Build the room, routes and furniture of ``(scene, seed)`` deterministically.

    Routes are drawn first (re-drawn while they pass too close to fixed walls
    such as the divider), then furniture is placed by rejection wherever both
    routes keep ``clearance_m`` from it, so no route ever enters a box.
    """
    cfg = scene_config(scene)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED])
    sx, sy, sz = (float(v) for v in cfg.size_m)
    room_lo, room_hi = np.array([-sx / 2, -sy / 2, 0.0]), np.array([sx / 2, sy / 2, sz])

    lo_list: list[list[float]] = []
    hi_list: list[list[float]] = []
    kinds: list[str] = []
    if cfg.divider_door_m is not None:
        half_door, t = cfg.divider_door_m / 2, 0.1
        lo_list += [[-t, -sy / 2, 0.0], [-t, half_door, 0.0]]
        hi_list += [[t, -half_door, sz], [t, sy / 2, sz]]
        kinds += ["divider", "divider"]

    routes: dict[str, RouteCurve] = {}
    for route in ROUTES:
        route_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED, 1 + ROUTES.index(route)])
        for _ in range(200):
            curve = _make_route_curve(cfg, route, route_rng)
            d = _dist_to_rects(curve.sample_xy(), np.array(lo_list).reshape(-1, 3)[:, :2],
                               np.array(hi_list).reshape(-1, 3)[:, :2])
            if d.size == 0 or d.min() >= cfg.clearance_m:
                break
        else:
            raise RelocError(f"scene '{cfg.name}': no {route} route keeps {cfg.clearance_m} m from the walls; "
                             "widen the doorway or lower clearance_m")
        routes[route] = curve
    route_pts = np.concatenate([c.sample_xy() for c in routes.values()])

    # Furniture: deterministic rejection sampling in the space the routes leave free.
    kind_cycle = ("table", "shelf", "pillar", "cabinet")
    placed = 0
    for attempt in range(400 * max(cfg.furniture, 1)):
        if placed >= cfg.furniture:
            break
        kind = kind_cycle[(placed + attempt // 400) % len(kind_cycle)]
        if kind == "table":
            size = [rng.uniform(0.8, 1.4), rng.uniform(0.6, 0.9), rng.uniform(0.72, 0.8)]
        elif kind == "shelf":
            size = [rng.uniform(1.0, 2.0), rng.uniform(0.35, 0.45), rng.uniform(1.6, 2.0)]
        elif kind == "pillar":
            w = rng.uniform(0.3, 0.5)
            size = [w, w, sz]
        else:
            size = [rng.uniform(0.5, 0.8), rng.uniform(0.5, 0.8), rng.uniform(1.0, 1.3)]
        if rng.uniform() < 0.5:
            size[0], size[1] = size[1], size[0]
        size_a = np.array(size)
        if kind == "shelf":  # against a wall, long side along it
            wall = int(rng.integers(4))
            along = 0 if wall >= 2 else 1
            if size_a[along] < size_a[1 - along]:
                size_a[[0, 1]] = size_a[[1, 0]]
            lo = np.zeros(3)
            lo[along] = rng.uniform(room_lo[along], room_hi[along] - size_a[along])
            across = 1 - along
            lo[across] = room_lo[across] if wall % 2 == 0 else room_hi[across] - size_a[across]
        else:
            lo = np.array([rng.uniform(room_lo[0], room_hi[0] - size_a[0]),
                           rng.uniform(room_lo[1], room_hi[1] - size_a[1]), 0.0])
        hi = lo + size_a
        if _dist_to_rects(route_pts, lo[None, :2], hi[None, :2]).min() < cfg.clearance_m:
            continue
        if lo_list:
            gaps = _dist_to_rects(((lo[:2] + hi[:2]) / 2)[None], np.array(lo_list)[:, :2],
                                  np.array(hi_list)[:, :2])
            # Keep boxes apart: centre-to-box distance beyond half the diagonal plus a gap.
            if gaps.min() < 0.5 * np.hypot(*size_a[:2]) + 0.3:
                continue
        lo_list.append(lo.tolist())
        hi_list.append(hi.tolist())
        kinds.append(kind)
        placed += 1
    if placed < cfg.furniture:
        log.warning("scene '%s' seed %d: placed %d of %d furniture boxes (no free space left)",
                    cfg.name, seed, placed, cfg.furniture)

    boxes_lo = np.array(lo_list, dtype=np.float64).reshape(-1, 3)
    boxes_hi = np.array(hi_list, dtype=np.float64).reshape(-1, 3)

    # Materials: four walls with distinct patterns and hues a quarter turn apart.
    mat_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED, 99])
    hue0 = float(mat_rng.uniform())
    patterns = list(mat_rng.permutation(["stripes", "waves", "grating", "blobs"]))
    walls = []
    for i in range(4):
        along = 1 if i < 2 else 0  # walls at x = const run along y, and vice versa
        walls.append(_wall_material(mat_rng, str(patterns[i]), hue0 + 0.25 * i + mat_rng.uniform(-0.04, 0.04),
                                    float(room_lo[along]), float(room_hi[along]), sz))
    floor = Material(pattern="checker", c0=_hsv(0.08, 0.25, 0.42), c1=_hsv(0.1, 0.3, 0.55), period=1.0,
                     phase=float(mat_rng.uniform(0, 2 * np.pi)), ramp=np.array([0.12, -0.05, -0.1]),
                     u_lo=float(room_lo[0]), u_hi=float(room_hi[0]))
    ceiling = Material(pattern="checker", c0=_hsv(0.6, 0.05, 0.8), c1=_hsv(0.15, 0.1, 1.0), period=1.2,
                       ramp=np.array([-0.08, 0.0, 0.1]), u_lo=float(room_lo[0]), u_hi=float(room_hi[0]))
    surface_materials = walls + [floor, ceiling]
    for kind in kinds:
        mat = _box_material(mat_rng, kind)
        surface_materials += [mat] * 6
    if cfg.detail:
        for k, mat in enumerate({id(m): m for m in surface_materials}.values()):
            mat.detail, mat.salt = float(cfg.detail), float(k + 1)

    normals = []
    for axis in range(3):  # room faces look inwards
        for side in (0, 1):
            n = np.zeros(3)
            n[axis] = 1.0 if side == 0 else -1.0
            normals.append(n)
    for _ in kinds:  # box faces look outwards
        for axis in range(3):
            for side in (0, 1):
                n = np.zeros(3)
                n[axis] = -1.0 if side == 0 else 1.0
                normals.append(n)
    shade = 0.5 + 0.5 * np.maximum(np.array(normals) @ _LIGHT_DIR, 0.0)

    return Scene(config=cfg, seed=int(seed), room_lo=room_lo, room_hi=room_hi, boxes_lo=boxes_lo,
                 boxes_hi=boxes_hi, box_kinds=kinds, surface_materials=surface_materials,
                 surface_shade=shade, routes=routes)


# ---------------------------------------------------------------------------
# Renderer
# ---------------------------------------------------------------------------

# Surface coordinate axes (u, v) per face normal axis: walls (u along, v up), floor/ceiling (x, y).
_UV_AXES = {0: (1, 2), 1: (0, 2), 2: (0, 1)}


class Renderer:
    """Vectorised ray caster of a :class:`Scene` for one pinhole camera.

    Rays are built in the optical frame with unit z component, ``((u - cx) / fx,
    (v - cy) / fy, 1)``, so the ray parameter t at a hit *is* the z-depth.
    Intersections use the slab method: the room is the inside of a box (the ray
    leaves it at the smallest exit distance over the three axes), a furniture
    box is hit at its largest entry distance when that is below its smallest
    exit distance. Boxes entirely in front of the camera are only tested
    against the pixel rectangle their corners project to (a conservative
    bound, since a box is convex), which is most of the speed.
    """

    def __init__(self, scene: Scene, intrinsics: Intrinsics) -> None:
        self.scene = scene
        self.intrinsics = intrinsics
        K = intrinsics
        u = (np.arange(K.width, dtype=np.float64) - K.cx) / K.fx
        v = (np.arange(K.height, dtype=np.float64) - K.cy) / K.fy
        self._X, self._Y = np.meshgrid(u, v)  # (H, W) optical-frame ray slopes
        lo, hi = scene.boxes_lo, scene.boxes_hi
        # (k, 8, 3) box corners, for the projected pixel bound of each box.
        sel = np.array([[(i >> a) & 1 for a in range(3)] for i in range(8)], dtype=bool)
        self._corners_k83 = np.where(sel[None], hi[:, None, :], lo[:, None, :])

    def _box_window(self, k: int, corners_cam_83: np.ndarray) -> tuple[slice, slice] | None:
        """Pixel rows/cols a box can cover; whole image if it straddles the camera plane; None if behind."""
        K = self.intrinsics
        z = corners_cam_83[:, 2]
        if np.all(z <= 1e-6):
            return None
        if np.any(z <= 1e-6):
            return slice(0, K.height), slice(0, K.width)
        u = K.fx * corners_cam_83[:, 0] / z + K.cx
        v = K.fy * corners_cam_83[:, 1] / z + K.cy
        # Pixel centres are at integers; one pixel of margin against rounding.
        u0, u1 = max(int(np.floor(u.min())) - 1, 0), min(int(np.ceil(u.max())) + 2, K.width)
        v0, v1 = max(int(np.floor(v.min())) - 1, 0), min(int(np.ceil(v.max())) + 2, K.height)
        if u0 >= u1 or v0 >= v1:
            return None
        return slice(v0, v1), slice(u0, u1)

    def render(self, T_map_cam: np.ndarray, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """RGB uint8 (H, W, 3) and z-depth float32 (H, W) in metres (None if ``depth`` is False).

        ``T_map_cam`` is the pose of the camera *optical* frame in the map.
        """
        T = np.asarray(T_map_cam, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"T_map_cam must be a finite 4x4 pose, got shape {T.shape}")
        sc = self.scene
        R, o = T[:3, :3], T[:3, 3]
        if not sc.inside_room(o[None])[0] or sc.inside_box(o[None])[0]:
            raise ValueError(f"camera centre {o.round(3).tolist()} is outside the room or inside furniture")
        X, Y = self._X, self._Y
        # World ray directions d = R @ (X, Y, 1), one (H, W) array per axis.
        d = [R[i, 0] * X + R[i, 1] * Y + R[i, 2] for i in range(3)]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            inv = [1.0 / di for di in d]
            # Room: leave through the nearest of the far planes; surface id = axis * 2 + (high side).
            t = sid = None
            for a in range(3):
                ta = np.maximum((sc.room_lo[a] - o[a]) * inv[a], (sc.room_hi[a] - o[a]) * inv[a])
                sa = (2 * a + (d[a] > 0)).astype(np.int16)
                if t is None:
                    t, sid = ta, sa
                else:
                    closer = ta < t
                    t = np.where(closer, ta, t)
                    sid = np.where(closer, sa, sid)
            corners_cam = (self._corners_k83 - o) @ R  # R^T (p - o) for every corner
            for k in range(len(sc.boxes_lo)):
                win = self._box_window(k, corners_cam[k])
                if win is None:
                    continue
                dw = [di[win] for di in d]
                iw = [ii[win] for ii in inv]
                tmin, tmax = [], []
                for a in range(3):
                    t1 = (sc.boxes_lo[k, a] - o[a]) * iw[a]
                    t2 = (sc.boxes_hi[k, a] - o[a]) * iw[a]
                    tmin.append(np.minimum(t1, t2))
                    tmax.append(np.maximum(t1, t2))
                near = np.maximum(np.maximum(tmin[0], tmin[1]), tmin[2])
                far = np.minimum(np.minimum(tmax[0], tmax[1]), tmax[2])
                tw = t[win]
                hit = (near <= far) & (near > 1e-9) & (near < tw)
                if not hit.any():
                    continue
                nh = near[hit]
                ax = np.where(tmin[0][hit] == nh, 0, np.where(tmin[1][hit] == nh, 1, 2))
                d_ax = np.choose(ax, [dw[0][hit], dw[1][hit], dw[2][hit]])
                tw[hit] = nh  # tw is a view into t
                # Entering through the low face means travelling towards +axis.
                sid[win][hit] = 6 + 6 * k + 2 * ax + (d_ax < 0)
        K = self.intrinsics
        t_flat, sid_flat = t.ravel(), sid.ravel()
        d_flat = [di.ravel() for di in d]
        rgb = np.empty((t_flat.size, 3), dtype=np.float64)
        order = np.argsort(sid_flat, kind="stable")  # radix sort on int16
        bounds = np.searchsorted(sid_flat[order], np.arange(sc.n_surfaces + 1))
        for s in range(sc.n_surfaces):
            if bounds[s] == bounds[s + 1]:
                continue
            idx = order[bounds[s]:bounds[s + 1]]
            ua, va = _UV_AXES[(s % 6) // 2]
            ts = t_flat[idx]
            col = sc.surface_materials[s].colour(o[ua] + ts * d_flat[ua][idx], o[va] + ts * d_flat[va][idx])
            rgb[idx] = col * sc.surface_shade[s]
        img = np.clip(rgb * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8).reshape(K.height, K.width, 3)
        dep = t.astype(np.float32) if depth else None
        return img, dep


# ---------------------------------------------------------------------------
# A run: the robot driving one route, with stamps, TF and ground truth
# ---------------------------------------------------------------------------

@dataclass
class SynthFrame:
    """One rendered camera frame and its ground truth (``T_map_cam`` of the optical frame)."""

    index: int
    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray | None
    T_map_cam: np.ndarray


@dataclass
class SyntheticRun:
    """The robot driving one route through a scene: stamps, TF samples and exact poses.

    The motion is generated from continuous functions of time (route curve,
    odometry drift), but those are only *sampled* at the TF stamps. The true
    pose at any stamp is defined as what tf2 computes from those samples:
    map -> odom and odom -> base_link each interpolated (lerp + slerp) between
    their bracketing samples, then composed. So a reader interpolating the
    bag's ``/tf`` reproduces the rendered poses to rounding error, at any
    speed, instead of up to an interpolation error of the sampling. (All
    these transforms are planar, a yaw about z; slerp is then linear in yaw
    along the shorter arc, which is how they are interpolated here.)
    """

    scene: Scene
    route: str
    curve: RouteCurve
    intrinsics: Intrinsics
    rig: CameraRig
    rate_hz: float
    tf_rate_hz: float
    speed_mps: float
    start_ns: int
    image_stamps_ns: np.ndarray
    tf_stamps_ns: np.ndarray  # odom -> base_link samples
    map_odom_stamps_ns: np.ndarray  # map -> odom samples
    _odom_base_xyyaw: np.ndarray = field(init=False, repr=False)
    _map_odom_xyyaw: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        map_odom = self._map_odom_continuous(self.map_odom_stamps_ns)
        self._map_odom_xyyaw = _xyyaw(map_odom)
        odom_base = invert_pose(self._map_odom_continuous(self.tf_stamps_ns)) @ self._map_base_continuous(
            self.tf_stamps_ns)
        self._odom_base_xyyaw = _xyyaw(odom_base)

    @property
    def frames(self) -> int:
        return len(self.image_stamps_ns)

    @property
    def laps(self) -> float:
        """How many times the image stamps go round the route."""
        return self.speed_mps * self.frames / self.rate_hz / self.curve.length_m

    def _travel(self, stamps_ns: np.ndarray) -> np.ndarray:
        # Integer difference first: float64 of absolute nanosecond stamps would lose ~100 ns.
        dt = (np.asarray(stamps_ns, dtype=np.int64) - self.start_ns).astype(np.float64) / _NS
        return self.speed_mps * dt

    def _map_base_continuous(self, stamps_ns: np.ndarray) -> np.ndarray:
        x, y, yaw = self.curve.xy_yaw(self._travel(stamps_ns))
        return _planar_poses(x, y, yaw)

    def _map_odom_continuous(self, stamps_ns: np.ndarray) -> np.ndarray:
        # Odometry starts counting at the robot's start pose, then drifts with distance travelled.
        start = self._map_base_continuous(np.array([self.start_ns]))[0]
        return start @ self.curve.drift(self._travel(stamps_ns))

    def T_map_odom(self, stamps_ns: np.ndarray) -> np.ndarray:
        """(n, 4, 4) map -> odom at ``stamps_ns``, interpolated from its /tf samples."""
        return _interp_planar(self.map_odom_stamps_ns, self._map_odom_xyyaw, stamps_ns, "map -> odom")

    def T_odom_base(self, stamps_ns: np.ndarray) -> np.ndarray:
        """(n, 4, 4) odom -> base_link at ``stamps_ns``, interpolated from its /tf samples."""
        return _interp_planar(self.tf_stamps_ns, self._odom_base_xyyaw, stamps_ns, "odom -> base_link")

    def T_map_base(self, stamps_ns: np.ndarray) -> np.ndarray:
        """(n, 4, 4) true pose of base_link in the map: the TF chain map -> odom -> base_link."""
        return self.T_map_odom(stamps_ns) @ self.T_odom_base(stamps_ns)

    def T_map_cam(self, stamps_ns: np.ndarray | None = None) -> np.ndarray:
        """(n, 4, 4) exact pose of camera_optical_frame in the map (image stamps by default)."""
        stamps = self.image_stamps_ns if stamps_ns is None else stamps_ns
        return self.T_map_base(stamps) @ self.rig.T_base_optical

    def iter_frames(self, depth: bool = True, progress: bool = False) -> Iterator[SynthFrame]:
        """Render every image of the run in order."""
        from tqdm import tqdm

        renderer = Renderer(self.scene, self.intrinsics)
        poses = self.T_map_cam()
        show = progress and sys.stderr.isatty()
        bar = tqdm(total=self.frames, desc=f"render {self.route}", unit="frame", disable=not show)
        try:
            for i, (stamp, T) in enumerate(zip(self.image_stamps_ns, poses)):
                rgb, dep = renderer.render(T, depth=depth)
                bar.update(1)
                yield SynthFrame(index=i, stamp_ns=int(stamp), rgb=rgb, depth=dep, T_map_cam=T)
        finally:
            bar.close()


def make_run(route: str = "train", frames: int = 200, seed: int = 0, size: tuple[int, int] = (160, 120),
             scene: str | SceneConfig | Scene = "room", rate_hz: float = 10.0, tf_rate_hz: float = 40.0,
             speed_mps: float | None = None, hfov_deg: float = 70.0, rig: CameraRig | None = None,
             start_ns: int | None = None) -> SyntheticRun:
    """Plan a run: the scene of ``(scene, seed)``, the ``route`` curve, and all stamps.

    ``speed_mps`` None drives at ``DEFAULT_SPEED_MPS`` (0.4 m/s) when the
    ``frames`` at ``rate_hz`` suffice for a whole lap of the route, and faster
    otherwise, so that train and test always cover their whole routes (200
    frames at 10 Hz on the 'room' train route: one lap at about 1 m/s). A number
    fixes the speed instead, and ``frames`` then decides how far the robot gets.
    Image stamps get a small deterministic jitter (±0.3 ms) and an offset from
    the TF stamps, as real cameras have.
    """
    if route not in ROUTES:
        raise ValueError(f"route '{route}' unknown; valid routes: {', '.join(ROUTES)}")
    if int(frames) < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    for name, val in (("rate_hz", rate_hz), ("tf_rate_hz", tf_rate_hz)):
        if not (np.isfinite(val) and val > 0):
            raise ValueError(f"{name} must be a positive number of Hz, got {val}")
    if tf_rate_hz < rate_hz:
        raise ValueError(f"tf_rate_hz ({tf_rate_hz}) must be at least the camera rate_hz ({rate_hz})")
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise ValueError(f"size must be (width, height) in pixels, got {size}")
    sc = scene if isinstance(scene, Scene) else build_scene(scene, seed)
    curve = sc.routes[route]
    frames = int(frames)
    if speed_mps is None:
        speed = max(DEFAULT_SPEED_MPS, curve.length_m * rate_hz / frames)
        if speed > 2.0:
            log.info("%d frames at %.1f Hz cover the %.1f m %s route at %.2f m/s; more frames or a lower rate "
                     "give a slower robot", frames, rate_hz, curve.length_m, route, speed)
    else:
        if not (np.isfinite(speed_mps) and speed_mps > 0):
            raise ValueError(f"speed_mps must be positive, got {speed_mps}")
        speed = float(speed_mps)
    start = _START_NS[route] if start_ns is None else int(start_ns)
    period_ns = int(round(_NS / rate_hz))
    tf_period_ns = int(round(_NS / tf_rate_hz))
    jitter_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED, 7, ROUTES.index(route)])
    jitter = jitter_rng.integers(-300_000, 300_001, size=frames)
    # First image 0.1 s after TF starts, offset by a third of a TF period so stamps never coincide.
    first = start + 100_000_000 + tf_period_ns // 3
    image_stamps = first + np.arange(frames, dtype=np.int64) * period_ns + jitter
    end = int(image_stamps[-1]) + 100_000_000
    tf_stamps = np.arange(start, end + tf_period_ns, tf_period_ns, dtype=np.int64)
    map_odom_stamps = np.arange(start + tf_period_ns // 2, end + 2 * tf_period_ns, 2 * tf_period_ns, dtype=np.int64)
    intr = default_intrinsics(int(size[0]), int(size[1]), hfov_deg)
    run = SyntheticRun(scene=sc, route=route, curve=curve, intrinsics=intr, rig=rig or CameraRig(),
                       rate_hz=float(rate_hz), tf_rate_hz=float(tf_rate_hz), speed_mps=speed, start_ns=start,
                       image_stamps_ns=image_stamps, tf_stamps_ns=tf_stamps, map_odom_stamps_ns=map_odom_stamps)
    # The routes keep clearance from every box by construction; check the cameras anyway.
    cams = run.T_map_cam()[:, :3, 3]
    if sc.inside_box(cams).any() or not sc.inside_room(cams).all():
        raise RelocError(f"scene '{sc.config.name}' seed {seed}: a camera of the {route} route is inside "
                         "furniture or outside the room")
    return run


def render_route(route: str = "train", frames: int = 200, seed: int = 0, size: tuple[int, int] = (160, 120),
                 scene: str | SceneConfig | Scene = "room", depth: bool = True, progress: bool = False,
                 **run_kwargs: Any) -> list[SynthFrame]:
    """Render every frame of a run in memory (no bag): rgb, depth, ``T_map_cam``, stamp."""
    run = make_run(route=route, frames=frames, seed=seed, size=size, scene=scene, **run_kwargs)
    return list(run.iter_frames(depth=depth, progress=progress))


def ground_truth(route: str = "train", frames: int = 200, seed: int = 0, scene: str | SceneConfig = "room",
                 **run_kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Image stamps (n,) and exact ``T_map_cam`` (n, 4, 4) of a run, without rendering."""
    run = make_run(route=route, frames=frames, seed=seed, scene=scene, **run_kwargs)
    return run.image_stamps_ns.copy(), run.T_map_cam()


def synthetic_dataset(route: str = "train", frames: int = 200, seed: int = 0, size: tuple[int, int] = (160, 120),
                      scene: str | SceneConfig = "room", depth: bool = False, progress: bool = False,
                      **run_kwargs: Any) -> PoseDataset:
    """Return the run as a :class:`PoseDataset` (images in memory), skipping the bag round trip."""
    run = make_run(route=route, frames=frames, seed=seed, size=size, scene=scene, **run_kwargs)
    h, w = run.intrinsics.height, run.intrinsics.width
    images = np.empty((run.frames, h, w, 3), dtype=np.uint8)
    depths = np.empty((run.frames, h, w), dtype=np.float32) if depth else None
    for fr in run.iter_frames(depth=depth, progress=progress):
        images[fr.index] = fr.rgb
        if depths is not None:
            depths[fr.index] = fr.depth
    return PoseDataset(stamps_ns=run.image_stamps_ns.copy(), poses_n44=run.T_map_cam(), intrinsics=run.intrinsics,
                       images=images, depths=depths, source=f"synthetic {run.scene.config.name} seed {seed} {route}",
                       map_frame=MAP_FRAME, camera_frame=OPTICAL_FRAME)


# ---------------------------------------------------------------------------
# Bag writing
# ---------------------------------------------------------------------------

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
    stamp, frame and size), ``/tf`` and ``/tf_static`` (see the module
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
        duration_s=(int(run.tf_stamps_ns[-1]) - run.start_ns) / _NS, route_length_m=run.curve.length_m,
        speed_mps=run.speed_mps, laps=run.laps, message_counts=dict(counts),
        render_fps=run.frames / max(t_render, 1e-9))
    log.info("wrote %s: %s", out, summary)
    return summary


__all__ = [
    "SCENE_PRESETS", "CameraRig", "Material", "Renderer", "RouteCurve", "Scene", "SceneConfig", "SynthFrame",
    "SynthSummary", "SyntheticRun", "build_scene", "default_intrinsics", "ground_truth", "make_run",
    "render_route", "scene_config", "synthetic_dataset", "write_synthetic_bag",
]
