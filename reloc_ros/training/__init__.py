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

"""Training and export of relocalization models: one loop, one method per paper, the exporters.

* :mod:`~reloc_ros.training.trainer`: ``train()``, what ``reloc-ros train`` and the trainer node call.
* :mod:`~reloc_ros.training.loop`: the one training loop (torch.distributed, checkpoints, resume, progress).
* :mod:`~reloc_ros.training.apr_trainer`, :mod:`~reloc_ros.training.camnet_trainer`,
  :mod:`~reloc_ros.training.pmnet_trainer` (+ :mod:`~reloc_ros.training.pmnet_align`): the methods.
* :mod:`~reloc_ros.training.config`, :mod:`~reloc_ros.training.options`,
  :mod:`~reloc_ros.training.node_params`: the options, declared once for the CLI and the trainer node.
* :mod:`~reloc_ros.training.export`, :mod:`~reloc_ros.training.onnx_export`,
  :mod:`~reloc_ros.training.camnet_export`: writing model files (format: :mod:`reloc_ros.modelfile`).
"""
