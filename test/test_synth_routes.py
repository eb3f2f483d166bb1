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

"""The synthetic routes: train and test cover the same space differently, looking every way."""

from __future__ import annotations

import numpy as np
import pytest

from reloc_ros.data import synth


@pytest.mark.parametrize("scene", ["room", "two_rooms"])
def test_train_and_test_routes_cover_the_same_space_differently(scene):
    _, P_tr = synth.ground_truth("train", frames=300, seed=0, scene=scene)
    _, P_te = synth.ground_truth("test", frames=300, seed=0, scene=scene)
    a, b = P_tr[:, :2, 3], P_te[:, :2, 3]
    inter = np.prod(np.maximum(np.minimum(a.max(0), b.max(0)) - np.maximum(a.min(0), b.min(0)), 0))
    union = np.prod(np.maximum(a.max(0), b.max(0)) - np.minimum(a.min(0), b.min(0)))
    assert inter / union > 0.6
    nearest = np.linalg.norm(b[:, None] - a[None], axis=2).min(axis=1)
    assert np.quantile(nearest, 0.9) < 0.8  # test poses are near mapped places ...
    assert np.median(nearest) > 0.05  # ... but not on the same trajectory
    # The camera looks in all directions along each route, so every wall is seen.
    for P in (P_tr, P_te):
        # Quadrants of heading centred on +x, +y, -x, -y: which wall the camera faces.
        heading = np.mod(np.arctan2(P[:, 1, 2], P[:, 0, 2]) + np.pi / 4, 2 * np.pi)
        hist, _ = np.histogram(heading, bins=4, range=(0, 2 * np.pi))
        assert np.all(hist > 0.05 * len(P)), f"headings per wall: {hist}"
