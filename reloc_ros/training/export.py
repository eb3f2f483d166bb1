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

"""Export an absolute-pose network as one self-contained TorchScript file.

The file is everything the robot needs: plain ``torch.jit.load`` runs it on CPU
or CUDA without reloc_ros installed. :class:`ExportedPoseModel` wraps the net
with the steps that must match training exactly:

* input: RGB images ``(B, 3, H, W)``, uint8 or float in ``[0, 255]``, already
  preprocessed (``metadata["preprocessing"]``, ``metadata["input_size"]``);
  any other shape raises an error naming the expected one;
* ``/ 255`` then ImageNet mean/std normalisation;
* the net in eval mode (no dropout), with gradients off;
* positions de-normalised to metres in the map frame
  (``p = p_norm * scale + mean``, the inverse of the trainer's normalisation);
* quaternions ``(x, y, z, w)`` normalised to unit length, on the ``w >= 0``
  hemisphere.

Metadata (input size, preprocessing, normalisations, frames, training data,
metrics, ...) travels inside the archive as ``reloc_ros/metadata.json``
(``torch.jit.save(..., _extra_files=...)``), so the file alone configures the
node. The format itself (metadata keys, versions, reading, loading) is
:mod:`reloc_ros.modelfile`, which the runtime reads without this module;
:func:`predict` and :func:`mc_predict` are the small eager helpers that tests
and the trainer use.

Why TorchScript: it is the one format that plain ``torch`` loads on both CPU
and CUDA with no Python source. PyTorch 2.13 marks ``torch.jit`` deprecated in
favour of ``torch.export``; the deprecation warnings of the calls made here are
silenced (the format is still fully supported) and the optional ONNX export
(:func:`export_onnx`, which needs ``pip install onnx onnxruntime``) is the
second, forward-looking format.

Every file is written atomically (:func:`reloc_ros.io_utils.atomic_path`) and
verified *after* saving, by reloading the temporary file and comparing it with
the eager wrapper on fresh random inputs: a crash or a mismatch never leaves a
half-written or wrong model where the node would load it.
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence, Tuple

import numpy as np
import torch
from torch import nn, Tensor

from reloc_ros import __version__
from reloc_ros.errors import RelocError
from reloc_ros.io_utils import atomic_path, check_output_file
from reloc_ros.modelfile import (FORMAT, FORMAT_VERSION, INPUT_DESCRIPTION, METADATA_FILE, OUTPUTS_DESCRIPTION,
                                 check_input_size, metadata_json, quiet_torch_deprecations)
from reloc_ros.nets.backbones import IMAGENET_MEAN, IMAGENET_STD
from reloc_ros.preprocess import MODES

logger = logging.getLogger(__name__)

_QUAT_EPS = 1e-12
_ONNX_HINT = "pip install onnx onnxruntime"


# --------------------------------------------------------------------------
# The exported module
# --------------------------------------------------------------------------

class ExportedPoseModel(nn.Module):
    """Wrap an absolute-pose net with image normalisation and pose de-normalisation.

    ``net(x)`` takes ImageNet-normalised float images ``(B, 3, H, W)`` and
    returns ``(t_b3, q_b4)``: positions in normalised units and unnormalised
    ``(x, y, z, w)`` quaternions. The wrapper takes raw ``[0, 255]`` images and
    returns metres and unit quaternions. The same code runs eagerly and under
    ``torch.jit.script`` (with a traced ``net``).
    """

    def __init__(self, net: nn.Module, pos_mean: Any, pos_scale: Any, input_size: Sequence[int],
                 img_mean: Sequence[float] = IMAGENET_MEAN, img_std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        w, h = check_input_size(input_size)
        self.net = net
        self.input_width = w
        self.input_height = h
        mean_3 = _as_vector3(pos_mean, "pos_mean")
        scale_3 = _as_vector3(pos_scale, "pos_scale")
        if bool((scale_3 <= 0).any()):
            raise ValueError(f"pos_scale must be positive, got {scale_3.tolist()}")
        img_mean_3 = _as_vector3(img_mean, "img_mean")
        img_std_3 = _as_vector3(img_std, "img_std")
        if bool((img_std_3 <= 0).any()):
            raise ValueError(f"img_std must be positive, got {img_std_3.tolist()}")
        self.register_buffer("img_mean", img_mean_3.view(1, 3, 1, 1))
        self.register_buffer("img_std", img_std_3.view(1, 3, 1, 1))
        self.register_buffer("pos_mean", mean_3)
        self.register_buffer("pos_scale", scale_3)

    def forward(self, images_b3hw: Tensor) -> Tuple[Tensor, Tensor]:
        """Return ``(t_b3 metres, q_b4 unit (x, y, z, w), w >= 0)`` for RGB images in ``[0, 255]``."""
        t_norm_b3, q_b4 = self.net(self._normalise_images(images_b3hw))
        return self._finish(t_norm_b3, q_b4)

    def _normalise_images(self, images_b3hw: Tensor) -> Tensor:
        if (images_b3hw.dim() != 4 or images_b3hw.size(1) != 3 or images_b3hw.size(2) != self.input_height
                or images_b3hw.size(3) != self.input_width):
            raise ValueError(
                f"reloc_ros model expects RGB images of shape (B, 3, {self.input_height}, {self.input_width}) "
                f"(preprocessed to the input_size in the model metadata), got shape {images_b3hw.shape}")
        # Moving here lets a CUDA model take CPU images straight from predict() or the runtime.
        x = images_b3hw.to(device=self.img_mean.device, dtype=self.img_mean.dtype)
        return (x / 255.0 - self.img_mean) / self.img_std

    def _finish(self, t_norm_b3: Tensor, q_b4: Tensor) -> Tuple[Tensor, Tensor]:
        t_b3 = t_norm_b3 * self.pos_scale + self.pos_mean
        # sqrt of a sum rather than Tensor.norm(dim=...): TorchScript and the ONNX exporter both take it.
        # The eps is a literal because scripted code cannot read module globals.
        q_b4 = q_b4 / torch.sqrt((q_b4 * q_b4).sum(dim=1, keepdim=True)).clamp_min(1e-12)
        # q and -q are the same rotation; one hemisphere makes outputs comparable and averageable.
        q_b4 = torch.where(q_b4[:, 3:4] < 0, -q_b4, q_b4)
        return t_b3, q_b4


class PoseHead(nn.Module):
    """The two affine pose regressors of an APR, ``h -> (t_norm, q)``, as one scriptable module."""

    def __init__(self, fc_t: nn.Linear, fc_q: nn.Linear) -> None:
        super().__init__()
        self.fc_t = fc_t
        self.fc_q = fc_q

    def forward(self, h_bd: Tensor) -> Tuple[Tensor, Tensor]:
        return self.fc_t(h_bd), self.fc_q(h_bd)


class _Trunk(nn.Module):
    """``x -> h``: everything of an APR before its dropout and pose regressors (traced for export)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.trunk(x)


