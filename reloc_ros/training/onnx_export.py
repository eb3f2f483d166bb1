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

"""Optional ONNX export of an exported pose model, and its check against TorchScript.

ONNX is the second, forward-looking format beside TorchScript: ONNX Runtime
runs it on CPU-only robots (:mod:`reloc_ros.runtime.engine`'s ONNX backend).
The ONNX model takes ``images`` uint8 ``(batch, 3, H, W)`` (plus ``keep``
masks for MC-dropout models) and carries the same metadata JSON as the
TorchScript file, in ``metadata_props`` (:mod:`reloc_ros.modelfile`). Needs
``pip install onnx onnxruntime``.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Mapping, Tuple

import numpy as np
import torch
from torch import nn, Tensor

from reloc_ros.errors import RelocError
from reloc_ros.io_utils import atomic_path, check_output_file
from reloc_ros.modelfile import (METADATA_FILE, ONNX_MC_OUTPUTS, import_onnx, load_model,
                                 metadata_json, quiet_torch_deprecations)
from reloc_ros.training.export import (ExportedPoseModel, compile_wrapper, has_sample, keep_masks, module_device,
                                       pose_diffs, random_images)

logger = logging.getLogger(__name__)


def export_onnx(source: str | Path | ExportedPoseModel | torch.jit.ScriptModule, onnx_path: str | Path,
                metadata: Mapping[str, Any] | None = None, *, opset: int = 17, verify: bool = True,
                seed: int = 0, atol: float = 1e-4) -> Path:
    """Export the same wrapper to ONNX (uint8 input, dynamic batch); return ``onnx_path``.

    ``source`` is an exported TorchScript file (its metadata is used unless
    ``metadata`` is given), a loaded/scripted wrapper, or an eager
    :class:`ExportedPoseModel` (both need ``metadata``). The ONNX model takes
    ``images`` uint8 ``(batch, 3, H, W)`` and returns ``t_b3`` and ``q_b4``; the
    metadata JSON is stored in ``metadata_props`` under ``reloc_ros/metadata.json``.
    With ``verify`` the written file is compared with the TorchScript module
    by :func:`check_onnx` before it replaces ``onnx_path``. Needs
    ``pip install onnx onnxruntime`` (``RelocError`` otherwise).
    """
    onnx, _ = import_onnx()
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    onnx_path = Path(onnx_path)
    check_output_file(onnx_path, "ONNX model")
    if isinstance(source, (str, Path)):
        module, file_meta = load_model(source, "cpu")
        metadata = file_meta if metadata is None else metadata
    elif isinstance(source, torch.jit.ScriptModule):
        module = source if module_device(source).type == "cpu" else copy.deepcopy(source).cpu()
    elif isinstance(source, ExportedPoseModel):
        module = compile_wrapper(copy.deepcopy(source).cpu().eval(), seed)
    else:
        raise ValueError(f"source must be a model file path, a TorchScript module or an ExportedPoseModel, "
                         f"got {type(source).__name__}")
    if metadata is None:
        raise ValueError("metadata is required when exporting a module (only a model file carries its own)")
    if metadata.get("model_kind") == "camnet":
        raise ValueError("CamNet models export to TorchScript only: their retrieval, database and hypothesis "
                         "fusion are not exported to ONNX")
    try:
        w, h = int(module.input_width), int(module.input_height)
    except AttributeError as e:
        raise ValueError("source is not a reloc_ros pose model (no input_width/input_height)") from e
    if list(metadata.get("input_size", [w, h])) != [w, h]:
        raise ValueError(f"metadata input_size {metadata.get('input_size')!r} differs from the module's [{w}, {h}]")
    meta_text = metadata_json(metadata)
    module = module.eval()
    with atomic_path(onnx_path) as tmp:
        with quiet_torch_deprecations(), torch.no_grad():
            # dynamo=False: the TorchScript-based exporter takes our scripted module as it is and needs
            # no onnxscript; H and W are fixed, so ONNX Runtime itself rejects wrongly sized inputs.
            images = torch.zeros(1, 3, h, w, dtype=torch.uint8)
            if has_sample(module):
                # The MC-dropout entry point: keep masks are an input (ONNX has no seeded random ops).
                keep = torch.ones(2, int(module.feature_dim))
                torch.onnx.export(torch.jit.script(_OnnxSample(module)), (images, keep), str(tmp), dynamo=False,
                                  opset_version=opset, input_names=["images", "keep"], output_names=ONNX_MC_OUTPUTS,
                                  dynamic_axes={"images": {0: "batch"}, "keep": {0: "samples"},
                                                "t_b3": {0: "batch"}, "q_b4": {0: "batch"},
                                                "t_bn3": {0: "batch", 1: "samples"},
                                                "q_bn4": {0: "batch", 1: "samples"}})
            else:
                torch.onnx.export(module, (images,), str(tmp), dynamo=False,
                                  opset_version=opset, input_names=["images"], output_names=["t_b3", "q_b4"],
                                  dynamic_axes={"images": {0: "batch"}, "t_b3": {0: "batch"},
                                                "q_b4": {0: "batch"}})
        model = onnx.load(str(tmp))
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_FILE, meta_text
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        if verify:
            diff = check_onnx(tmp, module, random_images(3, h, w, seed + 7), atol=atol)
            logger.info("exported ONNX model to %s (opset %d; max |onnx - torchscript| %.2g)", onnx_path, opset, diff)
    return onnx_path


class _OnnxSample(nn.Module):
    """Expose ``module.sample(images, keep)`` as ``forward`` for the ONNX exporter."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, images: Tensor, keep: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.module.sample(images, keep)


