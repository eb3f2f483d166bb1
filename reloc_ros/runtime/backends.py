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

"""The two ways the engine runs a model file's network: TorchScript (torch) or ONNX Runtime (no torch).

Both load the file and its metadata (:mod:`reloc_ros.modelfile`) and offer
``run(images_bhw3, keep_nd)``: preprocessed uint8 images in, the network's
outputs as float64 numpy arrays out (with MC-dropout keep masks, the samples
too). :class:`~reloc_ros.runtime.engine.Relocalizer` picks one by file
suffix or its ``backend`` argument.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from reloc_ros.errors import RelocError

logger = logging.getLogger(__name__)


class TorchScriptBackend:
    """A TorchScript model file on CPU or CUDA (torch.jit)."""

    def __init__(self, path: Path, device: str, threads: int | None) -> None:
        import torch

        from reloc_ros.modelfile import load_model, pick_device

        if threads:
            torch.set_num_threads(int(threads))
        want_auto = device == "auto"
        self.device = pick_device(device)
        if want_auto and self.device.type == "cpu":
            logger.warning("device 'auto': no CUDA device available, running on the CPU")
        self.module, self.meta = load_model(path, self.device)
        self.camnet = self.meta.get("model_kind") == "camnet"
        if self.camnet and not callable(getattr(self.module, "hypotheses", None)):
            raise RelocError(f"model file '{path}' says it is a CamNet but has no hypotheses() entry point")
        self.mc = "mc_dropout" in self.meta and callable(getattr(self.module, "sample", None))
        self._torch = torch

    def run(self, x_bhw3: np.ndarray, keep_nd: np.ndarray | None) -> tuple[np.ndarray, ...]:
        torch = self._torch
        x = torch.from_numpy(x_bhw3).to(self.device).permute(0, 3, 1, 2)
        with torch.no_grad():
            out = self.module.sample(x, torch.from_numpy(keep_nd)) if keep_nd is not None else self.module(x)
        return tuple(o.detach().cpu().double().numpy() for o in out)


class OnnxBackend:
    """An ONNX model file on ONNX Runtime (CPU, or CUDA where its provider exists); needs no torch."""

    def __init__(self, path: Path, device: str, threads: int | None) -> None:
        from reloc_ros.modelfile import ONNX_MC_OUTPUTS, import_onnx, read_onnx_metadata

        self.meta = read_onnx_metadata(path)
        if self.meta.get("model_kind") == "camnet":
            raise ValueError(f"'{path}' is a CamNet model: CamNet runs with the TorchScript backend only")
        self.camnet = False
        _, ort = import_onnx(runtime_only=True)
        providers = ["CPUExecutionProvider"]
        available = ort.get_available_providers()
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise ValueError(f"device '{device}' requested but this onnxruntime has no CUDA provider "
                                 f"(providers: {', '.join(available)}); use cpu or auto")
            providers.insert(0, "CUDAExecutionProvider")
        elif device == "auto" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        elif device not in ("auto", "cpu"):
            raise ValueError(f"invalid device {device!r}; use auto, cpu, cuda or cuda:N")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.device = self.session.get_providers()[0]
        self.mc = "keep" in [i.name for i in self.session.get_inputs()] and "mc_dropout" in self.meta
        self._outputs = ONNX_MC_OUTPUTS if self.mc else ["t_b3", "q_b4"]

    def run(self, x_bhw3: np.ndarray, keep_nd: np.ndarray | None) -> tuple[np.ndarray, ...]:
        feed = {"images": np.ascontiguousarray(x_bhw3.transpose(0, 3, 1, 2))}
        if self.mc:
            feed["keep"] = keep_nd
        return tuple(np.asarray(o, np.float64) for o in self.session.run(self._outputs, feed))
