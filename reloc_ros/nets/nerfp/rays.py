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

"""NeRF-P geometry: camera rays, the volume-rendering weights (eq. 4) and the scene box.

Rays follow the package's camera convention (see :mod:`reloc_ros.nets.nerfp`):
``T_map_cam`` of the optical frame, pixel centres at integers, directions with
unit z in the camera so ``t`` along a ray is z-depth.
"""

from __future__ import annotations

import numpy as np
import torch

from reloc_ros.data.types import Intrinsics
from reloc_ros.nets.nerfp.config import is_real


def pixel_rays(T_map_cam_b44: torch.Tensor, K: Intrinsics, u_r: torch.Tensor, v_r: torch.Tensor,
               cam_r: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixel coordinates ``(u, v)`` of the cameras ``T_map_cam_b44[cam_r]``.

    Returns ``(origins_r3, dirs_r3)`` in the map frame, ``dirs = R K^-1 [u, v, 1]``
    (unnormalised: unit z in the camera, so ``t`` along the ray is z-depth).
    ``cam_r`` selects the camera of each ray (default: camera 0).
    """
    T_b44 = T_map_cam_b44.reshape(-1, 4, 4)
    if cam_r is None:
        cam_r = torch.zeros_like(u_r, dtype=torch.long)
    T_r44 = T_b44[cam_r]
    d_cam_r3 = torch.stack([(u_r - K.cx) / K.fx, (v_r - K.cy) / K.fy, torch.ones_like(u_r)], dim=-1)
    dirs_r3 = (T_r44[:, :3, :3] @ d_cam_r3.to(T_r44.dtype).unsqueeze(-1)).squeeze(-1)
    return T_r44[:, :3, 3], dirs_r3


def camera_rays(T_map_cam_44: torch.Tensor, K: Intrinsics, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of a whole image, ``(origins_hw3, dirs_hw3)``, one per pixel or per ``stride x stride`` block.

    With ``stride`` s the ray goes through the centre of each block,
    ``u = s j + (s - 1) / 2`` (pixel centres at integers), and the grid is
    ``(H // s) x (W // s)``: the camera of the image resized by ``1 / s``.
    """
    s = int(stride)
    h, w = K.height // s, K.width // s
    if h < 1 or w < 1:
        raise ValueError(f"stride {s} leaves no pixel of a {K.width}x{K.height} image; use a stride <= "
                         f"{min(K.width, K.height)}")
    T_44 = torch.as_tensor(T_map_cam_44, dtype=torch.float32).reshape(4, 4)
    dev = T_44.device
    v_hw, u_hw = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32) * s + (s - 1) / 2.0,
                                torch.arange(w, device=dev, dtype=torch.float32) * s + (s - 1) / 2.0, indexing="ij")
    o_r3, d_r3 = pixel_rays(T_44, K, u_hw.reshape(-1), v_hw.reshape(-1))
    return o_r3.reshape(h, w, 3), d_r3.reshape(h, w, 3)


def volume_weights(sigma_rs: torch.Tensor, delta_rs: torch.Tensor) -> torch.Tensor:
    """Eq. 4: ``w_i = T_i (1 - exp(-sigma_i delta_i))``, ``T_i = exp(-sum_{j<i} sigma_j delta_j)``."""
    tau_rs = sigma_rs * delta_rs
    # Exclusive cumulative sum: the optical depth *before* sample i.
    before_rs = torch.cumsum(tau_rs, dim=-1) - tau_rs
    return torch.exp(-before_rs) * (1.0 - torch.exp(-tau_rs))


def _valid_depth(depth: np.ndarray) -> np.ndarray:
    return np.isfinite(depth) & (depth > 0)


def scene_bounds(poses_n44: np.ndarray, K: Intrinsics, depths_nhw: np.ndarray | None = None,
                 max_depth: float | None = None, margin: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned scene box ``(min_3, max_3)``: camera centres plus what lies within the maximum depth.

    With depth maps: the camera centres and every valid depth pixel
    back-projected (what the cameras actually saw). Without: the camera
    centres and the corners of each view frustum cut at ``max_depth`` (which
    is then required). The box is padded by ``margin`` times its largest side.
    """
    T_n44 = np.asarray(poses_n44, dtype=np.float64).reshape(-1, 4, 4)
    pts = [T_n44[:, :3, 3]]
    if depths_nhw is not None:
        v_hw, u_hw = np.mgrid[0:K.height, 0:K.width].astype(np.float64)
        ray_hw3 = np.stack([(u_hw - K.cx) / K.fx, (v_hw - K.cy) / K.fy, np.ones_like(u_hw)], axis=-1)
        for T_44, d_hw in zip(T_n44, depths_nhw):  # frame by frame: a long run's points do not fit at once
            d_hw = np.asarray(d_hw, dtype=np.float64)
            ok = _valid_depth(d_hw)
            if ok.any():
                p_m3 = ray_hw3[ok] * d_hw[ok][:, None]
                p_m3 = p_m3 @ T_44[:3, :3].T + T_44[:3, 3]
                pts.append(np.stack([p_m3.min(0), p_m3.max(0)]))
    else:
        if max_depth is None or not is_real(max_depth) or max_depth <= 0:
            raise ValueError(f"scene bounds without depth maps need max_depth > 0 m, got {max_depth!r}")
        u = np.array([-0.5, K.width - 0.5, -0.5, K.width - 0.5])
        v = np.array([-0.5, -0.5, K.height - 0.5, K.height - 0.5])
        c_43 = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones(4)], axis=-1) * float(max_depth)
        pts.append((np.einsum("nij,cj->nci", T_n44[:, :3, :3], c_43) + T_n44[:, None, :3, 3]).reshape(-1, 3))
    all_p3 = np.concatenate(pts, axis=0)
    lo, hi = all_p3.min(0), all_p3.max(0)
    pad = margin * float((hi - lo).max()) + 1e-3  # + 1 mm: a box of one camera and no depth is not flat
    return lo - pad, hi + pad
