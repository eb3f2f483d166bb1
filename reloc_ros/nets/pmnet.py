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

r"""PMNet's APRNet (Lin et al., ECCV 2024, section 3.1) and its losses.

APRNet = a *pose estimator* plus an *image-feature extractor* whose features
are "fused by feature maps from each convolutional block in the pose
estimator", as in DFNet [7]::

    image -> ResNet (the pose estimator's backbone) -> c2, c3, c4, c5
          |                       \\-> pooled -> FC embedding -> dropout -> t, q  (PoseNet's head)
          \\-> 1x1 conv of each level to ``fusion_channels``, upsampled to c3's
             resolution (stride 8), summed, 3x3 conv + ReLU -> fused feature map

The pose estimator is exactly reloc_ros's PoseNet-style
:class:`~reloc_ros.nets.apr.APRNet` ('fc' head, dropout 0.5): at inference PMNet
*is* that network, so it exports, calibrates its covariance (MC dropout) and
runs on the robot like the other APRs, with no NeRF. The fusion layers exist
only for training.

How the paper is read (open points, and what is chosen):

* *Backbone*: the paper uses ImageNet VGG-16; reloc_ros uses its ResNets
  from random weights (no ImageNet weights here; ``--backbone-weights`` loads
  them when a user has the file).
* *Fusion*: DFNet's extractor is not described in the PMNet paper. Read as a
  feature-pyramid-style sum of all four stages at stride 8 with
  ``fusion_channels`` = 64 channels.
* *L_pose* (stated: "L2 loss"): mean squared error over the 3 x 4 pose
  matrix ``[R | t]`` (DFNet's form), positions in the trainer's normalised
  units so rotation and translation entries have comparable scale; ``R``
  comes from the predicted quaternion after normalisation.
* *L_image* (stated: "the triplet loss from [7]"): DFNet's triplet with
  in-batch negatives: anchor = features of the real image, positive = those
  of the image NeRF-P rendered at the same (true) pose, negative = the
  harder (closer) of the batch's other real and rendered images (the batch
  rolled by one). Margin 1.0 (DFNet's). Deviation: each image's flattened
  feature map is L2-normalised first, because here the extractor trains
  from scratch and could otherwise meet the margin by growing its features.
* *L_posemap* (stated: "cosine similarity loss"): ``1 - cos`` between the
  k-dimensional PoseMap pixels rendered at the predicted and at the true
  pose, averaged over pixels; gradients reach the prediction through
  NeRF-P's differentiable rendering (NeRF-P is frozen).
* *L_rvs* (eq. 1): ``||p_rvs_hat - p_rvs||_2 + ||F_rvs_hat - F_rvs||_2`` on
  views NeRF-P rendered at perturbed poses; both terms as mean squared
  errors (the pose term is ``L_pose``'s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn
import torch.nn.functional as F

from reloc_ros.data.types import Intrinsics
from reloc_ros.nets.apr import APRConfig, APRNet, build_apr
from reloc_ros.nets.nerfp import NerfP, camera_rays

LOSS_NAMES: tuple[str, ...] = ("pose", "image", "posemap", "rvs")
"""The switchable terms of eq. 2 (the Table 5 ablation)."""
ALIGN_LOSS_NAMES: tuple[str, ...] = ("image", "posemap")
"""The terms of eq. 5 (PMNet_ud's self-supervised alignment)."""
TRIPLET_MARGIN = 1.0
"""DFNet's triplet margin."""


def parse_losses(text: str | Sequence[str], valid: Sequence[str] = LOSS_NAMES) -> tuple[str, ...]:
    """Parse ``'pose,image'`` into a tuple of loss names, in ``valid``'s order; ValueError names a bad one."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    bad = [n for n in names if n not in valid]
    if bad:
        raise ValueError(f"unknown PMNet loss {', '.join(repr(b) for b in bad)}; valid: {', '.join(valid)}")
    if not names:
        raise ValueError(f"no PMNet loss selected; choose from {', '.join(valid)}")
    return tuple(n for n in valid if n in names)


@dataclass(frozen=True)
class PMNetConfig:
    """APRNet's architecture: the pose estimator's :class:`APRConfig` plus the fusion width."""

    backbone: str = "resnet18"
    dropout: float = 0.5
    fusion_channels: int = 64

    def apr_config(self) -> APRConfig:
        return APRConfig(backbone=self.backbone, head="fc", dropout=self.dropout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PMNetConfig":
        return cls(**dict(d))


class FeatureFusion(nn.Module):
    """DFNet-style multi-level features: every backbone stage, 1x1 conv, upsampled to stride 8, summed."""

    def __init__(self, level_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in level_channels)
        self.out = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        size = levels[1].shape[-2:]  # c3: stride 8
        fused = sum(F.interpolate(lat(c), size=size, mode="bilinear", align_corners=False)
                    for lat, c in zip(self.lateral, levels))
        return self.out(fused)


class PMNet(nn.Module):
    """APRNet: ``forward(x)`` -> ``(t_b3, q_b4, features_bchw)``; ``pose_net`` is what gets exported."""

    def __init__(self, cfg: PMNetConfig, pose_net: APRNet) -> None:
        super().__init__()
        self.cfg = cfg
        self.pose_net = pose_net
        self.fusion = FeatureFusion(pose_net.backbone.level_channels, cfg.fusion_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        levels = self.pose_net.backbone.forward_levels(x)
        pooled = torch.flatten(self.pose_net.backbone.avgpool(levels[-1]), 1)
        h = self.pose_net.dropout(self.pose_net.embed_act(self.pose_net.embed(pooled)))
        return self.pose_net.fc_t(h), self.pose_net.fc_q(h), self.fusion(levels)


def build_pmnet(cfg: PMNetConfig | None = None, backbone_weights: str | None = None) -> PMNet:
    cfg = cfg or PMNetConfig()
    return PMNet(cfg, build_apr(cfg.apr_config(), backbone_weights=backbone_weights))


# ---------------------------------------------------------------------------
# Poses in torch
# ---------------------------------------------------------------------------

def quat_to_matrix_t(q_b4: torch.Tensor) -> torch.Tensor:
    """Return rotation matrices ``(B, 3, 3)`` of (not necessarily unit) quaternions ``(x, y, z, w)``; differentiable."""
    x, y, z, w = F.normalize(q_b4, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)


def pose_matrix_t(t_b3: torch.Tensor, q_b4: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 4)`` matrices ``[R(q) | t]``; differentiable in both."""
    return torch.cat([quat_to_matrix_t(q_b4), t_b3[:, :, None]], dim=2)


def to_map_poses(m_b34: torch.Tensor, mean_3: torch.Tensor, scale: float) -> torch.Tensor:
    """Turn ``[R | t_normalised]`` into ``T_map_cam (B, 4, 4)`` in metres (what NeRF-P renders)."""
    b = m_b34.shape[0]
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=m_b34.dtype, device=m_b34.device).expand(b, 1, 4)
    t = m_b34[:, :, 3] * scale + mean_3.to(m_b34)
    return torch.cat([torch.cat([m_b34[:, :, :3], t[:, :, None]], dim=2), bottom], dim=1)


