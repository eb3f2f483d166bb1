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

"""Training data for pose regression: normalised targets, time-block splits, augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reloc_ros.geometry import pose_to_tq
from reloc_ros.nets.backbones import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class PoseNormaliser:
    """Positions as ``(p - mean) / scale``, so targets are O(1) whatever the map's size.

    ``scale`` is the RMS distance of the training positions from their mean.
    Regressing raw metres with PoseNet's beta-weighted loss is what makes a
    randomly initialised network collapse to a constant pose (GUIDE, section 5).
    """

    mean: tuple[float, float, float]
    scale: float

    @classmethod
    def fit(cls, poses_n44: np.ndarray) -> "PoseNormaliser":
        p = np.asarray(poses_n44)[:, :3, 3]
        mean = p.mean(axis=0)
        scale = float(np.sqrt(((p - mean) ** 2).sum(axis=1).mean()))
        return cls(tuple(float(v) for v in mean), max(scale, 1e-3))  # a single spot still trains

    def normalise(self, t_n3: np.ndarray) -> np.ndarray:
        return (np.asarray(t_n3) - np.asarray(self.mean)) / self.scale

    def denormalise(self, t_n3: np.ndarray) -> np.ndarray:
        return np.asarray(t_n3) * self.scale + np.asarray(self.mean)


def split_time_blocks(n: int, val_fraction: float, blocks: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Split frames 0..n-1 (in time order) into train and validation by contiguous blocks.

    Neighbouring frames are nearly identical, so a random-frame split would
    measure memorisation. The sequence is cut into ``blocks`` contiguous blocks
    and some go to validation, spread over the whole sequence.

    A pitfall on looping routes: validation blocks spaced exactly one lap
    apart all cover the same stretch of the loop, which then is never trained
    on (evenly spaced blocks do this for some lap counts). Blocks are therefore
    picked with a golden-ratio stride, which does not line up with laps; with
    the defaults (20 blocks, 15 %: blocks 4, 12, 17) every held-out stretch of
    a route driven 2 to 4 times is trained on in another lap (tested).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {val_fraction}")
    blocks = max(2, min(blocks, n))
    n_val = min(blocks - 1, max(1, int(round(val_fraction * blocks))))
    edges = np.linspace(0, n, blocks + 1).astype(int)
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    val_blocks: list[int] = []
    k = 1
    while len(val_blocks) < n_val:
        b = int(((k * golden) % 1.0) * blocks)
        if b not in val_blocks:
            val_blocks.append(b)
        k += 1
    is_val = np.zeros(n, dtype=bool)
    for b in val_blocks:
        is_val[edges[b]:edges[b + 1]] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def pose_targets(poses_n44: np.ndarray, normaliser: PoseNormaliser) -> tuple[torch.Tensor, torch.Tensor]:
    """Return normalised positions (n, 3) and canonical unit quaternions (n, 4), (x, y, z, w)."""
    t, q = pose_to_tq(poses_n44)  # pose_to_tq gives the w >= 0 hemisphere
    return (torch.as_tensor(normaliser.normalise(t), dtype=torch.float32),
            torch.as_tensor(q, dtype=torch.float32))


def to_network_input(images_bhw3: torch.Tensor) -> torch.Tensor:
    """Turn uint8 RGB (B, H, W, 3) into the float (B, 3, H, W) ImageNet-normalised input."""
    return normalise_input(images_bhw3.permute(0, 3, 1, 2).float().div_(255.0))


def normalise_input(x_b3hw: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalise float RGB (B, 3, H, W) in 0..1 (e.g. rendered views; differentiable)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x_b3hw.device, dtype=x_b3hw.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x_b3hw.device, dtype=x_b3hw.dtype).view(1, 3, 1, 1)
    return (x_b3hw - mean) / std


def augment(images_bhw3: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Return a photometrically augmented uint8 batch; geometry is unchanged, so poses stay true.

    Per image: brightness and contrast (x0.7-1.3), saturation (x0.6-1.4),
    Gaussian blur for half of the batch (sigma 0.3-1.2 px), sensor noise
    (sigma up to 4 grey levels).
    """
    x = images_bhw3.permute(0, 3, 1, 2).float()
    b = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=gen)).to(x.device)

    grey = x.mean(dim=1, keepdim=True)
    x = grey + (x - grey) * u(0.6, 1.4)  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(0.7, 1.3) + mean * u(0.7, 1.3)  # contrast, brightness
    sigma = float(0.3 + 0.9 * torch.rand(1, generator=gen))
    k = torch.arange(-2, 3, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-k ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    blurred = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5).repeat(3, 1, 1, 1),
                       groups=3)
    blurred = F.conv2d(F.pad(blurred, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1).repeat(3, 1, 1, 1),
                       groups=3)
    use_blur = (torch.rand(b, 1, 1, 1, generator=gen) < 0.5).to(x.device)
    x = torch.where(use_blur, blurred, x)
    noise = torch.randn(x.shape, generator=gen).to(x.device) * u(0.0, 4.0)
    return (x + noise).clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1)
