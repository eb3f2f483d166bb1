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

"""NeRF-P: a compact NeRF of a mapped scene with PMNet's pose branch (PoseMap, Lin et al., section 3.2).

What it is
----------
A radiance field of one scene, fitted to posed images (and depth, when a
depth camera recorded it), plus the paper's *pose branch*: every sample point
on a ray also gets a ``k``-dimensional pose feature ``f_i``, and the
*PoseMap* of a pixel is those features volume-rendered with the very weights
used for colour (eq. 3-4)::

    F = sum_i w_i f_i,   w_i = T_i (1 - exp(-sigma_i delta_i)),   T_i = exp(-sum_{j<i} sigma_j delta_j)

A *pose decoder* (MLPs) maps a rendered PoseMap back to the camera pose, which
is what teaches the pose branch to put pose information into the features.

Scene representation (the choice, and why)
------------------------------------------
A **multi-resolution dense feature grid** with trilinear interpolation
(``torch.nn.functional.grid_sample`` on 3-D volumes), Instant-NGP's level
layout (resolutions growing geometrically from ``base_resolution`` to
``max_resolution``, ``features_per_level`` each, concatenated), followed by a
small density MLP and a small colour MLP. Why a dense grid rather than a
hash table: in plain torch a hash grid is eight gathers and eight scatter-adds
per level, which is several times slower than one fused ``grid_sample`` call
on both CPU and GPU; ``grid_sample``'s CPU backward is deterministic; and a
mapped indoor scene at the resolutions a relocalizer renders (<= 256 cells on
the longest side, a few cm for a room) fits in memory densely (256^3 x 2
float32 features is 134 MB; ``max_resolution`` is capped at
``MAX_GRID_RESOLUTION``). Grids follow the aspect ratio of the scene box, so a
corridor does not waste cells across its width. The 32 x 24 test scene (32
frames, 300 + 300 steps of 512 rays) fits in about 15 s on one CPU thread;
GPU speed at camera resolutions is not measured yet.

Scene bounds are an axis-aligned box: the camera centres plus what lies within
the maximum depth of them (:func:`scene_bounds`): the back-projected depth
pixels when depth maps are given, otherwise the view frusta cut at
``cfg.far``; positions are normalised into it. Rays are clipped to the box,
and ``samples_per_ray`` stratified samples are placed between the entry and
exit points (no occupancy grid or proposal network: left open, raise
``samples_per_ray`` on a GPU instead).

Camera convention
-----------------
``T_map_cam`` of the optical frame (z forward, x right, y down); pixel centres
at integer coordinates, so the ray through pixel ``(u, v)`` has direction
``R_map_cam K^-1 [u, v, 1]``. Directions are *not* normalised: their z
component in the camera frame is 1, so the ray parameter ``t`` is the z-depth
in metres and ``depth`` = ``sum_i w_i t_i`` is directly comparable with a depth
camera. Distances between samples (``delta`` in eq. 4) are metric
(``dt * |d|``).

How the paper is read (section 3.1 "Pipeline", 3.2 and 4.1 "NeRF-P settings")
-------------------------------------------------------------------------------
* *Two stages* (stated): stage 1 trains density and colour only ("to maintain
  the quality of the original NeRF, the rendering branch is trained without
  considering pose features"); stage 2 freezes those weights and trains only
  the pose branch and the decoder. :func:`fit_nerfp` does exactly that
  (``requires_grad`` off for the grid, density and colour MLPs in stage 2).
* *Pose branch input* (open): "an MLP encoder after the static branch".
  Read as an MLP on what the static (density) branch produces at the sample:
  its geometry feature, the grid encoding it read, and the view direction
  (the static branch of NeRF-H feeds the colour head the same way). Output:
  ``k`` unconstrained numbers per sample (``cfg.pose_feature_dim``).
* *Rendering* (stated, eq. 3-4): the same ``w_i`` as colour; a pixel whose ray
  leaves the box with transmittance left gets a zero feature there (no
  background feature), as colour gets a black background.
* *Decoder* (partly open): "the PoseMap is downsampled by a factor of 16 with
  the H x W dimensions flattened, followed by 4 layers of MLPs (1536, 256,
  128, 12)". Read as: render the PoseMap at ``1 / posemap_stride`` of the
  image resolution (one ray per ``stride x stride`` block, the paper's 16 is
  the default), average-pool it to a fixed ``posemap_pool`` grid so the
  decoder does not depend on the camera's resolution (the paper's flatten
  would tie the decoder to one image size), flatten, then MLPs of
  ``decoder_hidden`` widths with ReLU and a final linear layer to 12 numbers.
  ``decoder_hidden=(1536, 256, 128)`` with ``pose_feature_dim=256`` gives the
  paper's sizes; the defaults are smaller to train on a CPU.
* *What the decoder predicts and its loss* (partly open): 12 numbers = the
  3 x 4 pose matrix ``[R | t]`` flattened row-major (the paper's pose "is
  represented as a 3 x 4 matrix"), trained with an L2 (mean squared) loss,
  the loss the paper uses for poses ("we employ L2 loss to compute
  L_pose") and the one DFNet [7], whose code NeRF-P is built on, applies to
  the flattened 3 x 4 matrix. Positions are normalised into the scene box
  (minus its centre, divided by half its largest side) so rotation and
  translation entries have comparable scale; :meth:`NerfP.pose_matrix` undoes
  it and projects the rotation block onto SO(3) (SVD).
* *Sizes* (stated, not copied): C = 256 pose channels in the paper; the
  default here is 32 (CPU). The NeRF-W style appearance / transient heads
  of NeRF-H (the paper's base) are not built: a mapping run of one robot has
  no per-image appearance to explain, and they are not part of the pose
  branch.

Modules
-------
Everything below is re-exported here (``from reloc_ros.nets.nerfp import NerfP, fit_nerfp``):

* :mod:`~reloc_ros.nets.nerfp.config`: :class:`NerfPConfig` and its limits;
* :mod:`~reloc_ros.nets.nerfp.rays`: camera rays, eq. 4's weights, :func:`scene_bounds`;
* :mod:`~reloc_ros.nets.nerfp.field`: the grids and :class:`NerfP` (rendering, pose decoder, checkpoints);
* :mod:`~reloc_ros.nets.nerfp.metrics`: PSNR, the mean-colour baseline, out-of-memory errors;
* :mod:`~reloc_ros.nets.nerfp.fit`: :func:`fit_nerfp`, the two training stages.
"""

from reloc_ros.nets.nerfp.config import MAX_GRID_RESOLUTION, NerfPConfig
from reloc_ros.nets.nerfp.field import DenseGridEncoding, NerfP, POSE_VECTOR_DIM
from reloc_ros.nets.nerfp.fit import fit_nerfp, MIN_FRAMES
from reloc_ros.nets.nerfp.metrics import is_oom, mean_colour_psnr, psnr, psnr_from_mse
from reloc_ros.nets.nerfp.rays import camera_rays, pixel_rays, scene_bounds, volume_weights

__all__ = [
    "MIN_FRAMES", "MAX_GRID_RESOLUTION", "POSE_VECTOR_DIM",
    "NerfPConfig", "DenseGridEncoding", "NerfP",
    "pixel_rays", "camera_rays", "volume_weights", "scene_bounds",
    "psnr_from_mse", "mean_colour_psnr", "is_oom", "psnr",
    "fit_nerfp",
]