def perturb_poses(T_n44: torch.Tensor, translation_m: float, rotation_deg: float,
                  gen: torch.Generator) -> torch.Tensor:
    """Random view synthesis poses: uniform offsets in ``[-d, d]`` per axis, rotation about a random axis.

    The paper's ``delta_t = [0.2, 0.2, 0.2] m`` is read as a uniform draw in
    ``[-0.2, 0.2]`` m per map axis, and ``delta_r = [10, 10, 10] deg`` as a
    rotation of up to 10 deg about each camera axis (applied as one rotation
    vector with components uniform in ``[-10, 10]`` deg, in the camera frame).
    """
    n = T_n44.shape[0]
    dt = (torch.rand((n, 3), generator=gen, dtype=torch.float64) * 2 - 1) * translation_m
    rv = (torch.rand((n, 3), generator=gen, dtype=torch.float64) * 2 - 1) * torch.deg2rad(
        torch.tensor(rotation_deg, dtype=torch.float64))
    R_delta = torch.linalg.matrix_exp(torch.stack([
        torch.zeros(n, dtype=torch.float64), -rv[:, 2], rv[:, 1],
        rv[:, 2], torch.zeros(n, dtype=torch.float64), -rv[:, 0],
        -rv[:, 1], rv[:, 0], torch.zeros(n, dtype=torch.float64)], dim=-1).reshape(n, 3, 3))
    out = T_n44.to(torch.float64).clone()
    out[:, :3, :3] = out[:, :3, :3] @ R_delta
    out[:, :3, 3] = out[:, :3, 3] + dt
    return out.to(T_n44.dtype)


