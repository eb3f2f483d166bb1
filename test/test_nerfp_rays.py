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

"""NeRF-P rays (reloc_ros.nets.nerfp.rays): pixel rays by hand, eq. 4's weights, the scene box."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reloc_ros.data.synth import synthetic_dataset
from reloc_ros.data.types import Intrinsics
from reloc_ros.nets.nerfp import camera_rays, pixel_rays, scene_bounds, volume_weights

FRAMES = 40


@pytest.fixture(scope="module")
def room():
    return synthetic_dataset(route="train", frames=FRAMES, seed=0, size=(32, 24), depth=True)


def _rz(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def test_ray_through_a_pixel_matches_hand_computation():
    K = Intrinsics(fx=30.0, fy=30.0, cx=15.5, cy=11.5, width=32, height=24)
    T = np.eye(4)
    T[:3, :3] = _rz(90.0)
    T[:3, 3] = [1.0, 2.0, 3.0]
    o_hw3, d_hw3 = camera_rays(torch.tensor(T), K)
    assert o_hw3.shape == d_hw3.shape == (24, 32, 3)
    # Pixel (u=3, v=2): K^-1 [3, 2, 1] = ((3 - 15.5) / 30, (2 - 11.5) / 30, 1) = (-0.41667, -0.31667, 1);
    # Rz(90) maps (x, y, z) -> (-y, x, z).
    np.testing.assert_allclose(d_hw3[2, 3].numpy(), [0.316667, -0.416667, 1.0], atol=1e-5)
    np.testing.assert_allclose(o_hw3[2, 3].numpy(), [1.0, 2.0, 3.0])
    # The principal point looks straight down the optical axis (map z here).
    o_r3, d_r3 = pixel_rays(torch.tensor(T, dtype=torch.float32), K, torch.tensor([15.5]), torch.tensor([11.5]))
    np.testing.assert_allclose(d_r3[0].numpy(), [0.0, 0.0, 1.0], atol=1e-6)
    # Stride 2: one ray per 2 x 2 block, through the block's centre (u = 2 j + 0.5).
    _, d2_hw3 = camera_rays(torch.tensor(T), K, stride=2)
    assert d2_hw3.shape == (12, 16, 3)
    np.testing.assert_allclose(d2_hw3[1, 1].numpy(), [-(2.5 - 11.5) / 30, (2.5 - 15.5) / 30, 1.0], atol=1e-5)
    with pytest.raises(ValueError, match="stride 25"):
        camera_rays(torch.tensor(T), K, stride=25)


def test_volume_weights_are_eq4():
    sigma = torch.tensor([[1.0, 2.0, 3.0]])
    delta = torch.tensor([[0.5, 0.5, 0.5]])
    e = math.exp
    expected = [1.0 - e(-0.5), e(-0.5) * (1.0 - e(-1.0)), e(-1.5) * (1.0 - e(-1.5))]
    np.testing.assert_allclose(volume_weights(sigma, delta)[0].numpy(), expected, rtol=1e-6)


def test_scene_bounds_hold_cameras_and_seen_surfaces(room):
    lo, hi = scene_bounds(room.poses_n44, room.intrinsics, room.depths)
    # The synthetic room is 8 x 6 x 2.8 m, centred on the map origin, floor at z = 0.
    assert np.all(lo <= [-3.9, -2.9, 0.0]) and np.all(hi >= [3.9, 2.9, 2.7]), (lo, hi)
    assert np.all(lo > [-5.0, -4.0, -1.0]) and np.all(hi < [5.0, 4.0, 3.8]), (lo, hi)
    cams = room.poses_n44[:, :3, 3]
    assert np.all(cams > lo) and np.all(cams < hi)
    # Without depth the frusta cut at max_depth bound the box; they reach further than the walls.
    lo2, hi2 = scene_bounds(room.poses_n44, room.intrinsics, None, max_depth=10.0)
    assert np.all(lo2 < lo) and np.all(hi2 > hi)
    with pytest.raises(ValueError, match="max_depth"):
        scene_bounds(room.poses_n44, room.intrinsics, None)
