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

"""A synthetic indoor scene with exact ground truth, rendered and written as a real rosbag2.

Tests, the demo and the benchmarks need posed images whose poses are known
exactly and whose content is learnable, without downloading a dataset. This
package builds a room of axis-aligned boxes with procedural textures, drives a
robot through it and ray-casts exact RGB + depth, then writes what a real
robot would have recorded. One module per step:

* :mod:`~reloc_ros.data.synth.config`: frame names, scene presets, the camera rig and intrinsics.
* :mod:`~reloc_ros.data.synth.materials`: procedural textures of the surfaces.
* :mod:`~reloc_ros.data.synth.routes`: the closed curves the robot drives.
* :mod:`~reloc_ros.data.synth.scene`: room, furniture, materials and routes of ``(scene, seed)``.
* :mod:`~reloc_ros.data.synth.render`: the ray caster (RGB + z-depth).
* :mod:`~reloc_ros.data.synth.runs`: a run along a route (stamps, TF samples, exact poses), in memory.
* :mod:`~reloc_ros.data.synth.bag_writer`: a run written as a rosbag2.

Everything public is re-exported here: ``from reloc_ros.data.synth import make_run``.

Conventions
-----------
* The map frame has its origin at the centre of the room on the floor,
  x and y along the walls, z up (REP-103). Units are metres and radians.
* Poses are 4x4 ``T_a_b`` mapping points from frame ``b`` into ``a``
  (:mod:`reloc_ros.geometry`).
* ``base_link`` lies on the floor, x forward, y left, z up; ``camera_link`` is
  the camera body (same convention, mounted above the base and pitched down a
  little); ``camera_optical_frame`` is z forward, x right, y down, rotated from
  ``camera_link`` by the standard quaternion ``(-0.5, 0.5, -0.5, 0.5)``.
* Depth is z-depth along the optical axis in metres (what a depth camera
  gives), not the length of the ray.
* Pixel ``(u, v)`` has its centre at integer coordinates, so the principal
  point of a W x H image is ``((W - 1) / 2, (H - 1) / 2)`` (OpenCV).

TF in the bag (REP-105)
-----------------------
``/tf_static`` holds base_link -> camera_link -> camera_optical_frame once, on a
transient-local connection as recorded bags have. ``/tf`` holds odom ->
base_link at ``tf_rate_hz`` and map -> odom at half that rate, at stamps that
never coincide with image stamps, so readers must interpolate. map -> odom
starts at the robot's start pose (odometry starts counting where the robot
starts) and then drifts slowly (a few cm and about a degree per lap); odom ->
base_link is chosen so the chain map -> odom -> base_link is the true pose.
The true pose at an image stamp is *defined* as tf2's interpolation of those
samples (see :class:`SyntheticRun`), so a reader that interpolates ``/tf``
recovers the rendered camera pose to rounding error.

Speed: by default 0.4 m/s, raised when needed so the frames cover a whole lap
of the route (see :func:`make_run`).

Determinism: the scene depends on ``(scene, seed)`` only, so a train and a test
run with the same seed see the same room; the route depends on ``(scene, seed,
route)``. The same arguments give bit-identical images and bag content on one
machine.
"""

from reloc_ros.data.synth.bag_writer import (CAMERA_INFO_TOPIC, DEPTH_TOPIC, IMAGE_TOPIC, STORAGES, TF_STATIC_TOPIC,
                                             TF_TOPIC, SynthSummary, write_synthetic_bag)
from reloc_ros.data.synth.config import (BASE_FRAME, CAMERA_LINK_FRAME, MAP_FRAME, ODOM_FRAME, OPTICAL_FRAME,
                                         OPTICAL_Q_XYZW, ROUTES, SCENE_PRESETS, SHAPES, CameraRig, SceneConfig,
                                         default_intrinsics, scene_config)
from reloc_ros.data.synth.materials import Material
from reloc_ros.data.synth.render import Renderer
from reloc_ros.data.synth.routes import RouteCurve
from reloc_ros.data.synth.runs import (DEFAULT_SPEED_MPS, SynthFrame, SyntheticRun, ground_truth, make_run,
                                       render_route, synthetic_dataset)
from reloc_ros.data.synth.scene import Scene, build_scene

__all__ = [
    "SCENE_PRESETS", "CameraRig", "Material", "Renderer", "RouteCurve", "Scene", "SceneConfig", "SynthFrame",
    "SynthSummary", "SyntheticRun", "build_scene", "default_intrinsics", "ground_truth", "make_run",
    "render_route", "scene_config", "synthetic_dataset", "write_synthetic_bag",
    # Topics, frames and choices of the synthetic robot.
    "IMAGE_TOPIC", "CAMERA_INFO_TOPIC", "DEPTH_TOPIC", "TF_TOPIC", "TF_STATIC_TOPIC", "MAP_FRAME", "ODOM_FRAME",
    "BASE_FRAME", "CAMERA_LINK_FRAME", "OPTICAL_FRAME", "OPTICAL_Q_XYZW", "ROUTES", "SHAPES", "STORAGES",
    "DEFAULT_SPEED_MPS",
]
