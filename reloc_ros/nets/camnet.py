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

"""CamNet (Ding et al., ICCV 2019): one shared encoder, three branches, their losses.

Architecture (section 4.2)::

    image -> ResNet stem + layer1..3 (shared encoder)
          -> layer4 copy 'icr' -> global average pool -> f_r   retrieval descriptor (L2-normalised)
          -> layer4 copy 'pfr' -> global average pool -> f_c   coarse pose representation
          -> layer4 copy 'prp' -> global average pool -> f_f   fine pose representation

    pair (image 1 = anchor/query, image 2 = reference):
      ICR regressor  [f_r1 | f_r2] -> FC 512 -> ReLU -> FC 3 -> (d_1, d_2, alpha)   eq. 4, 6
      PFR regressor  [f_c1 | f_c2] -> FC 512 -> ReLU -> FC 7 -> (delta_t, delta_q)  eq. 8
      PRP regressor  [f_f1 | f_f2] -> FC 512 -> ReLU -> FC 7 -> (delta_t, delta_q)  eq. 9

The paper's encoder is ResNet-34 (512-D features); any of
:mod:`reloc_ros.nets.backbones` works, the features then have the backbone's
width (2048 for ResNet-50). The three layer4 copies start from the same
weights (the backbone's, ImageNet when ``--backbone-weights`` is given), as the
paper duplicates a pre-trained layer4.

Readings of what the paper leaves open (the pair labels' readings are in
:mod:`reloc_ros.training.camnet_pairs`):

* The retrieval descriptor is L2-normalised before the triplet loss and the
  nearest-neighbour search: eq. 7's margin of 0.1 only means something on a
  bounded scale (otherwise scaling features up satisfies it for free).
* Eq. 4 and 6 write ``||x_hat - x||_2`` of scalars: the absolute difference.
* The regressors have no output activation ("two fully connected layers").
  Their last layers start small, with the quaternion bias at the identity,
  as the APR heads do (:mod:`reloc_ros.nets.apr`), so relative poses start
  at "no motion".
* ``delta_t`` is in metres in the map frame (section 3.2 as printed).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn, Tensor

from reloc_ros.nets.backbones import BACKBONE_NAMES, Backbone, build_backbone

BRANCHES: tuple[str, ...] = ("icr", "pfr", "prp")
TRIPLET_MARGIN = 0.1
"""Beta of eq. 7 (section 3.1.3)."""
_REGRESSOR_INIT_GAIN = 0.05


@dataclass(frozen=True)
class CamNetConfig:
    """Architecture of a CamNet; stored in checkpoints and model metadata.

    Attributes:
        backbone: ResNet whose stem and layers 1-3 are the shared encoder
            (paper: ResNet-34).
        hidden: width of each regressor's first FC layer (paper: 512).
    """

    backbone: str = "resnet34"
    hidden: int = 512

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_NAMES:
            raise ValueError(f"unknown backbone '{self.backbone}'; valid backbones: {', '.join(BACKBONE_NAMES)}")
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {self.hidden!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CamNetConfig":
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ValueError(f"unknown CamNet config keys {unknown}; valid keys: {', '.join(known)}")
        return cls(**dict(d))


def _regressor(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    head = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))
    nn.init.kaiming_normal_(head[0].weight, nonlinearity="relu")
    nn.init.zeros_(head[0].bias)
    nn.init.normal_(head[2].weight, std=_REGRESSOR_INIT_GAIN / math.sqrt(hidden))
    nn.init.zeros_(head[2].bias)
    return head


class Encoder(nn.Module):
    """Shared stem + layers 1-3, then one layer4 copy and global pooling per branch."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.stem = nn.Sequential(backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool,
                                  backbone.layer1, backbone.layer2, backbone.layer3)
        self.layer4_icr = copy.deepcopy(backbone.layer4)
        self.layer4_pfr = copy.deepcopy(backbone.layer4)
        self.layer4_prp = copy.deepcopy(backbone.layer4)
        self.out_channels = int(backbone.out_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(f_r normalised, f_c, f_f)``, each ``(B, C)``, for ImageNet-normalised images."""
        c4 = self.stem(x)
        return self.branch("icr", c4), self.branch("pfr", c4), self.branch("prp", c4)

    def shared(self, x: Tensor) -> Tensor:
        return self.stem(x)

    def branch(self, name: str, c4: Tensor) -> Tensor:
        """One branch's pooled feature of the shared map (``f_r`` normalised)."""
        layer = {"icr": self.layer4_icr, "pfr": self.layer4_pfr, "prp": self.layer4_prp}[name]
        f = layer(c4).mean(dim=(2, 3))
        if name == "icr":
            f = F.normalize(f, dim=1)
        return f


class CamNet(nn.Module):
    """The trainable CamNet: :class:`Encoder` plus the ICR, PFR and PRP regressors."""

    def __init__(self, config: CamNetConfig | None = None, backbone: Backbone | None = None) -> None:
        super().__init__()
        config = CamNetConfig() if config is None else config
        if backbone is None:
            backbone = build_backbone(config.backbone)
        elif backbone.name != config.backbone:
            raise ValueError(f"backbone '{backbone.name}' does not match the config's '{config.backbone}'")
        self.config = config
        self.encoder = Encoder(backbone)
        c = self.encoder.out_channels
        self.feature_dim = c
        self.icr_head = _regressor(2 * c, config.hidden, 3)
        self.pfr_head = _regressor(2 * c, config.hidden, 7)
        self.prp_head = _regressor(2 * c, config.hidden, 7)
        for head in (self.pfr_head, self.prp_head):
            with torch.no_grad():
                head[2].bias[6] = 1.0  # delta_q starts at the identity (x, y, z, w)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.encoder(x)

    def icr(self, f1: Tensor, f2: Tensor) -> Tensor:
        """``(B, 3)``: predicted frustum distances ``d_1``, ``d_2`` and rotation angle ``alpha`` of pairs."""
        return self.icr_head(torch.cat([f1, f2], dim=1))

    def pfr(self, f1: Tensor, f2: Tensor) -> tuple[Tensor, Tensor]:
        """``(delta_t (B, 3) m, delta_q (B, 4) unnormalised)`` of pairs, coarse (eq. 8)."""
        out = self.pfr_head(torch.cat([f1, f2], dim=1))
        return out[:, :3], out[:, 3:]

    def prp(self, f1: Tensor, f2: Tensor) -> tuple[Tensor, Tensor]:
        """``(delta_t, delta_q)`` of pairs, precise (eq. 9)."""
        out = self.prp_head(torch.cat([f1, f2], dim=1))
        return out[:, :3], out[:, 3:]


def build_camnet(cfg: CamNetConfig | None = None, backbone_weights: str | None = None) -> CamNet:
    """Build a :class:`CamNet`, its encoder random or from torchvision-format backbone weights."""
    cfg = CamNetConfig() if cfg is None else cfg
    return CamNet(cfg, build_backbone(cfg.backbone, backbone_weights))


# --------------------------------------------------------------------------
# Losses (eq. 4, 6, 7, 8, 9)
# --------------------------------------------------------------------------

def frustum_angle_losses(pred_b3: Tensor, d1: Tensor, d2: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """``(L_frustum, L_angle)`` of eq. 4 and 6, averaged over the pairs."""
    l_frustum = ((pred_b3[:, 0] - d1).abs() + (pred_b3[:, 1] - d2).abs()).mean()
    l_angle = (pred_b3[:, 2] - alpha).abs().mean()
    return l_frustum, l_angle


def hard_triplet_loss(f_a: Tensor, f_e: Tensor, f_m: Tensor, f_h: Tensor, margin: float = TRIPLET_MARGIN) -> Tensor:
    """Eq. 7: the farthest easy pair nearer than the nearest moderate pair, and moderate nearer than hard.

    ``f_*`` are ``(N, C)`` descriptors of the anchors and of their easy,
    moderate and hard partners (row ``i`` of each belongs to anchor ``i``).
    """
    d_e = (f_a - f_e).norm(dim=1)
    d_m = (f_a - f_m).norm(dim=1)
    d_h = (f_a - f_h).norm(dim=1)
    return F.relu(d_e.max() - d_m.min() + margin) + F.relu(d_m.max() - d_h.min() + margin)


def relative_pose_loss(dt_pred: Tensor, dq_pred: Tensor, dt: Tensor, dq: Tensor) -> Tensor:
    """Eq. 8 / 9: ``|dt_hat - dt|_1 + |dq_hat / |dq_hat| - dq|_1``, averaged over pairs; 1:1 weighting."""
    dq_unit = dq_pred / dq_pred.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return ((dt_pred - dt).abs().sum(dim=1) + (dq_unit - dq).abs().sum(dim=1)).mean()


# --------------------------------------------------------------------------
# Quaternion helpers in torch, (x, y, z, w), shared by training and the export
# --------------------------------------------------------------------------

def quat_mul(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product ``a * b`` of ``(..., 4)`` quaternions in (x, y, z, w) order."""
    ax, ay, az, aw = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bx, by, bz, bw = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return torch.stack([aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw,
                        aw * bw - ax * bx - ay * by - az * bz], dim=-1)


def quat_unit_canonical(q: Tensor) -> Tensor:
    """Normalise ``(..., 4)`` quaternions and put them on the ``w >= 0`` hemisphere."""
    q = q / torch.sqrt((q * q).sum(dim=-1, keepdim=True)).clamp_min(1e-12)
    return torch.where(q[..., 3:4] < 0, -q, q)


def anchor_from_relative_t(t_ref: Tensor, q_ref: Tensor, dt: Tensor, dq: Tensor) -> tuple[Tensor, Tensor]:
    """Batched section 3.2: anchor position ``t_ref - dt`` and orientation ``R_ref dR^-1`` as a quaternion."""
    dq = quat_unit_canonical(dq)
    conj = dq * torch.tensor([-1.0, -1.0, -1.0, 1.0], dtype=dq.dtype, device=dq.device)
    return t_ref - dt, quat_unit_canonical(quat_mul(q_ref, conj))


def rotation_angle_t(q1: Tensor, q2: Tensor) -> Tensor:
    """Angle in radians between unit quaternions (sign-agnostic), elementwise over ``(..., 4)``."""
    dot = (q1 * q2).sum(dim=-1).abs().clamp(max=1.0)
    return 2.0 * torch.acos(dot)
