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

"""The NeRF-P network: multi-resolution dense grids, density / colour MLPs, pose branch and decoder.

:class:`NerfP` renders rays (colour, z-depth and the PoseMap of eq. 3), decodes
PoseMaps to poses and writes / reads its checkpoints; :func:`~reloc_ros.nets.nerfp.fit.fit_nerfp`
trains it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.nets.nerfp.config import is_int, NerfPConfig
from reloc_ros.nets.nerfp.rays import camera_rays, volume_weights

POSE_VECTOR_DIM = 12
"""What the pose decoder predicts: the 3 x 4 matrix ``[R | t]``, row-major, ``t`` normalised to the scene box."""

_SH_DIM = 9  # spherical harmonics up to degree 2: enough view dependence for indoor surfaces, little to overfit


def _sh_deg2(d_r3: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics up to degree 2 of unit directions (9 values, Instant-NGP's constants)."""
    x, y, z = d_r3.unbind(-1)
    return torch.stack([
        torch.full_like(x, 0.28209479177387814),
        -0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x,
        1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
        0.94617469575755997 * z * z - 0.31539156525251999,
        -1.0925484305920792 * x * z, 0.54627421529603959 * (x * x - y * y)], dim=-1)


def _mlp(widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DenseGridEncoding(nn.Module):
    """Multi-resolution dense feature grids over the unit cube, read by trilinear interpolation.

    ``forward(x_p3)`` takes positions normalised to ``[0, 1]^3`` and returns
    ``(P, levels * features_per_level)``. Level ``l`` has ``res_l`` cells along
    the longest box side and proportionally fewer along the others
    (``extent_3`` gives the proportions), so cells stay roughly cubic.
    """

    def __init__(self, cfg: NerfPConfig, extent_3: Sequence[float]) -> None:
        super().__init__()
        ext = np.asarray(extent_3, dtype=np.float64)
        rel = ext / ext.max()
        self.features = cfg.features_per_level
        self.out_dim = cfg.levels * cfg.features_per_level
        self.grids = nn.ParameterList()
        for res in cfg.grid_resolutions():
            nx, ny, nz = (max(2, int(math.ceil(res * r)) + 1) for r in rel)  # vertices = cells + 1
            # grid_sample reads a (N, C, D, H, W) volume with grid (x, y, z) -> (W, H, D).
            self.grids.append(nn.Parameter(torch.zeros(1, cfg.features_per_level, nz, ny, nx)))

    def reset_parameters(self, gen: torch.Generator) -> None:
        # Instant-NGP's init: U(-1e-4, 1e-4), small enough that the MLPs start from a smooth field.
        with torch.no_grad():
            for g in self.grids:
                g.copy_(torch.rand(g.shape, generator=gen) * 2e-4 - 1e-4)

    def forward(self, x_p3: torch.Tensor) -> torch.Tensor:
        p = x_p3.shape[0]
        g_111p3 = (x_p3 * 2.0 - 1.0).reshape(1, 1, 1, p, 3)
        feats = [F.grid_sample(g, g_111p3.to(g.dtype), mode="bilinear", padding_mode="border",
                               align_corners=True).reshape(self.features, p) for g in self.grids]
        return torch.cat(feats, dim=0).t()


class NerfP(nn.Module):
    """A radiance field of one scene with PMNet's pose branch and pose decoder.

    Build with :func:`fit_nerfp`, or ``NerfP(cfg, bounds_min_3, bounds_max_3)``
    for an untrained one (the box in map-frame metres).

    Modules, by training stage:
        stage 1 (radiance): ``encoding`` (grids), ``density_net``, ``colour_net``.
        stage 2 (pose): ``pose_head`` (sample -> k-dim feature) and
        ``pose_decoder`` (pooled PoseMap -> 12 pose numbers); both ``None``
        when ``cfg.pose_feature_dim == 0``.
    """

    def __init__(self, cfg: NerfPConfig, bounds_min_3: Sequence[float], bounds_max_3: Sequence[float]) -> None:
        super().__init__()
        lo = np.asarray(bounds_min_3, dtype=np.float64).reshape(-1)
        hi = np.asarray(bounds_max_3, dtype=np.float64).reshape(-1)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)) \
                or not np.all(hi > lo):
            raise ValueError(f"scene bounds must be two finite 3-vectors with max > min on every axis, got "
                             f"min {lo.tolist()} max {hi.tolist()}")
        self.cfg = cfg
        self.register_buffer("bounds_min_3", torch.tensor(lo, dtype=torch.float32))
        self.register_buffer("bounds_max_3", torch.tensor(hi, dtype=torch.float32))
        # Pose normalisation for the decoder: box centre and half its largest side.
        self.register_buffer("pose_centre_3", torch.tensor((lo + hi) / 2.0, dtype=torch.float32))
        self.register_buffer("pose_scale", torch.tensor(float((hi - lo).max() / 2.0), dtype=torch.float32))
        self.encoding = DenseGridEncoding(cfg, hi - lo)
        self.dir_dim = _SH_DIM if cfg.view_dependent else 0
        self.density_net = _mlp([self.encoding.out_dim, cfg.hidden_dim, 1 + cfg.geo_feat_dim])
        self.colour_net = _mlp([cfg.geo_feat_dim + self.dir_dim, cfg.hidden_dim, cfg.hidden_dim, 3])
        self.pose_head: nn.Sequential | None = None
        self.pose_decoder: nn.Sequential | None = None
        if cfg.pose_feature_dim > 0:
            k = cfg.pose_feature_dim
            self.pose_head = _mlp([self.encoding.out_dim + cfg.geo_feat_dim + self.dir_dim, cfg.pose_hidden, k])
            rows, cols = cfg.posemap_pool
            self.pose_decoder = _mlp([k * rows * cols, *cfg.decoder_hidden, POSE_VECTOR_DIM])

    # -- parameters by stage ---------------------------------------------------

    def radiance_parameters(self) -> list[nn.Parameter]:
        """Stage-1 weights: grids, density MLP, colour MLP."""
        return [*self.encoding.parameters(), *self.density_net.parameters(), *self.colour_net.parameters()]

    def pose_parameters(self) -> list[nn.Parameter]:
        """Stage-2 weights: pose head and pose decoder (empty without a pose branch)."""
        if self.pose_head is None or self.pose_decoder is None:
            return []
        return [*self.pose_head.parameters(), *self.pose_decoder.parameters()]

    def freeze_radiance(self, frozen: bool = True) -> None:
        """Stop (or restart) gradients into the stage-1 weights, as the paper's stage 2 requires."""
        for p in self.radiance_parameters():
            p.requires_grad_(not frozen)

    @property
    def has_pose_branch(self) -> bool:
        return self.pose_head is not None

    # -- rendering -------------------------------------------------------------

    def _clip_to_box(self, origins_r3: torch.Tensor, dirs_r3: torch.Tensor, near: float,
                     far: float) -> tuple[torch.Tensor, torch.Tensor]:
        # Slab test: samples are only spent where the field exists.
        inv_r3 = 1.0 / torch.where(dirs_r3.abs() < 1e-9, torch.full_like(dirs_r3, 1e-9), dirs_r3)
        t0_r3 = (self.bounds_min_3 - origins_r3) * inv_r3
        t1_r3 = (self.bounds_max_3 - origins_r3) * inv_r3
        t_in_r = torch.minimum(t0_r3, t1_r3).amax(dim=-1).clamp(min=near)
        t_out_r = torch.maximum(t0_r3, t1_r3).amin(dim=-1).clamp(max=far)
        t_out_r = torch.maximum(t_out_r, t_in_r)  # a ray missing the box gets an empty interval
        return t_in_r, t_out_r

    def render_rays(self, origins_r3: torch.Tensor, dirs_r3: torch.Tensor, near: float | None = None,
                    far: float | None = None, generator: torch.Generator | None = None,
                    with_pose: bool = True) -> dict[str, torch.Tensor]:
        """Volume-render rays (map frame): colour, z-depth, and the PoseMap when there is a pose branch.

        ``near`` / ``far`` default to the config's. With a ``generator`` the
        samples are jittered inside their strata (training); without, they sit
        at the strata midpoints (deterministic renders).

        Returns:
            ``rgb_r3`` (0..1, black where the ray leaves the box unabsorbed),
            ``depth_r`` (``sum_i w_i t_i`` plus the leftover transmittance at the
            ray's exit, i.e. z-depth for rays from :func:`camera_rays`),
            ``acc_r`` (``sum_i w_i``), ``weights_rs`` (eq. 4), ``t_rs`` (sample
            positions along the rays) and, when the pose branch exists and
            ``with_pose``, ``posemap_rk`` = ``sum_i w_i f_i`` (eq. 3).

        """
        cfg = self.cfg
        near = cfg.near if near is None else float(near)
        far = cfg.far if far is None else float(far)
        o_r3 = origins_r3.to(self.bounds_min_3)
        d_r3 = dirs_r3.to(self.bounds_min_3)
        r, s = o_r3.shape[0], cfg.samples_per_ray
        t_in_r, t_out_r = self._clip_to_box(o_r3, d_r3, near, far)
        if generator is None:
            u_rs = ((torch.arange(s, device=o_r3.device, dtype=o_r3.dtype) + 0.5) / s).expand(r, s)
        else:
            jitter_rs = torch.rand((r, s), generator=generator, device=generator.device).to(o_r3)
            u_rs = (torch.arange(s, device=o_r3.device, dtype=o_r3.dtype) + jitter_rs) / s
        span_r = t_out_r - t_in_r
        t_rs = t_in_r[:, None] + span_r[:, None] * u_rs
        # Each sample stands for its stratum of width span / s, so the deltas tile [t_in, t_out] exactly.
        delta_rs = (span_r * d_r3.norm(dim=-1) / s)[:, None].expand(r, s)
        pts_rs3 = o_r3[:, None, :] + t_rs[..., None] * d_r3[:, None, :]
        x_p3 = ((pts_rs3.reshape(-1, 3) - self.bounds_min_3) / (self.bounds_max_3 - self.bounds_min_3)).clamp(0, 1)
        enc_pc = self.encoding(x_p3)
        h_pc = self.density_net(enc_pc)
        # exp keeps densities positive with Instant-NGP's activation; the clamp keeps it finite in float32.
        sigma_rs = torch.exp(h_pc[:, 0].clamp(-15.0, 15.0)).reshape(r, s)
        geo_pc = h_pc[:, 1:]
        head_in = [geo_pc]
        if self.dir_dim:
            sh_r9 = _sh_deg2(F.normalize(d_r3, dim=-1))
            head_in.append(sh_r9[:, None, :].expand(r, s, _SH_DIM).reshape(-1, _SH_DIM))
        rgb_rs3 = torch.sigmoid(self.colour_net(torch.cat(head_in, dim=-1))).reshape(r, s, 3)
        w_rs = volume_weights(sigma_rs, delta_rs)
        acc_r = w_rs.sum(dim=-1)
        out = {
            "rgb_r3": (w_rs[..., None] * rgb_rs3).sum(dim=1),
            "depth_r": (w_rs * t_rs).sum(dim=-1) + (1.0 - acc_r) * t_out_r,
            "acc_r": acc_r,
            "weights_rs": w_rs,
            "t_rs": t_rs,
        }
        if with_pose and self.pose_head is not None:
            f_psk = self.pose_head(torch.cat([enc_pc, *head_in], dim=-1))
            out["posemap_rk"] = (w_rs[..., None] * f_psk.reshape(r, s, -1)).sum(dim=1)  # eq. 3, colour's weights
        return out

    def render_image(self, T_map_cam_44: torch.Tensor | np.ndarray, K: Intrinsics, chunk: int = 8192,
                     stride: int = 1, with_pose: bool = True) -> dict[str, torch.Tensor]:
        """Render a camera: ``rgb_hw3`` (0..1), ``depth_hw`` (z-depth, m), ``acc_hw``, ``posemap_hwk``.

        ``posemap_hwk`` is present when the model has a pose branch and
        ``with_pose``. ``stride`` > 1 renders one ray per block (see
        :func:`camera_rays`). Gradients flow (to the weights and to a
        ``T_map_cam_44`` tensor that requires them) unless called under
        ``torch.no_grad()``. ``chunk`` bounds the rays per forward pass: lower
        it when memory runs out.
        """
        if not is_int(chunk) or chunk < 1:
            raise ValueError(f"chunk must be a positive number of rays, got {chunk!r}")
        T_44 = torch.as_tensor(T_map_cam_44, dtype=torch.float32, device=self.bounds_min_3.device)
        o_hw3, d_hw3 = camera_rays(T_44, K, stride)
        h, w = o_hw3.shape[:2]
        o_r3, d_r3 = o_hw3.reshape(-1, 3), d_hw3.reshape(-1, 3)
        parts: dict[str, list[torch.Tensor]] = {}
        for i in range(0, o_r3.shape[0], chunk):
            res = self.render_rays(o_r3[i:i + chunk], d_r3[i:i + chunk], with_pose=with_pose)
            for key in ("rgb_r3", "depth_r", "acc_r", "posemap_rk"):
                if key in res:
                    parts.setdefault(key, []).append(res[key])
        out = {
            "rgb_hw3": torch.cat(parts["rgb_r3"]).reshape(h, w, 3).clamp(0.0, 1.0),
            "depth_hw": torch.cat(parts["depth_r"]).reshape(h, w),
            "acc_hw": torch.cat(parts["acc_r"]).reshape(h, w),
        }
        if "posemap_rk" in parts:
            out["posemap_hwk"] = torch.cat(parts["posemap_rk"]).reshape(h, w, -1)
        return out

    # -- pose decoder ----------------------------------------------------------

    def decode_pose(self, posemap_bhwk: torch.Tensor) -> torch.Tensor:
        """Pose decoder: PoseMaps ``(B, h, w, k)`` (or one ``(h, w, k)``) -> ``(B, 12)`` normalised ``[R | t]``."""
        if self.pose_decoder is None:
            raise RelocError("this NeRF-P has no pose branch (pose_feature_dim = 0); there is no decoder")
        pm = posemap_bhwk if posemap_bhwk.dim() == 4 else posemap_bhwk.unsqueeze(0)
        pooled_bkhw = F.adaptive_avg_pool2d(pm.permute(0, 3, 1, 2), self.cfg.posemap_pool)
        return self.pose_decoder(pooled_bkhw.flatten(1))

    def pose_vector(self, T_map_cam_b44: torch.Tensor) -> torch.Tensor:
        """Return the decoder's target for poses ``(B, 4, 4)``: ``[R | (t - centre) / scale]`` row-major (B, 12)."""
        T = T_map_cam_b44.reshape(-1, 4, 4).to(self.bounds_min_3)
        t_b3 = (T[:, :3, 3] - self.pose_centre_3) / self.pose_scale
        return torch.cat([T[:, :3, :3], t_b3[:, :, None]], dim=2).reshape(-1, POSE_VECTOR_DIM)

    def pose_matrix(self, pose_b12: torch.Tensor) -> torch.Tensor:
        """Turn decoder output ``(B, 12)`` into ``T_map_cam (B, 4, 4)``, rotation projected onto SO(3) by SVD."""
        m_b34 = pose_b12.reshape(-1, 3, 4)
        U, _, Vh = torch.linalg.svd(m_b34[:, :, :3])
        det_b = torch.det(U @ Vh)
        D = torch.diag_embed(torch.stack([torch.ones_like(det_b), torch.ones_like(det_b), det_b], dim=-1))
        T = torch.eye(4, dtype=pose_b12.dtype, device=pose_b12.device).repeat(m_b34.shape[0], 1, 1)
        T[:, :3, :3] = U @ D @ Vh
        T[:, :3, 3] = m_b34[:, :, 3] * self.pose_scale + self.pose_centre_3
        return T

    # -- checkpoints -----------------------------------------------------------

    def to_checkpoint(self) -> dict[str, Any]:
        """Everything needed to rebuild this model: config, scene box and weights (CPU tensors)."""
        return {"kind": "nerfp", "config": self.cfg.to_dict(), "bounds_min": self.bounds_min_3.tolist(),
                "bounds_max": self.bounds_max_3.tolist(),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> "NerfP":
        """Rebuild a model written by :meth:`to_checkpoint`."""
        if not isinstance(ckpt, Mapping) or ckpt.get("kind") != "nerfp":
            kind = ckpt.get("kind") if isinstance(ckpt, Mapping) else type(ckpt).__name__
            raise ValueError(f"not a NeRF-P checkpoint (kind {kind!r}, expected 'nerfp')")
        model = cls(NerfPConfig.from_dict(ckpt["config"]), ckpt["bounds_min"], ckpt["bounds_max"])
        model.load_state_dict(ckpt["state_dict"])
        return model
