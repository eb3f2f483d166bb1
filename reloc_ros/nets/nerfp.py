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

"""NeRF-P: a compact NeRF of a mapped scene with PMNet's pose branch (PoseMap, seed 003, section 3.2).

What it is
----------
A radiance field of one scene, fitted to posed images (and depth, when a
depth camera recorded it), plus the paper's *pose branch*: every sample point
on a ray also gets a ``k``-dimensional pose feature ``f_i``, and the
*PoseMap* of a pixel is those features volume-rendered with the very weights
used for colour (eq. 3-4)::

    F = sum_i w_i f_i,   w_i = T_i (1 - exp(-sigma_i delta_i)),   T_i = exp(-sum_{j<i} sigma_j delta_j)

A *pose decoder* (MLPs) maps a rendered PoseMap back to the camera pose, which
is what teaches the pose branch to put pose information into the features.

Scene representation (the choice, and why)
------------------------------------------
A **multi-resolution dense feature grid** with trilinear interpolation
(``torch.nn.functional.grid_sample`` on 3-D volumes), Instant-NGP's level
layout (resolutions growing geometrically from ``base_resolution`` to
``max_resolution``, ``features_per_level`` each, concatenated), followed by a
small density MLP and a small colour MLP. Why a dense grid rather than a
hash table: in plain torch a hash grid is eight gathers and eight scatter-adds
per level, which is several times slower than one fused ``grid_sample`` call
on both CPU and GPU; ``grid_sample``'s CPU backward is deterministic; and a
mapped indoor scene at the resolutions a relocalizer renders (<= 256 cells on
the longest side, a few cm for a room) fits in memory densely (256^3 x 2
float32 features is 134 MB; ``max_resolution`` is capped at
``MAX_GRID_RESOLUTION``). Grids follow the aspect ratio of the scene box, so a
corridor does not waste cells across its width. The 32 x 24 test scene (32
frames, 300 + 300 steps of 512 rays) fits in about 15 s on one CPU thread;
GPU speed at camera resolutions is not measured yet.

Scene bounds are an axis-aligned box: the camera centres plus what lies within
the maximum depth of them (:func:`scene_bounds`): the back-projected depth
pixels when depth maps are given, otherwise the view frusta cut at
``cfg.far``; positions are normalised into it. Rays are clipped to the box,
and ``samples_per_ray`` stratified samples are placed between the entry and
exit points (no occupancy grid or proposal network: left open, raise
``samples_per_ray`` on a GPU instead).

Camera convention
-----------------
``T_map_cam`` of the optical frame (z forward, x right, y down); pixel centres
at integer coordinates, so the ray through pixel ``(u, v)`` has direction
``R_map_cam K^-1 [u, v, 1]``. Directions are *not* normalised: their z
component in the camera frame is 1, so the ray parameter ``t`` is the z-depth
in metres and ``depth`` = ``sum_i w_i t_i`` is directly comparable with a depth
camera. Distances between samples (``delta`` in eq. 4) are metric
(``dt * |d|``).

How the paper is read (section 3.1 "Pipeline", 3.2 and 4.1 "NeRF-P settings")
-------------------------------------------------------------------------------
* *Two stages* (stated): stage 1 trains density and colour only ("to maintain
  the quality of the original NeRF, the rendering branch is trained without
  considering pose features"); stage 2 freezes those weights and trains only
  the pose branch and the decoder. :func:`fit_nerfp` does exactly that
  (``requires_grad`` off for the grid, density and colour MLPs in stage 2).
* *Pose branch input* (open): "an MLP encoder after the static branch".
  Read as an MLP on what the static (density) branch produces at the sample:
  its geometry feature, the grid encoding it read, and the view direction
  (the static branch of NeRF-H feeds the colour head the same way). Output:
  ``k`` unconstrained numbers per sample (``cfg.pose_feature_dim``).
* *Rendering* (stated, eq. 3-4): the same ``w_i`` as colour; a pixel whose ray
  leaves the box with transmittance left gets a zero feature there (no
  background feature), as colour gets a black background.
* *Decoder* (partly open): "the PoseMap is downsampled by a factor of 16 with
  the H x W dimensions flattened, followed by 4 layers of MLPs (1536, 256,
  128, 12)". Read as: render the PoseMap at ``1 / posemap_stride`` of the
  image resolution (one ray per ``stride x stride`` block, the paper's 16 is
  the default), average-pool it to a fixed ``posemap_pool`` grid so the
  decoder does not depend on the camera's resolution (the paper's flatten
  would tie the decoder to one image size), flatten, then MLPs of
  ``decoder_hidden`` widths with ReLU and a final linear layer to 12 numbers.
  ``decoder_hidden=(1536, 256, 128)`` with ``pose_feature_dim=256`` gives the
  paper's sizes; the defaults are smaller to train on a CPU.
* *What the decoder predicts and its loss* (partly open): 12 numbers = the
  3 x 4 pose matrix ``[R | t]`` flattened row-major (the paper's pose "is
  represented as a 3 x 4 matrix"), trained with an L2 (mean squared) loss,
  the loss the paper uses for poses ("we employ L2 loss to compute
  L_pose") and the one DFNet [7], whose code NeRF-P is built on, applies to
  the flattened 3 x 4 matrix. Positions are normalised into the scene box
  (minus its centre, divided by half its largest side) so rotation and
  translation entries have comparable scale; :meth:`NerfP.pose_matrix` undoes
  it and projects the rotation block onto SO(3) (SVD).
* *Sizes* (stated, not copied): C = 256 pose channels in the paper; the
  default here is 32 (CPU). The NeRF-W style appearance / transient heads
  of NeRF-H (the paper's base) are not built: a mapping run of one robot has
  no per-image appearance to explain, and they are not part of the pose
  branch.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError

log = logging.getLogger(__name__)

MIN_FRAMES = 8
"""Fewest training frames :func:`fit_nerfp` accepts: fewer cannot constrain a radiance field."""

MAX_GRID_RESOLUTION = 512
"""Largest ``max_resolution``: 512^3 cells x 2 float32 features is already 1 GiB before Adam's state."""

