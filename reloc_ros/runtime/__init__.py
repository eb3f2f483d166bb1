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

"""The relocalizer at run time, without ROS: engine, uncertainty, TF math, kidnapped-robot recovery, replay.

* :mod:`~reloc_ros.runtime.engine`: load an exported model, relocalize images (pose, covariance, confidence);
  :mod:`~reloc_ros.runtime.backends` runs its network (TorchScript or ONNX Runtime);
  :mod:`~reloc_ros.runtime.worker` keeps only the newest pending frame for live input.
* :mod:`~reloc_ros.runtime.verify`: geometric verification against the model file's 3-D feature map.
* :mod:`~reloc_ros.runtime.camnet_runtime`: CamNet's sequence hypotheses and fusion.
* :mod:`~reloc_ros.runtime.uncertainty`: MC-dropout covariance, its calibration and coverage.
* :mod:`~reloc_ros.runtime.tf_math`: camera -> base_link, map -> odom (REP-105).
* :mod:`~reloc_ros.runtime.recovery`: when to re-initialise a localizer (/initialpose).
* :mod:`~reloc_ros.runtime.pipeline`: the per-frame logic the node and replay share.
* :mod:`~reloc_ros.runtime.frame_status`: verified / unverified / failed, and what a frame may act on.
* :mod:`~reloc_ros.runtime.replay`: a recorded bag through all of it into a new bag.
* :mod:`~reloc_ros.runtime.tf_broadcast`: map -> odom future-dated and re-broadcast, as AMCL does;
  :mod:`~reloc_ros.runtime.lifecycle_bond`: the bond a Nav2 lifecycle manager waits for.
* :mod:`~reloc_ros.runtime.node_params`, :mod:`~reloc_ros.runtime.node_core`,
  :mod:`~reloc_ros.runtime.node_diagnostics`, :mod:`~reloc_ros.runtime.log_bridge`: the relocalization
  node's parameters, decisions, diagnostics and logging, tested without ROS.

Nothing here imports :mod:`reloc_ros.training`, the CLI or the benchmarks (``test/test_layout.py``).
"""
