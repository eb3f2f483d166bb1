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

"""The ROS 2 node shells of reloc_ros: the only modules that import rclpy.

* :mod:`reloc_ros.nodes.relocalization_node`: a lifecycle node that turns
  camera images into ``PoseWithCovarianceStamped`` poses, the ``map -> odom``
  correction and, on demand or on a detected kidnapping, ``/initialpose``.
* :mod:`reloc_ros.nodes.trainer_node`: trains and exports a model from bags,
  reporting progress on the log and ``/diagnostics``.

Everything they compute lives in the ROS-free core (:mod:`reloc_ros.runtime`,
:mod:`reloc_ros.training` for the trainer node, :mod:`reloc_ros.conversions`); these modules only
wire it to topics, TF, parameters and services.
"""
