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

"""Train a model from bags and export it: ``reloc-ros train`` and the trainer node call :func:`train`.

:func:`train` checks the options, starts the run (target, torch.distributed,
resume), loads the bags' posed frames, builds the chosen model's method and
runs the one training loop (:func:`reloc_ros.training.loop.fit`). The methods,
one module each:

* PoseNet, LRF-PoseNet and their losses: :mod:`reloc_ros.training.apr_trainer`;
* CamNet: :mod:`reloc_ros.training.camnet_trainer`;
* PMNet (PoseMap): :mod:`reloc_ros.training.pmnet_trainer`.

A new method is a class with the :class:`~reloc_ros.training.loop.Method`
interface, constructed from ``(run, ds, cfg, source, onnx=...)``, and an entry
in :func:`method_class`; its options go in
:class:`~reloc_ros.training.config.TrainConfig` and
:mod:`reloc_ros.training.options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from reloc_ros.data.bag import BagSource
from reloc_ros.training.apr_trainer import APRMethod
from reloc_ros.training.camnet_trainer import CamNetMethod
from reloc_ros.training.config import LOSSES, MODELS, OPTIMIZERS, SIMILARITIES, TrainConfig, TrainResult
from reloc_ros.training.loop import checkpoint_path_for, fit, load_checkpoint, load_data, start_run
from reloc_ros.training.pmnet_trainer import PMNetMethod

EXIT_WEAK = 3
"""Exit status of ``reloc-ros train`` and the trainer node for a weak model the user did not allow."""

__all__ = ["train", "method_class", "weak_model_refusal", "EXIT_WEAK", "TrainConfig", "TrainResult", "MODELS",
           "LOSSES", "OPTIMIZERS",
           "SIMILARITIES", "checkpoint_path_for", "load_checkpoint"]


def method_class(model: str) -> type:
    """Return the :class:`~reloc_ros.training.loop.Method` that trains ``model`` (a key of MODELS)."""
    return {"camnet": CamNetMethod, "pmnet": PMNetMethod}.get(model, APRMethod)


def train(bags: Sequence[str | Path], source: BagSource, cfg: TrainConfig, out: str | Path,
          resume: bool = False, cache_dir: str | Path | None = None, device: str = "auto",
          progress: bool = True, onnx: bool = False) -> TrainResult:
    """Train on the bags' posed frames and export the best epoch to ``out`` (TorchScript, plus ONNX with onnx)."""
    cfg = cfg.resolved()
    method = method_class(cfg.model)
    method.check_options(cfg, onnx)  # before any work
    run = start_run(bags, source, cfg, out, resume, device)
    ds = load_data(bags, source, cfg, cache_dir, run.dist, progress)
    return fit(run, method(run, ds, cfg, source, onnx=onnx, cache_dir=cache_dir, progress=progress), cfg,
               progress)


def weak_model_refusal(result: TrainResult, allow_weak: bool) -> str | None:
    """Return why a finished run must end with :data:`EXIT_WEAK`, or None when its model is acceptable.

    A weak model (``result.quality``) is written all the same, its metadata
    says so; without ``allow_weak`` the trainer ends with an error status so
    that no script takes it for a success.
    """
    if not result.quality.get("weak") or allow_weak:
        return None
    from reloc_ros.modelfile import describe_quality

    return (f"{describe_quality(result.quality)}. {result.model_path} is written and says it is weak; accept it "
            f"with --allow-weak (trainer node: allow_weak:=true)")
