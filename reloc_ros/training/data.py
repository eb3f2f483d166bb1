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

"""Training data for pose regression: normalised targets, validation splits, augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reloc_ros.geometry import pose_to_tq
from reloc_ros.nets.backbones import IMAGENET_MEAN, IMAGENET_STD
from reloc_ros.training.config import VAL_SPLITS


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


VIEW_WEIGHT = 0.5
"""In :func:`split_off_path`, one radian of viewing direction weighs as much as
this share of the route's RMS position spread (about 1 m for a 2 m spread)."""


def split_frames(poses_n44: np.ndarray, val_fraction: float, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (train, validation) frame indices by the split ``how`` (one of :data:`VAL_SPLITS`)."""
    if how == "spatial":
        return split_off_path(poses_n44, val_fraction)
    if how == "time":
        return split_time_blocks(len(poses_n44), val_fraction)
    raise ValueError(f"validation split '{how}' is not one of {', '.join(VAL_SPLITS)}")


REGION_M = 1.0
"""Size of the regions :func:`split_off_path` holds out: about one region per
occupied cell of this many metres. With 1 m the held-out frames of the
benchmark's mapping runs lie a median 0.15-0.24 m and 14-22 deg from the
nearest training frame, as far as its query routes lie from the whole mapping
run (0.18-0.21 m, 13-14 deg); a time-block split gives 0.03-0.05 m."""


def split_off_path(poses_n44: np.ndarray, val_fraction: float,
                   region_m: float = REGION_M) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole regions of pose space, so validation frames lie away from every training frame.

    A time-block split measures interpolation: a robot that drives its route
    twice passes every held-out stretch again in the other lap, and frames a
    few centimetres from a training frame are easy. A query of another day or
    route is off that path. Here each frame is a point of position and
    viewing direction (the optical axis, weighted by :data:`VIEW_WEIGHT`);
    k-means cuts them into regions of the route (one per occupied cube of
    ``region_m``, at least 10), every lap's pass through a place with a
    similar view falling in the same one, and whole regions are held out
    until ``val_fraction`` of the frames is reached. The regions are picked
    along the route with the golden-ratio stride of :func:`split_time_blocks`:
    farthest-point order would pick the route's extremes, where an absolute
    pose regressor would have to extrapolate. This is the blocked
    cross-validation of Roberts et al. ("Cross-validation strategies for data
    with temporal, spatial, hierarchical, or phylogenetic structure",
    Ecography 2017) applied to poses. Deterministic: no seed.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {val_fraction}")
    poses = np.asarray(poses_n44, dtype=np.float64)
    n = len(poses)
    if n < 2:
        raise ValueError(f"a validation split needs at least 2 frames, got {n}")
    p = poses[:, :3, 3]
    spread = max(float(np.sqrt(((p - p.mean(0)) ** 2).sum(1).mean())), 1e-3)
    features = np.concatenate([p / spread, VIEW_WEIGHT * poses[:, :3, 2]], axis=1)
    regions = max(10, len(np.unique(np.floor(p / region_m), axis=0)))
    labels = _kmeans(features, max(2, min(regions, n)))
    sizes = np.bincount(labels, minlength=labels.max() + 1)
    # Regions in route order (by their median frame), then the golden-ratio stride of the time-block split:
    # held-out regions spread along the whole route instead of gathering in its corners.
    by_label = np.argsort(labels, kind="stable")  # frame indices grouped by region, in time order within each
    groups = np.split(by_label, np.cumsum(sizes)[:-1])
    along = np.argsort([np.median(g) if len(g) else np.inf for g in groups])
    order = along[np.argsort([((i + 1) * (np.sqrt(5.0) - 1.0) / 2.0) % 1.0 for i in range(len(along))],
                             kind="stable")]
    target = max(1, int(round(val_fraction * n)))
    held: list[int] = []
    for c in order:
        if sizes[held].sum() >= target:
            break
        if sizes[c] and sizes[held].sum() + sizes[c] < n:  # never hold out everything
            held.append(int(c))
    is_val = np.isin(labels, held)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _kmeans(x: np.ndarray, k: int, iterations: int = 50) -> np.ndarray:
    """Plain Lloyd's k-means with farthest-point initialisation (deterministic); return each row's cluster."""
    centres = [x[0]]
    d2 = ((x - x[0]) ** 2).sum(1)
    for _ in range(1, k):
        centres.append(x[int(np.argmax(d2))])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.array(centres)
    labels = np.zeros(len(x), dtype=int)
    for _ in range(iterations):
        for start in range(0, len(x), 4096):  # bounded memory: (chunk, k) distances, not (n, k, dims)
            chunk = x[start:start + 4096]
            labels[start:start + 4096] = ((c ** 2).sum(1)[None] - 2.0 * chunk @ c.T).argmin(1)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(c)
        np.add.at(sums, labels, x)
        moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)
        if np.allclose(moved, c):
            break
        c = moved
    return labels


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
