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

"""Routes of the synthetic robot: closed planar curves in the free space, parameterised by arc length."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reloc_ros.data.synth.config import SceneConfig


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
        return planar_poses(self.drift_xy_m[0] * (frac + wig), self.drift_xy_m[1] * (frac - wig), yaw)


def planar_poses(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, z: float = 0.0) -> np.ndarray:
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


def make_route_curve(cfg: SceneConfig, route: str, rng: np.random.Generator) -> RouteCurve:
    """Draw the ``route`` ('train' or 'test') curve of a scene from ``rng``: shape, size, start, wobble, drift."""
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
