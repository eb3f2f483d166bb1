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

"""Training data: validation splits (spatial regions, time blocks), position normalisation, augmentation."""

import numpy as np
import pytest
import torch

from reloc_ros.geometry import make_pose
from reloc_ros.nets.backbones import IMAGENET_MEAN
from reloc_ros.evaluation import distance_from_path
from reloc_ros.training.data import (PoseNormaliser, augment, pose_targets, split_frames, split_off_path,
                                     split_time_blocks, to_network_input)


def test_split_is_contiguous_blocks_covering_the_sequence():
    train, val = split_time_blocks(240, 0.15)
    assert len(val) == 36 and len(train) == 204 and not set(train) & set(val)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(240))
    runs = np.split(val, np.flatnonzero(np.diff(val) != 1) + 1)
    assert len(runs) == 3 and all(len(r) == 12 for r in runs)  # three contiguous blocks
    assert val.min() < 120 <= val.max()  # spread over the sequence, not one end


@pytest.mark.parametrize("laps", [1, 2, 3, 4])
def test_split_does_not_hold_out_the_same_stretch_of_every_lap(laps):
    n, lap = 240, 240 // laps
    train, val = split_time_blocks(n, 0.15)
    # Position on the loop in percent; every held-out position must be trained on in another lap.
    train_pos = set(((train % lap) * 100 // lap).tolist())
    val_pos = ((val % lap) * 100 // lap).tolist()
    covered = np.mean([p in train_pos for p in val_pos])
    assert covered == (0.0 if laps == 1 else 1.0)


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="validation fraction must be in \\(0, 1\\), got 1.5"):
        split_time_blocks(100, 1.5)


def yaw_pose(x: float, y: float, yaw: float) -> np.ndarray:
    """Return T_map_cam of a camera (optical frame: z forward, y down) at (x, y, 0) looking along ``yaw``."""
    T = np.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    T[:3, :3] = np.array([[s, 0.0, c], [-c, 0.0, s], [0.0, -1.0, 0.0]])
    T[:3, 3] = (x, y, 0.0)
    return T


def _loop_driven_twice(n: int = 240) -> np.ndarray:
    """Return a 4 x 3 m oval driven twice, the camera looking along the direction of travel (optical z forward)."""
    a = np.linspace(0, 4 * np.pi, n, endpoint=False)
    return np.stack([yaw_pose(2 * np.cos(t), 1.5 * np.sin(t), t + np.pi / 2) for t in a])


def test_spatial_split_holds_out_every_lap_of_a_region_so_validation_is_off_the_training_path():
    poses = _loop_driven_twice()
    train, val = split_off_path(poses, 0.15)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(240)) and not set(train) & set(val)
    assert 0.12 <= len(val) / 240 <= 0.3
    lap = 120
    assert set((val % lap).tolist()) == set(((val + lap) % 240 % lap).tolist())  # both laps of the same places
    assert not set((val % lap).tolist()) & set((train % lap).tolist())
    spatial = distance_from_path(poses[val], poses[train])["median_distance_m"]
    t_train, t_val = split_time_blocks(240, 0.15)
    on_path = distance_from_path(poses[t_val], poses[t_train])["median_distance_m"]
    assert on_path < 0.02 and spatial > 10 * on_path  # the time split sits on the other lap's path
    assert np.array_equal(split_off_path(poses, 0.15)[1], val)  # deterministic


def test_spatial_split_separates_views_of_the_same_place():
    # One spot, the camera turning a full circle twice: only the viewing direction varies.
    a = np.linspace(0, 4 * np.pi, 200, endpoint=False)
    poses = np.stack([yaw_pose(1.0, 1.0, t) for t in a])
    train, val = split_off_path(poses, 0.15)
    assert len(val) and distance_from_path(poses[val], poses[train])["median_distance_m"] == 0.0
    held = np.degrees(a[val] % (2 * np.pi))
    trained = np.degrees(a[train] % (2 * np.pi))
    gap = np.abs((held[:, None] - trained[None] + 180) % 360 - 180).min(1)
    assert np.median(gap) > 5.0  # held-out headings are not trained on in the other turn


def test_split_frames_dispatches_and_names_the_valid_splits():
    poses = _loop_driven_twice()
    assert np.array_equal(split_frames(poses, 0.15, "time")[1], split_time_blocks(240, 0.15)[1])
    assert np.array_equal(split_frames(poses, 0.15, "spatial")[1], split_off_path(poses, 0.15)[1])
    with pytest.raises(ValueError, match="validation split 'random' is not one of spatial, time"):
        split_frames(poses, 0.15, "random")
    with pytest.raises(ValueError, match="validation fraction must be in \\(0, 1\\), got 0.0"):
        split_off_path(poses, 0.0)
    with pytest.raises(ValueError, match="at least 2 frames, got 1"):
        split_off_path(poses[:1], 0.15)


def test_distance_from_path_measures_position_and_view():
    path = np.stack([yaw_pose(x, 0.0, 0.0) for x in np.arange(0, 5.0, 1.0)])
    query = np.stack([yaw_pose(2.0, 0.3, np.radians(90)), yaw_pose(2.4, 0.0, 0.0)])
    d = distance_from_path(query, path)
    assert np.isclose(d["median_distance_m"], 0.35) and np.isclose(d["median_view_angle_deg"], 45.0)


def test_normaliser_and_targets():
    poses = np.stack([make_pose([x, 2 * x, 1.0], [0, 0, -0.3, -0.95]) for x in np.linspace(-1, 1, 11)])
    norm = PoseNormaliser.fit(poses)
    t, q = pose_targets(poses, norm)
    assert np.allclose(t.mean(0), 0, atol=1e-6)
    assert np.isclose(np.sqrt((t.numpy() ** 2).sum(1).mean()), 1.0)  # unit RMS distance from the mean
    assert np.allclose(norm.denormalise(t.numpy()), poses[:, :3, 3], atol=1e-6)
    assert torch.all(q[:, 3] >= 0) and torch.allclose(q.norm(dim=1), torch.ones(11))  # canonical, unit


def test_augment_changes_pixels_not_geometry_and_is_seeded():
    img = torch.zeros(4, 24, 32, 3, dtype=torch.uint8)
    img[:, :, 16:] = 200  # a vertical edge at x = 16
    a = augment(img, torch.Generator().manual_seed(1))
    b = augment(img, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == img.shape and a.dtype == torch.uint8
    assert not torch.equal(a, img)
    # The edge stays where it was: photometric changes only, so the pose label stays true.
    col = a.float().mean(dim=(0, 1, 3))
    assert int(torch.argmax(col[1:] - col[:-1])) in (14, 15, 16)


def test_network_input_is_imagenet_normalised():
    x = to_network_input(torch.full((1, 2, 2, 3), 255, dtype=torch.uint8))
    assert x.shape == (1, 3, 2, 2)
    assert torch.isclose(x[0, 0, 0, 0], torch.tensor((1.0 - IMAGENET_MEAN[0]) / 0.229), atol=1e-4)