POSE_VECTOR_DIM = 12
"""What the pose decoder predicts: the 3 x 4 matrix ``[R | t]``, row-major, ``t`` normalised to the scene box."""

_SH_DIM = 9  # spherical harmonics up to degree 2: enough view dependence for indoor surfaces, little to overfit


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class NerfPConfig:
    """Architecture and rendering settings of a NeRF-P; stored in checkpoints (``to_dict``).

    Attributes:
        levels: number of grid levels (Instant-NGP: 16).
        features_per_level: features stored per grid vertex and level (Instant-NGP: 2).
        base_resolution: cells along the scene box's longest side at the coarsest level.
        max_resolution: cells along the longest side at the finest level (at most ``MAX_GRID_RESOLUTION``).
        hidden_dim: width of the density and colour MLPs.
        geo_feat_dim: size of the geometry feature the density MLP passes to the colour and pose heads.
        view_dependent: colour (and pose features) depend on the view direction (spherical harmonics,
            degree 2); off for scenes whose surfaces are matte.
        samples_per_ray: stratified samples between the ray's entry into and exit from the scene box.
        near: closest rendered z-depth in metres.
        far: farthest rendered z-depth in metres; also the depth the scene box reaches without depth maps.
        pose_feature_dim: the paper's ``k``, channels of the PoseMap; 0 builds no pose branch.
        pose_hidden: width of the pose-branch MLP.
        posemap_stride: one PoseMap ray per ``stride x stride`` pixel block when decoding a pose (paper: 16).
        posemap_pool: ``(rows, cols)`` grid the PoseMap is average-pooled to before the decoder.
        decoder_hidden: widths of the pose decoder's hidden layers (paper: 1536, 256, 128).

    """

    levels: int = 8
    features_per_level: int = 2
    base_resolution: int = 8
    max_resolution: int = 128
    hidden_dim: int = 64
    geo_feat_dim: int = 15
    view_dependent: bool = True
    samples_per_ray: int = 64
    near: float = 0.05
    far: float = 12.0
    pose_feature_dim: int = 32
    pose_hidden: int = 64
    posemap_stride: int = 16
    posemap_pool: tuple[int, int] = (4, 4)
    decoder_hidden: tuple[int, ...] = (256, 128)

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; keep the frozen dataclass hashable and comparable.
        if isinstance(self.posemap_pool, list):
            object.__setattr__(self, "posemap_pool", tuple(self.posemap_pool))
        if isinstance(self.decoder_hidden, list):
            object.__setattr__(self, "decoder_hidden", tuple(self.decoder_hidden))
        for name in ("levels", "features_per_level", "base_resolution", "hidden_dim", "geo_feat_dim",
                     "samples_per_ray", "pose_hidden", "posemap_stride"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not _is_int(self.max_resolution) or not self.base_resolution <= self.max_resolution \
                <= MAX_GRID_RESOLUTION:
            raise ValueError(f"max_resolution must be an integer in [base_resolution={self.base_resolution}, "
                             f"{MAX_GRID_RESOLUTION}], got {self.max_resolution!r}")
        if self.base_resolution < 2:
            raise ValueError(f"base_resolution must be >= 2 cells, got {self.base_resolution!r}")
        if not isinstance(self.view_dependent, bool):
            raise ValueError(f"view_dependent must be True or False, got {self.view_dependent!r}")
        if not _is_real(self.near) or self.near < 0:
            raise ValueError(f"near must be a finite distance >= 0 m, got {self.near!r}")
        if not _is_real(self.far) or self.far <= self.near:
            raise ValueError(f"far must be a finite distance > near ({self.near} m), got {self.far!r}")
        if not _is_int(self.pose_feature_dim) or self.pose_feature_dim < 0:
            raise ValueError(f"pose_feature_dim (the paper's k) must be an integer >= 0 (0: no pose branch), "
                             f"got {self.pose_feature_dim!r}")
        pool = self.posemap_pool
        if not isinstance(pool, tuple) or len(pool) != 2 or not all(_is_int(p) and p >= 1 for p in pool):
            raise ValueError(f"posemap_pool must be two positive integers (rows, cols), got {pool!r}")
        hid = self.decoder_hidden
        if not isinstance(hid, tuple) or not all(_is_int(h) and h >= 1 for h in hid):
            raise ValueError(f"decoder_hidden must be a tuple of positive integers, got {hid!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (JSON- and ``torch.save``-friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NerfPConfig":
        """Rebuild a config from :meth:`to_dict` output; absent fields take their defaults.

        Raises:
            ValueError: on unknown keys or invalid values.

        """
        if not isinstance(d, Mapping):
            raise ValueError(f"NeRF-P config must be a mapping of field -> value, got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ValueError(f"unknown NeRF-P config keys {unknown}; valid keys: {', '.join(known)}")
        return cls(**dict(d))

    def grid_resolutions(self) -> list[int]:
        """Cells along the longest box side per level, geometric from base to max (Instant-NGP eq. 2-3)."""
        if self.levels == 1:
            return [self.base_resolution]
        growth = math.exp((math.log(self.max_resolution) - math.log(self.base_resolution)) / (self.levels - 1))
        return [int(math.floor(self.base_resolution * growth ** lvl + 1e-6)) for lvl in range(self.levels)]


# ---------------------------------------------------------------------------
# Rays and volume rendering
# ---------------------------------------------------------------------------

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
        if not _is_int(chunk) or chunk < 1:
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


# ---------------------------------------------------------------------------
# Scene bounds, metrics
# ---------------------------------------------------------------------------

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
        if max_depth is None or not _is_real(max_depth) or max_depth <= 0:
            raise ValueError(f"scene bounds without depth maps need max_depth > 0 m, got {max_depth!r}")
        u = np.array([-0.5, K.width - 0.5, -0.5, K.width - 0.5])
        v = np.array([-0.5, -0.5, K.height - 0.5, K.height - 0.5])
        c_43 = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones(4)], axis=-1) * float(max_depth)
        pts.append((np.einsum("nij,cj->nci", T_n44[:, :3, :3], c_43) + T_n44[:, None, :3, 3]).reshape(-1, 3))
    all_p3 = np.concatenate(pts, axis=0)
    lo, hi = all_p3.min(0), all_p3.max(0)
    pad = margin * float((hi - lo).max()) + 1e-3  # + 1 mm: a box of one camera and no depth is not flat
    return lo - pad, hi + pad


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error of 0..1 intensities."""
    return float(-10.0 * math.log10(max(float(mse), 1e-12)))


def mean_colour_psnr(train_images_nhw3: np.ndarray, test_images_nhw3: np.ndarray) -> float:
    """Mean per-frame PSNR of the best constant image: the mean colour of the training images.

    The baseline a radiance field must beat to have learned anything about the scene.
    """
    mean_3 = np.asarray(train_images_nhw3, dtype=np.float64).reshape(-1, 3).mean(0) / 255.0
    test = np.asarray(test_images_nhw3, dtype=np.float64) / 255.0
    return float(np.mean([psnr_from_mse(np.mean((img - mean_3) ** 2)) for img in test]))


def is_oom(err: BaseException) -> bool:
    """Tell whether an exception is a CPU or CUDA out-of-memory error."""
    msg = str(err).lower()
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in msg or "can't allocate memory" in msg


def psnr(model: NerfP, images_nhw3: np.ndarray, poses_n44: np.ndarray, K: Intrinsics, chunk: int = 8192) -> float:
    """Mean per-frame PSNR (dB) of the model's renders of ``images_nhw3`` (uint8) at ``poses_n44``."""
    images = np.asarray(images_nhw3)
    poses = np.asarray(poses_n44, dtype=np.float64).reshape(-1, 4, 4)
    if images.ndim != 4 or images.shape[1:] != (K.height, K.width, 3) or len(images) != len(poses):
        raise ValueError(f"psnr needs N x {K.height} x {K.width} x 3 images and as many poses, got images "
                         f"{images.shape} and {len(poses)} poses")
    vals = []
    try:
        with torch.no_grad():
            for img, T in zip(images, poses):
                rgb = model.render_image(T, K, chunk=chunk, with_pose=False)["rgb_hw3"].cpu().double().numpy()
                vals.append(psnr_from_mse(np.mean((rgb - img / 255.0) ** 2)))
    except RuntimeError as e:
        if is_oom(e):
            raise RelocError(f"NeRF-P ran out of memory rendering {K.width}x{K.height} images ({e}); lower "
                             f"chunk (now {chunk})") from e
        raise
    return float(np.mean(vals)) if vals else float("nan")


# ---------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------

def _check_inputs(images: np.ndarray, poses: np.ndarray, K: Intrinsics, depths: np.ndarray | None,
                  steps_rgb: int, steps_pose: int, batch_rays: int, lr: float, lr_pose: float,
                  depth_weight: float) -> None:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be N x H x W x 3 uint8 RGB, got {images.dtype} {images.shape}")
    if images.shape[1:3] != (K.height, K.width):
        raise ValueError(f"images are {images.shape[2]}x{images.shape[1]} but the intrinsics are for "
                         f"{K.width}x{K.height}")
    if poses.shape != (len(images), 4, 4) or not np.all(np.isfinite(poses)):
        raise ValueError(f"poses must be {len(images)} finite 4x4 T_map_cam matrices (one per image), got "
                         f"{poses.shape}")
    if depths is not None and depths.shape != images.shape[:3]:
        raise ValueError(f"depths must be {images.shape[:3]} (one z-depth map in metres per image), got "
                         f"{depths.shape}")
    for name, v in (("steps_rgb", steps_rgb), ("steps_pose", steps_pose)):
        if not _is_int(v) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    if not _is_int(batch_rays) or batch_rays < 1:
        raise ValueError(f"batch_rays must be a positive integer, got {batch_rays!r}")
    for name, v in (("lr", lr), ("lr_pose", lr_pose)):
        if not _is_real(v) or v <= 0:
            raise ValueError(f"{name} must be a positive learning rate, got {v!r}")
    if not _is_real(depth_weight) or depth_weight < 0:
        raise ValueError(f"depth_weight must be >= 0, got {depth_weight!r}")


def _summary(losses: list[float], seconds: float) -> dict[str, Any]:
    n = len(losses)
    tenth = max(1, n // 10)
    return {"steps": n, "losses": losses, "seconds": seconds,
            "loss_start": float(np.mean(losses[:tenth])) if n else None,
            "loss_end": float(np.mean(losses[-tenth:])) if n else None}


def _adam(params: list[nn.Parameter], lr: float, steps: int) -> tuple[torch.optim.Optimizer, Any]:
    # Instant-NGP's Adam (betas 0.9/0.99, tiny eps: grid features get rare, small gradients) and an
    # exponential decay to lr/10 over the stage, which settles the grid without a hand-tuned schedule.
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99), eps=1e-15)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.1 ** (i / max(steps, 1)))
    return opt, sched