class ExportedMCPoseModel(ExportedPoseModel):
    """:class:`ExportedPoseModel` plus Monte Carlo dropout samples for the pose uncertainty.

    ``net`` is the trunk (image -> the feature ``h`` that PoseNet's dropout
    acts on) and ``head`` the two regressors. ``forward`` is the deterministic
    prediction (dropout off). :meth:`sample` also returns ``N`` predictions
    with dropout *on* in front of the regressors, where the APR was trained
    with it (Kendall & Cipolla 2016, "Modelling uncertainty in deep learning
    for camera relocalization"): the trunk runs once, only the cheap
    regressors run ``N`` times. The keep masks are an input, drawn by the
    caller, so the same model is deterministic under a seeded generator and
    exports to ONNX (which has no seeded random ops).
    """

    def __init__(self, trunk: nn.Module, head: nn.Module, dropout: float, pos_mean: Any, pos_scale: Any,
                 input_size: Sequence[int], img_mean: Sequence[float] = IMAGENET_MEAN,
                 img_std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__(trunk, pos_mean, pos_scale, input_size, img_mean, img_std)
        if not 0.0 < float(dropout) < 1.0:
            raise ValueError(f"MC dropout needs a dropout probability in (0, 1), got {dropout!r}")
        self.head = head
        self.dropout = float(dropout)
        self.feature_dim = int(head.fc_t.in_features)

    def forward(self, images_b3hw: Tensor) -> Tuple[Tensor, Tensor]:
        """Return ``(t_b3 metres, q_b4 unit (x, y, z, w), w >= 0)`` for RGB images in ``[0, 255]``."""
        t_norm_b3, q_b4 = self.head(self.net(self._normalise_images(images_b3hw)))
        return self._finish(t_norm_b3, q_b4)

    @torch.jit.export
    def sample(self, images_b3hw: Tensor, keep_nd: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return ``(t_b3, q_b4, t_bn3, q_bn4)``: the prediction and ``N`` MC-dropout samples per image.

        ``keep_nd`` is ``(N, feature_dim)`` of 0/1 (1 = keep), applied to every
        image with inverted-dropout scaling ``1 / (1 - p)`` as in training.
        """
        h_bd = self.net(self._normalise_images(images_b3hw))
        t_b3, q_b4 = self._finish(*self.head(h_bd))
        b = h_bd.size(0)
        n = keep_nd.size(0)
        keep = keep_nd.to(device=h_bd.device, dtype=h_bd.dtype)
        h_bnd = h_bd.unsqueeze(1) * keep.unsqueeze(0) / (1.0 - self.dropout)
        t_s, q_s = self._finish(*self.head(h_bnd.reshape(b * n, h_bd.size(1))))
        return t_b3, q_b4, t_s.reshape(b, n, 3), q_s.reshape(b, n, 4)


def supports_mc_dropout(net: nn.Module) -> bool:
    """Return whether ``net`` exposes the MC-dropout parts: ``trunk(x)``, ``fc_t``/``fc_q`` and a ``dropout`` > 0."""
    drop = getattr(net, "dropout", None)
    return (callable(getattr(net, "trunk", None)) and isinstance(getattr(net, "fc_t", None), nn.Linear)
            and isinstance(getattr(net, "fc_q", None), nn.Linear) and isinstance(drop, nn.Dropout)
            and 0.0 < drop.p < 1.0)


def wrap_for_export(net: nn.Module, pos_mean: Any, pos_scale: Any, input_size: Sequence[int]) -> ExportedPoseModel:
    """Return a frozen CPU copy of ``net`` wrapped for export: with MC dropout where the net supports it."""
    net = frozen_cpu_copy(net)
    if supports_mc_dropout(net):
        return ExportedMCPoseModel(_Trunk(net), PoseHead(net.fc_t, net.fc_q), net.dropout.p, pos_mean, pos_scale,
                                   input_size).eval()
    return ExportedPoseModel(net, pos_mean, pos_scale, input_size).eval()


def _as_vector3(value: Any, what: str) -> Tensor:
    """Return ``value`` (a scalar or 3 numbers) as a finite float32 tensor of shape (3,)."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be a number or 3 numbers, got {value!r}") from e
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3 or not np.isfinite(arr).all():
        raise ValueError(f"{what} must be a finite number or 3 finite numbers, got {value!r}")
    return torch.tensor(arr, dtype=torch.float32)


# --------------------------------------------------------------------------
# TorchScript export
# --------------------------------------------------------------------------

def _f32_list(values: Tensor) -> list[float]:
    """Return float32 values as the shortest decimals that round-trip (0.485, not 0.48500001430511475)."""
    return [float(str(v)) for v in values.detach().cpu().flatten().numpy().astype(np.float32)]


def build_metadata(metadata: Mapping[str, Any], wrapper: ExportedPoseModel,
                   pos_scale: Any = None) -> dict[str, Any]:
    """Return the complete, validated metadata of ``wrapper``: the caller's keys plus the mandatory ones.

    The caller (the trainer) gives ``model``, ``preprocessing``, ``frames``
    and, normally, ``training_data`` and ``metrics``; this adds ``format``,
    ``format_version``, versions, ``input_size``, both normalisations,
    ``outputs`` and ``created`` (unless given). Raises ``ValueError`` naming
    what is missing or invalid. The result is exactly what a JSON round trip
    gives back (numpy numbers become plain numbers).
    """
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    meta = dict(metadata)
    size = [wrapper.input_width, wrapper.input_height]
    if "input_size" in meta and list(check_input_size(meta["input_size"])) != size:
        raise ValueError(f"metadata input_size {meta['input_size']!r} differs from the export input_size {size}")
    model = meta.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError(f"metadata['model'] must name the architecture (e.g. 'posenet'), got {model!r}")
    kind = meta.setdefault("model_kind", "apr")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"metadata['model_kind'] must be a non-empty string such as 'apr', got {kind!r}")
    if meta.get("preprocessing") not in MODES:
        raise ValueError(f"metadata['preprocessing'] must be one of {', '.join(MODES)}, "
                         f"got {meta.get('preprocessing')!r}")
    frames = meta.get("frames")
    if (not isinstance(frames, Mapping)
            or not all(isinstance(frames.get(k), str) and frames.get(k) for k in ("map_frame", "camera_frame"))):
        raise ValueError(f"metadata['frames'] must be {{'map_frame': ..., 'camera_frame': ...}} with non-empty "
                         f"frame ids, got {frames!r}")
    for key in ("training_data", "metrics"):
        if key not in meta:
            logger.warning("exporting a model without metadata['%s']", key)
            meta[key] = {}
        elif not isinstance(meta[key], Mapping):
            raise ValueError(f"metadata['{key}'] must be a dict, got {type(meta[key]).__name__}")
    scale = _f32_list(wrapper.pos_scale)
    if pos_scale is not None and np.size(np.asarray(pos_scale)) == 1:
        scale = scale[0]  # recorded as given: one isotropic scale
    meta.update({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "reloc_ros_version": __version__,
        "torch_version": torch.__version__,
        "input_size": size,
        "image_normalisation": {"mean": _f32_list(wrapper.img_mean),
                                "std": _f32_list(wrapper.img_std),
                                "note": "applied inside the model, after dividing by 255"},
        "pose_normalisation": {"mean": _f32_list(wrapper.pos_mean), "scale": scale,
                               "note": "undone inside the model: position = output_normalised * scale + mean"},
        "input": INPUT_DESCRIPTION,
        "outputs": OUTPUTS_DESCRIPTION,
    })
    if isinstance(wrapper, ExportedMCPoseModel):
        meta["mc_dropout"] = {"dropout": wrapper.dropout, "feature_dim": wrapper.feature_dim,
                              "note": "module.sample(images, keep_nd) returns MC-dropout samples; keep_nd is "
                                      "(N, feature_dim) of 0/1 drawn with keep probability 1 - dropout"}
    meta.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return json.loads(metadata_json(meta))


