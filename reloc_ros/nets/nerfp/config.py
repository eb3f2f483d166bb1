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

"""NeRF-P settings: :class:`NerfPConfig` (architecture, rendering, pose branch) and its limits."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

MAX_GRID_RESOLUTION = 512
"""Largest ``max_resolution``: 512^3 cells x 2 float32 features is already 1 GiB before Adam's state."""


def is_int(v: object) -> bool:
    """Tell whether ``v`` is an int (a bool is not one)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_real(v: object) -> bool:
    """Tell whether ``v`` is a finite int or float (a bool is not one)."""
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
            if not is_int(v) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not is_int(self.max_resolution) or not self.base_resolution <= self.max_resolution \
                <= MAX_GRID_RESOLUTION:
            raise ValueError(f"max_resolution must be an integer in [base_resolution={self.base_resolution}, "
                             f"{MAX_GRID_RESOLUTION}], got {self.max_resolution!r}")
        if self.base_resolution < 2:
            raise ValueError(f"base_resolution must be >= 2 cells, got {self.base_resolution!r}")
        if not isinstance(self.view_dependent, bool):
            raise ValueError(f"view_dependent must be True or False, got {self.view_dependent!r}")
        if not is_real(self.near) or self.near < 0:
            raise ValueError(f"near must be a finite distance >= 0 m, got {self.near!r}")
        if not is_real(self.far) or self.far <= self.near:
            raise ValueError(f"far must be a finite distance > near ({self.near} m), got {self.far!r}")
        if not is_int(self.pose_feature_dim) or self.pose_feature_dim < 0:
            raise ValueError(f"pose_feature_dim (the paper's k) must be an integer >= 0 (0: no pose branch), "
                             f"got {self.pose_feature_dim!r}")
        pool = self.posemap_pool
        if not isinstance(pool, tuple) or len(pool) != 2 or not all(is_int(p) and p >= 1 for p in pool):
            raise ValueError(f"posemap_pool must be two positive integers (rows, cols), got {pool!r}")
        hid = self.decoder_hidden
        if not isinstance(hid, tuple) or not all(is_int(h) and h >= 1 for h in hid):
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
