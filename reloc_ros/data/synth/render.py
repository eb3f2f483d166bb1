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

"""The ray caster of the synthetic scene: exact RGB and z-depth of a :class:`Scene` for one pinhole camera."""

from __future__ import annotations

import numpy as np

from reloc_ros.data.synth.scene import Scene
from reloc_ros.data.types import Intrinsics

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