def frozen_cpu_copy(net: nn.Module) -> nn.Module:
    """Return a CPU copy of ``net`` in eval mode without gradients; the trainer's net is not touched."""
    net = copy.deepcopy(net).to("cpu").eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def random_images(batch: int, h: int, w: int, seed: int) -> Tensor:
    """Return ``batch`` seeded random uint8 images ``(batch, 3, h, w)``: the inputs export checks run on."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, h, w), generator=gen, dtype=torch.uint8)


def _check_net_outputs(out: Any, batch: int) -> None:
    if (not isinstance(out, (tuple, list)) or len(out) != 2 or not all(isinstance(o, Tensor) for o in out)
            or tuple(out[0].shape) != (batch, 3) or tuple(out[1].shape) != (batch, 4)):
        got = [tuple(o.shape) if isinstance(o, Tensor) else type(o).__name__ for o in out] \
            if isinstance(out, (tuple, list)) else type(out).__name__
        raise ValueError(f"the net must return (t_b3, q_b4) of shapes ({batch}, 3) and ({batch}, 4), got {got}")
    if not all(bool(torch.isfinite(o).all()) for o in out):
        raise RelocError("the net returns non-finite values (NaN/inf) on random images; refusing to export it")


def compile_wrapper(wrapper: ExportedPoseModel, seed: int = 0) -> torch.jit.ScriptModule:
    """Return ``wrapper`` as TorchScript: its net traced, the wrapper itself scripted.

    Tracing copes with any net built from ordinary torch ops; scripting the
    wrapper keeps its input-shape check and batch-independent logic. The
    wrapper's net must already be on the CPU in eval mode (see
    :func:`export_torchscript`).
    """
    h, w = wrapper.input_height, wrapper.input_width
    mc = isinstance(wrapper, ExportedMCPoseModel)
    with torch.no_grad():
        x = (random_images(2, h, w, seed).float() / 255.0 - wrapper.img_mean) / wrapper.img_std
        _check_net_outputs(wrapper.head(wrapper.net(x)) if mc else wrapper.net(x), 2)
        try:
            with quiet_torch_deprecations():
                traced = torch.jit.trace(wrapper.net, (x,), check_trace=False)
        except Exception as e:  # tracing fails in many ways; all mean "this net cannot be exported"
            raise RelocError(f"tracing the network for export failed: {e}") from e
    common = (wrapper.pos_mean, wrapper.pos_scale, (w, h), wrapper.img_mean.flatten(), wrapper.img_std.flatten())
    if mc:
        inner: ExportedPoseModel = ExportedMCPoseModel(traced, wrapper.head, wrapper.dropout, *common)
    else:
        inner = ExportedPoseModel(traced, *common)
    with quiet_torch_deprecations():
        return torch.jit.script(inner.eval())


def keep_masks(samples: int, feature_dim: int, dropout: float, seed: int = 0) -> Tensor:
    """Return ``(samples, feature_dim)`` float 0/1 dropout keep masks (keep probability ``1 - dropout``), seeded."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(samples, feature_dim, generator=gen) >= dropout).float()