# ---------------------------------------------------------------------------
# Rendering many cameras at once (NeRF-P frozen; gradients reach the poses)
# ---------------------------------------------------------------------------

def render_posemaps(nerf: NerfP, T_b44: torch.Tensor, K: Intrinsics) -> torch.Tensor:
    """Render PoseMaps ``(B, h, w, k)`` at ``1 / posemap_stride`` of the image; differentiable in the poses."""
    rays = [camera_rays(T, K, nerf.cfg.posemap_stride) for T in T_b44]
    h, w = rays[0][0].shape[:2]
    o = torch.cat([r[0].reshape(-1, 3) for r in rays])
    d = torch.cat([r[1].reshape(-1, 3) for r in rays])
    return nerf.render_rays(o, d, with_pose=True)["posemap_rk"].reshape(len(rays), h, w, -1)


def render_views(nerf: NerfP, T_b44: torch.Tensor, K: Intrinsics, chunk: int = 16384) -> torch.Tensor:
    """Render colour ``(B, H, W, 3)`` in 0..1 at the camera's resolution; differentiable in the poses."""
    rays = [camera_rays(T, K, 1) for T in T_b44]
    o = torch.cat([r[0].reshape(-1, 3) for r in rays])
    d = torch.cat([r[1].reshape(-1, 3) for r in rays])
    rgb = torch.cat([nerf.render_rays(o[i:i + chunk], d[i:i + chunk], with_pose=False)["rgb_r3"]
                     for i in range(0, o.shape[0], chunk)])
    return rgb.reshape(len(rays), K.height, K.width, 3).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def pose_loss(m_pred_b34: torch.Tensor, m_gt_b34: torch.Tensor) -> torch.Tensor:
    """L_pose: mean squared error over the 3 x 4 pose matrices (normalised positions)."""
    return F.mse_loss(m_pred_b34, m_gt_b34)


def image_triplet_loss(f_real: torch.Tensor, f_synth: torch.Tensor, margin: float = TRIPLET_MARGIN) -> torch.Tensor:
    """L_image: DFNet's triplet, real anchor, rendered positive, hardest in-batch negative (rolled batch)."""
    a = F.normalize(f_real.flatten(1), dim=1)
    p = F.normalize(f_synth.flatten(1), dim=1)
    d_ap = (a - p).norm(dim=1)
    d_an = torch.minimum((a - torch.roll(p, 1, 0)).norm(dim=1), (a - torch.roll(a, 1, 0)).norm(dim=1))
    return F.relu(d_ap - d_an + margin).mean()


def posemap_cosine_loss(pm_pred: torch.Tensor, pm_gt: torch.Tensor) -> torch.Tensor:
    """L_posemap: ``1 - cos`` between PoseMap pixels (over the k channels), averaged over pixels."""
    return (1.0 - F.cosine_similarity(pm_pred, pm_gt, dim=-1, eps=1e-6)).mean()


def rvs_loss(m_pred_b34: torch.Tensor, m_rvs_b34: torch.Tensor, pm_pred: torch.Tensor,
             pm_rvs: torch.Tensor) -> torch.Tensor:
    """L_rvs (eq. 1): pose error plus PoseMap error on randomly synthesised views."""
    return F.mse_loss(m_pred_b34, m_rvs_b34) + F.mse_loss(pm_pred, pm_rvs)