def check_onnx(onnx_path: str | Path, ts_module: nn.Module, images_b3hw: np.ndarray | Tensor,
               atol: float = 1e-4) -> float:
    """Run ONNX Runtime and ``ts_module`` on uint8 images ``(B, 3, H, W)``; return the max abs difference.

    Quaternions are compared up to sign. Raises :class:`RelocError` when the
    difference exceeds ``atol`` (or onnxruntime is missing).
    """
    _, ort = import_onnx(runtime_only=True)
    images = images_b3hw.detach().cpu().numpy() if isinstance(images_b3hw, Tensor) else np.asarray(images_b3hw)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"check_onnx takes uint8 images (B, 3, H, W) like the ONNX input, "
                         f"got {images.dtype} {images.shape}")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = torch.from_numpy(np.ascontiguousarray(images))
    if "keep" in [i.name for i in session.get_inputs()]:
        keep = keep_masks(5, int(ts_module.feature_dim), float(ts_module.dropout), seed=1)
        outs = session.run(ONNX_MC_OUTPUTS, {"images": images, "keep": keep.numpy()})
        with torch.no_grad():
            t, q, ts, qs = ts_module.sample(x, keep)
        ref = (torch.cat([t, ts.reshape(-1, 3)]), torch.cat([q, qs.reshape(-1, 4)]))
        got = (np.concatenate([outs[0], outs[2].reshape(-1, 3)]), np.concatenate([outs[1], outs[3].reshape(-1, 4)]))
    else:
        with torch.no_grad():
            ref = ts_module(x)
        got = tuple(session.run(["t_b3", "q_b4"], {"images": images}))
    dt, dq = pose_diffs(ref, (torch.from_numpy(got[0]), torch.from_numpy(got[1])))
    diff = max(dt, dq)
    logger.info("ONNX vs TorchScript on %d images: max |dt| %.3g m, max |dq| %.3g", images.shape[0], dt, dq)
    if not diff <= atol:
        raise RelocError(f"ONNX model '{onnx_path}' differs from TorchScript: max |dt| {dt:.3g}, "
                         f"max |dq| {dq:.3g} > tolerance {atol:.3g}")
    return diff
