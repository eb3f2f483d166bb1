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

"""NeRF-P metrics and failures: PSNR of renders, the mean-colour baseline, out-of-memory errors."""

from __future__ import annotations

import math

import numpy as np
import torch

from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.nets.nerfp.field import NerfP


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error of 0..1 intensities."""
    return float(-10.0 * math.log10(max(float(mse), 1e-12)))


def mean_colour_psnr(train_images_nhw3: np.ndarray, test_images_nhw3: np.ndarray) -> float:
    """Mean per-frame PSNR of the best constant image: the mean colour of the training images.

    The baseline a radiance field must beat to have learned anything about the scene.
    """
    mean_3 = np.asarray(train_images_nhw3, dtype=np.float64).reshape(-1, 3).mean(0) / 255.0
    test = np.asarray(test_images_nhw3, dtype=np.float64) / 255.0
    return float(np.mean([psnr_from_mse(np.mean((img - mean_3) ** 2)) for img in test]))


def is_oom(err: BaseException) -> bool:
    """Tell whether an exception is a CPU or CUDA out-of-memory error."""
    msg = str(err).lower()
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in msg or "can't allocate memory" in msg


def psnr(model: NerfP, images_nhw3: np.ndarray, poses_n44: np.ndarray, K: Intrinsics, chunk: int = 8192) -> float:
    """Mean per-frame PSNR (dB) of the model's renders of ``images_nhw3`` (uint8) at ``poses_n44``."""
    images = np.asarray(images_nhw3)
    poses = np.asarray(poses_n44, dtype=np.float64).reshape(-1, 4, 4)
    if images.ndim != 4 or images.shape[1:] != (K.height, K.width, 3) or len(images) != len(poses):
        raise ValueError(f"psnr needs N x {K.height} x {K.width} x 3 images and as many poses, got images "
                         f"{images.shape} and {len(poses)} poses")
    vals = []
    try:
        with torch.no_grad():
            for img, T in zip(images, poses):
                rgb = model.render_image(T, K, chunk=chunk, with_pose=False)["rgb_hw3"].cpu().double().numpy()
                vals.append(psnr_from_mse(np.mean((rgb - img / 255.0) ** 2)))
    except RuntimeError as e:
        if is_oom(e):
            raise RelocError(f"NeRF-P ran out of memory rendering {K.width}x{K.height} images ({e}); lower "
                             f"chunk (now {chunk})") from e
        raise
    return float(np.mean(vals)) if vals else float("nan")