def pose_diffs(ref: Tuple[Tensor, Tensor], got: Tuple[Tensor, Tensor]) -> tuple[float, float]:
    """Return (max |dt|, max |dq|), with q and -q counted as equal.

    Up to sign because a quaternion with w ~ 0 (a camera turned ~180 deg) may
    land on either hemisphere after a rounding difference.
    """
    t_ref, q_ref = (a.detach().double().cpu() for a in ref)
    t_got, q_got = (a.detach().double().cpu() for a in got)
    if t_ref.shape != t_got.shape or q_ref.shape != q_got.shape:
        return float("inf"), float("inf")
    dt = float((t_ref - t_got).abs().max())
    dq = float(torch.minimum((q_ref - q_got).abs().amax(dim=1), (q_ref + q_got).abs().amax(dim=1)).max())
    return dt, dq


def _verify(eager: ExportedPoseModel, module: nn.Module, what: str, seed: int, rtol: float, atol: float) -> float:
    """Compare ``module`` with the eager wrapper on fresh random images (batch 1 and 3); return max diff."""
    h, w = eager.input_height, eager.input_width
    worst = 0.0
    with torch.no_grad():
        for k, batch in enumerate((1, 3)):
            images = random_images(batch, h, w, seed + 1 + k)
            ref = eager(images)
            dt, dq = pose_diffs(ref, module(images))
            t_tol = atol + rtol * float(ref[0].abs().max())
            if not (dt <= t_tol and dq <= atol + rtol):
                raise RelocError(f"{what} differs from the eager model on random images (batch {batch}): "
                                 f"max |dt| {dt:.3g} (tolerance {t_tol:.3g}), max |dq| {dq:.3g} "
                                 f"(tolerance {atol + rtol:.3g}); the net may be non-deterministic or have "
                                 f"data-dependent Python control flow that tracing cannot record")
            worst = max(worst, dt, dq)
        if isinstance(eager, ExportedMCPoseModel):
            images = random_images(2, h, w, seed + 5)
            keep = keep_masks(4, eager.feature_dim, eager.dropout, seed)
            ref = eager.sample(images, keep)
            got = module.sample(images, keep)
            dt, dq = pose_diffs((ref[2].reshape(-1, 3), ref[3].reshape(-1, 4)),
                                (got[2].reshape(-1, 3), got[3].reshape(-1, 4)))
            if not (dt <= atol + rtol * float(ref[2].abs().max()) and dq <= atol + rtol):
                raise RelocError(f"{what} differs from the eager model in its MC-dropout samples: "
                                 f"max |dt| {dt:.3g}, max |dq| {dq:.3g}")
            worst = max(worst, dt, dq)
    return worst