def _step(opt: torch.optim.Optimizer, sched: Any, loss: torch.Tensor, losses: list[float], bar: Any,
          error: str) -> None:
    """One optimiser and schedule step; RelocError (``error`` with the value) on a non-finite loss."""
    if not torch.isfinite(loss):
        raise RelocError(error.format(loss.item()))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    losses.append(float(loss.detach()))
    if len(losses) % 10 == 1:
        bar.set_postfix(loss=f"{losses[-1]:.4f}")


def _train_radiance(model: NerfP, images_nhw3: torch.Tensor, poses_n44: torch.Tensor, depths_nhw: torch.Tensor | None,
                    K: Intrinsics, steps: int, batch_rays: int, lr: float, depth_weight: float,
                    gen: torch.Generator, progress: bool) -> list[float]:
    from tqdm import tqdm

    model.freeze_radiance(False)
    opt, sched = _adam(model.radiance_parameters(), lr, steps)
    n, h, w = images_nhw3.shape[:3]
    dev = images_nhw3.device
    losses: list[float] = []
    every = max(1, steps // 10)
    bar = tqdm(range(steps), desc="NeRF-P stage 1 (colour, density)", unit="step", leave=False,
               disable=not progress)
    for step in bar:
        cam_r = torch.randint(n, (batch_rays,), generator=gen).to(dev)
        v_r = torch.randint(h, (batch_rays,), generator=gen).to(dev)
        u_r = torch.randint(w, (batch_rays,), generator=gen).to(dev)
        o_r3, d_r3 = pixel_rays(poses_n44, K, u_r.float(), v_r.float(), cam_r)
        out = model.render_rays(o_r3, d_r3, generator=gen, with_pose=False)
        gt_r3 = images_nhw3[cam_r, v_r, u_r].float() / 255.0
        loss_rgb = F.mse_loss(out["rgb_r3"], gt_r3)
        loss = loss_rgb
        depth_err = float("nan")
        if depths_nhw is not None and depth_weight > 0:
            gt_r = depths_nhw[cam_r, v_r, u_r]
            ok_r = torch.isfinite(gt_r) & (gt_r > 0)
            if bool(ok_r.any()):
                err_r = (out["depth_r"][ok_r] - gt_r[ok_r]).abs()
                depth_err = float(err_r.mean().detach())
                # L1 in box units (metres / half the box), so one weight suits a desk and a hall alike.
                loss = loss + depth_weight * err_r.mean() / model.pose_scale
        _step(opt, sched, loss, losses, bar, f"NeRF-P stage 1 loss became {{}} at step {step}; lower lr (now {lr})")
        if (step + 1) % every == 0 or step + 1 == steps:
            depth_txt = "" if math.isnan(depth_err) else f" depth L1 {depth_err:.3f} m"
            log.info("nerfp stage 1 step %d/%d loss %.4f batch psnr %.2f dB%s", step + 1, steps, losses[-1],
                     psnr_from_mse(float(loss_rgb.detach())), depth_txt)
    return losses


def _train_pose(model: NerfP, poses_n44: torch.Tensor, K: Intrinsics, steps: int, batch_rays: int, lr: float,
                gen: torch.Generator, progress: bool) -> list[float]:
    from tqdm import tqdm

    cfg = model.cfg
    model.freeze_radiance(True)  # the paper's stage 2: "the learned weights of the network are frozen"
    opt, sched = _adam(model.pose_parameters(), lr, steps)
    n = poses_n44.shape[0]
    dev = poses_n44.device
    s = cfg.posemap_stride
    hp, wp = K.height // s, K.width // s
    if hp < 1 or wp < 1:
        raise ValueError(f"posemap_stride {s} leaves no PoseMap pixel of a {K.width}x{K.height} image; use "
                         f"posemap_stride <= {min(K.width, K.height)}")
    # One PoseMap per frame in the batch: as many frames as batch_rays allows, at least one.
    frames = max(1, min(n, batch_rays // (hp * wp)))
    _, d0_hw3 = camera_rays(torch.eye(4, device=dev), K, s)  # camera-frame rays, moved per frame below
    target_n12 = model.pose_vector(poses_n44)
    losses: list[float] = []
    every = max(1, steps // 10)
    bar = tqdm(range(steps), desc="NeRF-P stage 2 (pose branch)", unit="step", leave=False, disable=not progress)
    for step in bar:
        idx_b = torch.randperm(n, generator=gen)[:frames].to(dev)
        T_b44 = poses_n44[idx_b]
        d_bp3 = torch.einsum("bij,pj->bpi", T_b44[:, :3, :3], d0_hw3.reshape(-1, 3))
        o_bp3 = T_b44[:, None, :3, 3].expand_as(d_bp3)
        out = model.render_rays(o_bp3.reshape(-1, 3), d_bp3.reshape(-1, 3), generator=gen, with_pose=True)
        pred_b12 = model.decode_pose(out["posemap_rk"].reshape(len(idx_b), hp, wp, -1))
        loss = F.mse_loss(pred_b12, target_n12[idx_b])  # L2 on the flattened 3 x 4 pose, as DFNet
        _step(opt, sched, loss, losses, bar,
              f"NeRF-P stage 2 loss became {{}} at step {step}; lower lr_pose (now {lr})")
        if (step + 1) % every == 0 or step + 1 == steps:
            log.info("nerfp stage 2 step %d/%d pose loss %.5f", step + 1, steps, losses[-1])
    return losses


def fit_nerfp(images_nhw3: np.ndarray, poses_n44: np.ndarray, K: Intrinsics, depths_nhw: np.ndarray | None = None,
              cfg: NerfPConfig | None = None, steps_rgb: int = 2000, steps_pose: int = 500, batch_rays: int = 4096,
              lr: float = 1e-2, seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
              holdout: Sequence[int] | None = None, lr_pose: float = 3e-3, depth_weight: float = 0.1,
              model: NerfP | None = None) -> tuple[NerfP, dict[str, Any]]:
    """Fit a NeRF-P to posed images in the paper's two stages; return ``(model, report)``.

    Args:
        images_nhw3: ``N x H x W x 3`` uint8 RGB.
        poses_n44: ``T_map_cam`` of the optical frame of each image.
        K: intrinsics of the images.
        depths_nhw: z-depth in metres (NaN or 0 where invalid), or ``None``;
            when given, an L1 loss on rendered depth (``depth_weight``, in
            units of half the scene box) joins stage 1, and the scene box is
            fitted to the back-projected depth.
        cfg: architecture (default :class:`NerfPConfig`).
        steps_rgb: stage-1 steps (density and colour).
        steps_pose: stage-2 steps (pose branch and decoder, radiance frozen);
            skipped without a pose branch.
        batch_rays: rays per step (stage 2: as many whole PoseMaps as fit).
        lr: stage-1 learning rate; ``lr_pose``: stage 2's.
        seed: seeds the initial weights and every random draw (one
            ``torch.Generator``); the same call gives the same model on a CPU.
        device: torch device to train on.
        progress: show tqdm bars.
        holdout: frame indices left out of training; the report gives their
            PSNR and that of the mean-colour image.
        model: continue training this model (its box and config win)
            instead of building one; e.g. ``steps_rgb=0`` reruns stage 2 only.

    Returns:
        The model (stage-1 weights frozen when stage 2 ran) and a report:
        ``stage_rgb`` / ``stage_pose`` (``losses`` per step, ``loss_start`` /
        ``loss_end`` over the first / last tenth, ``seconds``),
        ``holdout_psnr``, ``holdout_psnr_mean_colour``, frame counts, the
        scene box and the config.

    Raises:
        RelocError: fewer than ``MIN_FRAMES`` training frames, a loss that
            became non-finite, or memory ran out (lower ``batch_rays`` or the
            image resolution).
        ValueError: malformed inputs.

    """
    images = np.asarray(images_nhw3)
    poses = np.asarray(poses_n44, dtype=np.float64)
    depths = None if depths_nhw is None else np.asarray(depths_nhw, dtype=np.float32)
    _check_inputs(images, poses, K, depths, steps_rgb, steps_pose, batch_rays, lr, lr_pose, depth_weight)
    cfg = model.cfg if model is not None else (cfg or NerfPConfig())
    n_all = len(images)
    hold = np.unique(np.asarray([] if holdout is None else list(holdout), dtype=np.int64))
    if hold.size and (hold.min() < 0 or hold.max() >= n_all):
        raise ValueError(f"holdout indices must lie in [0, {n_all - 1}], got {hold.min()}..{hold.max()}")
    train = np.setdiff1d(np.arange(n_all), hold)
    if len(train) < MIN_FRAMES:
        raise RelocError(f"NeRF-P needs at least {MIN_FRAMES} training frames to fit a scene, got {len(train)} "
                         f"({n_all} given, {hold.size} held out)")
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(int(seed))
    if model is None:
        depth_train = None if depths is None else depths[train]
        lo, hi = scene_bounds(poses[train], K, depth_train, max_depth=cfg.far)
        # Initial weights from the seed without touching the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = NerfP(cfg, lo, hi)
        model.encoding.reset_parameters(gen)
    model = model.to(dev)
    log.info("fitting NeRF-P on %d frames (%d held out), %dx%d, box %s .. %s m, %d + %d steps on %s",
             len(train), hold.size, K.width, K.height, np.round(model.bounds_min_3.tolist(), 2).tolist(),
             np.round(model.bounds_max_3.tolist(), 2).tolist(), steps_rgb, steps_pose, dev)
    report: dict[str, Any] = {"frames_train": int(len(train)), "frames_holdout": int(hold.size),
                              "bounds_min": model.bounds_min_3.tolist(), "bounds_max": model.bounds_max_3.tolist(),
                              "config": cfg.to_dict(), "device": str(dev), "seed": int(seed)}
    try:
        img_t = torch.as_tensor(images[train]).to(dev)
        pose_t = torch.as_tensor(poses[train], dtype=torch.float32).to(dev)
        depth_t = None if depths is None else torch.as_tensor(depths[train]).to(dev)
        model.train()
        t0 = time.perf_counter()
        losses = _train_radiance(model, img_t, pose_t, depth_t, K, steps_rgb, batch_rays, lr, depth_weight, gen,
                                 progress) if steps_rgb else []
        report["stage_rgb"] = _summary(losses, time.perf_counter() - t0)
        t0 = time.perf_counter()
        losses = []
        if model.has_pose_branch and steps_pose:
            losses = _train_pose(model, pose_t, K, steps_pose, batch_rays, lr_pose, gen, progress)
        report["stage_pose"] = _summary(losses, time.perf_counter() - t0)
        model.eval()
        report["holdout_psnr"] = report["holdout_psnr_mean_colour"] = None
        if hold.size:
            report["holdout_psnr"] = psnr(model, images[hold], poses[hold], K, chunk=batch_rays)
            report["holdout_psnr_mean_colour"] = mean_colour_psnr(images[train], images[hold])
            log.info("NeRF-P held-out PSNR %.2f dB (mean-colour image %.2f dB) on %d frames",
                     report["holdout_psnr"], report["holdout_psnr_mean_colour"], hold.size)
    except RuntimeError as e:
        if isinstance(e, RelocError) or not is_oom(e):
            raise
        raise RelocError(f"NeRF-P ran out of memory on {dev} fitting {K.width}x{K.height} images with "
                         f"batch_rays={batch_rays} ({e}); lower batch_rays or the image resolution") from e
    return model, report
