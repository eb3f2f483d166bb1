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

"""Preprocessing: resize keeps the whole view, crop keeps the centre; intrinsics follow."""

import numpy as np
import pytest

from reloc_ros.data.types import Intrinsics
from reloc_ros.preprocess import preprocess_image, preprocess_intrinsics


def test_resize_keeps_whole_image_crop_loses_the_sides():
    img = np.zeros((120, 160, 3), np.uint8)
    img[:, :10] = 255  # a white band at the left edge
    resized = preprocess_image(img, "resize", (64, 64))
    cropped = preprocess_image(img, "crop", (64, 64))
    assert resized.shape == cropped.shape == (64, 64, 3)
    assert resized[:, 0].mean() > 200  # still visible after resizing
    assert cropped.max() == 0  # outside the centre window: gone


def test_crop_intrinsics_project_points_to_the_same_pixels():
    K = Intrinsics(100.0, 100.0, 79.5, 59.5, 160, 120)
    img = np.zeros((120, 160, 3), np.uint8)
    img[30, 100] = 255  # a single bright pixel
    for mode in ("crop", "resize"):
        out = preprocess_image(img, mode, (80, 80))
        Kp = preprocess_intrinsics(K, mode, (80, 80))
        # The ray through pixel (100, 30) lands where the new intrinsics say.
        ray = np.array([(100 - K.cx) / K.fx, (30 - K.cy) / K.fy, 1.0])
        u, v = Kp.fx * ray[0] + Kp.cx, Kp.fy * ray[1] + Kp.cy
        y, x = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
        assert abs(x - u) <= 1.0 and abs(y - v) <= 1.0, (mode, x, u, y, v)


def test_bad_mode_named():
    with pytest.raises(ValueError, match="'squash' is not one of resize, crop"):
        preprocess_image(np.zeros((4, 4, 3), np.uint8), "squash", (2, 2))