def export_torchscript(net: nn.Module, path: str | Path, metadata: Mapping[str, Any], pos_mean: Any,
                       pos_scale: Any, input_size: Sequence[int], *, seed: int = 0, rtol: float = 1e-4,
                       atol: float = 1e-4) -> Path:
    """Write ``net`` wrapped in :class:`ExportedPoseModel` as one TorchScript file; return its path.

    ``pos_mean`` (3) and ``pos_scale`` (scalar or 3) are the trainer's position
    normalisation (``p_norm = (p - mean) / scale``); ``input_size`` is
    ``(width, height)``. ``metadata`` is completed and validated by
    :func:`build_metadata`. The net is copied to the CPU in eval mode (the
    caller's net is left as it was), traced, and the saved file is reloaded and
    checked against the eager wrapper before it atomically replaces ``path``.

    Raises ``ValueError`` for bad arguments (including an unwritable target,
    checked before any work) and :class:`RelocError` when the net cannot be
    exported faithfully.
    """
    path = Path(path)
    check_output_file(path, "model")
    eager = wrap_for_export(net, pos_mean, pos_scale, input_size)
    meta = build_metadata(metadata, eager, pos_scale)
    scripted = compile_wrapper(eager, seed)
    with atomic_path(path) as tmp:
        with quiet_torch_deprecations():
            torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: metadata_json(meta)})
            reloaded = torch.jit.load(str(tmp), map_location="cpu")
        diff = _verify(eager, reloaded.eval(), "the saved TorchScript model", seed, rtol, atol)
    logger.info("exported %s model '%s' to %s (%.1f MB; max |saved - eager| %.2g)",
                meta["model_kind"], meta["model"], path, path.stat().st_size / 1e6, diff)
    return path


