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

"""The synthetic scene of one ``(scene, seed)``: room, furniture boxes, surface materials and the two routes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from reloc_ros.data.synth.config import ROUTES, SceneConfig, scene_config
from reloc_ros.data.synth.materials import Material, scene_materials
from reloc_ros.data.synth.routes import RouteCurve, make_route_curve
from reloc_ros.errors import RelocError

log = logging.getLogger(__name__)

# Fixed light direction (map frame, pointing towards the light): per-face constant shading.
_LIGHT_DIR = np.array([0.5, 0.3, 0.8]) / np.linalg.norm([0.5, 0.3, 0.8])


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


def _dist_to_rects(pts_n2: np.ndarray, lo_k2: np.ndarray, hi_k2: np.ndarray) -> np.ndarray:
    """(n, k) distances in the plane from points to axis-aligned rectangles (0 inside)."""
    if len(lo_k2) == 0:
        return np.full((len(pts_n2), 0), np.inf)
    p = pts_n2[:, None, :]
    gap = np.maximum(np.maximum(lo_k2[None] - p, p - hi_k2[None]), 0.0)
    return np.hypot(gap[..., 0], gap[..., 1])


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
            curve = make_route_curve(cfg, route, route_rng)
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

    surface_materials = scene_materials(seed, room_lo, room_hi, kinds, cfg.detail)

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
