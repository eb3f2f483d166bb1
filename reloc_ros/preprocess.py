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

"""Image preprocessing shared by training, evaluation and the runtime.

Two modes, the independent option LRF-PoseNet (Qin et al.) compares:

* ``"crop"``: PoseNet's way. Scale so the image covers ``width x height``
  (shorter side matches), then take the centre window. Whatever lies outside
  the window is lost.
* ``"resize"``: LRF-PoseNet's way. Resize the whole image to ``width x height``
  without cropping (the aspect ratio may change), which keeps the whole field
  of view: a larger receptive field.

Exported models record the mode and size in their metadata, so the robot
preprocesses exactly as training did.
"""

from __future__ import annotations

import cv2
import numpy as np

from reloc_ros.data.types import Intrinsics

MODES = ("resize", "crop")


def _check(mode: str, size: tuple[int, int]) -> None:
    if mode not in MODES:
        raise ValueError(f"preprocessing mode '{mode}' is not one of {', '.join(MODES)}")
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"input size must be positive, got {size[0]}x{size[1]}")


def crop_window(src_size: tuple[int, int], size: tuple[int, int]) -> tuple[float, int, int]:
    """Return (scale, x0, y0): scale the source by ``scale``, then crop at (x0, y0)."""
    sw, sh = src_size
    w, h = size
    scale = max(w / sw, h / sh)
    return scale, int(round((sw * scale - w) / 2)), int(round((sh * scale - h) / 2))


def preprocess_image(rgb_hw3: np.ndarray, mode: str, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Return the image (height, width, ...) a model of input ``size`` (w, h) takes.

    ``nearest`` samples without blending (for depth, where averaging across an
    object's edge would invent surfaces).
    """
    _check(mode, size)
    h_src, w_src = rgb_hw3.shape[:2]
    w, h = size
    if (w_src, h_src) == (w, h):
        return np.ascontiguousarray(rgb_hw3)
    # INTER_AREA when shrinking averages pixels instead of aliasing them.
    if mode == "resize":
        interp = cv2.INTER_AREA if w < w_src and h < h_src else cv2.INTER_LINEAR
        return cv2.resize(rgb_hw3, (w, h), interpolation=cv2.INTER_NEAREST if nearest else interp)
    scale, x0, y0 = crop_window((w_src, h_src), size)
    sw, sh = max(w, int(round(w_src * scale))), max(h, int(round(h_src * scale)))
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    scaled = cv2.resize(rgb_hw3, (sw, sh), interpolation=interp)
    return np.ascontiguousarray(scaled[y0:y0 + h, x0:x0 + w])


def preprocess_intrinsics(K: Intrinsics, mode: str, size: tuple[int, int]) -> Intrinsics:
    """Return the intrinsics of the image that :func:`preprocess_image` produces."""
    _check(mode, size)
    if mode == "resize":
        return K.scaled(*size)
    scale, x0, y0 = crop_window((K.width, K.height), size)
    sw, sh = max(size[0], int(round(K.width * scale))), max(size[1], int(round(K.height * scale)))
    s = K.scaled(sw, sh)
    return Intrinsics(s.fx, s.fy, s.cx - x0, s.cy - y0, size[0], size[1])