# --------------------------------------------------------------------------
# Inference on a loaded module
# --------------------------------------------------------------------------

def module_device(module: nn.Module) -> torch.device:
    """Return the device of ``module``'s first buffer (CPU when it has none)."""
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def predict(module: nn.Module, metadata: Mapping[str, Any], images_bhw3: np.ndarray | Tensor
            ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(t_n3 metres, q_n4 unit (x, y, z, w))`` float64 arrays for RGB images ``(B, H, W, 3)``.

    ``images_bhw3`` (uint8, or float in ``[0, 255]``; a single ``(H, W, 3)``
    image is accepted too) must already be preprocessed to the model's
    ``input_size`` with its ``preprocessing`` mode
    (:func:`reloc_ros.preprocess.preprocess_image`); other shapes raise
    ``ValueError`` naming the expected one.
    """
    x = _as_input(metadata, images_bhw3, module_device(module))
    with torch.no_grad():
        t_b3, q_b4 = module(x)
    return _to_numpy(t_b3), _unit(_to_numpy(q_b4))


def mc_predict(module: nn.Module, metadata: Mapping[str, Any], images_bhw3: np.ndarray | Tensor, samples: int,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(t_b3, q_b4, t_bn3, q_bn4)``: predictions and ``samples`` MC-dropout samples per image.

    Images as for :func:`predict`. The keep masks come from a generator seeded
    with ``seed``, so the result is reproducible. ``ValueError`` if the model
    has no MC-dropout entry point (``metadata['mc_dropout']`` absent).
    """
    if "mc_dropout" not in metadata or not has_sample(module):
        raise ValueError(f"model '{metadata.get('model')}' has no MC-dropout samples (exported without dropout "
                         "or by an older reloc_ros); re-export it to get an uncertainty")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    x = _as_input(metadata, images_bhw3, module_device(module))
    keep = keep_masks(samples, int(metadata["mc_dropout"]["feature_dim"]), float(metadata["mc_dropout"]["dropout"]),
                      seed)
    with torch.no_grad():
        t_b3, q_b4, t_bn3, q_bn4 = module.sample(x, keep)
    return _to_numpy(t_b3), _unit(_to_numpy(q_b4)), _to_numpy(t_bn3), _unit(_to_numpy(q_bn4))


def _as_input(metadata: Mapping[str, Any], images_bhw3: np.ndarray | Tensor, device: torch.device) -> Tensor:
    """Check ``(B, H, W, 3)`` / ``(H, W, 3)`` images against the model's input size; return ``(B, 3, H, W)``."""
    w, h = metadata["input_size"]
    if isinstance(images_bhw3, Tensor):
        images = images_bhw3
    else:
        arr = np.ascontiguousarray(images_bhw3)
        images = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or tuple(images.shape[1:]) != (h, w, 3):
        raise ValueError(f"images must be RGB (B, {h}, {w}, 3) or ({h}, {w}, 3), preprocessed with "
                         f"'{metadata.get('preprocessing')}' to {w}x{h}; got shape {tuple(images_bhw3.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"images must be uint8 or float in [0, 255], got dtype {images.dtype}")
    return images.to(device).permute(0, 3, 1, 2)


def _to_numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def _unit(q: np.ndarray) -> np.ndarray:
    # Renormalise in float64 so downstream unit-quaternion checks see |q| = 1 to double precision.
    return q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _QUAT_EPS)


def has_sample(module: nn.Module) -> bool:
    """Whether ``module`` has the MC-dropout entry point ``sample(images, keep)``."""
    return callable(getattr(module, "sample", None))
