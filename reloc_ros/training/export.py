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
node. :func:`load_model` validates it; :func:`predict` is the small helper that
tests, evaluation and the runtime use.

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
import importlib
import json
import logging
import os
import warnings
import zipfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, Tuple

import numpy as np
import torch
from torch import nn, Tensor

from reloc_ros import __version__
from reloc_ros.errors import RelocError
from reloc_ros.io_utils import atomic_path
from reloc_ros.nets.backbones import IMAGENET_MEAN, IMAGENET_STD
from reloc_ros.preprocess import MODES

logger = logging.getLogger(__name__)

FORMAT = "reloc_ros.model"
FORMAT_VERSION = 1
"""Newest model format version this reloc_ros writes and reads."""
METADATA_FILE = "reloc_ros/metadata.json"
"""Name of the metadata entry: ``_extra_files`` key (TorchScript) and ``metadata_props`` key (ONNX)."""

REQUIRED_KEYS: tuple[str, ...] = (
    "format", "format_version", "reloc_ros_version", "model_kind", "model", "input_size", "preprocessing",
    "image_normalisation", "pose_normalisation", "frames", "training_data", "metrics", "outputs", "created")
"""Metadata keys every version-1 model file carries."""

OUTPUTS_DESCRIPTION = {
    "t_b3": "camera position (x, y, z) in frames.map_frame, metres: the translation of T_map_camera",
    "q_b4": "camera orientation (x, y, z, w) in frames.map_frame, unit length, w >= 0: the rotation of T_map_camera",
}
INPUT_DESCRIPTION = {
    "images": "(B, 3, H, W) RGB, uint8 or float in [0, 255], preprocessed to input_size [W, H]",
}

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
        w, h = _check_input_size(input_size)
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
    net = _frozen_cpu_copy(net)
    if supports_mc_dropout(net):
        return ExportedMCPoseModel(_Trunk(net), PoseHead(net.fc_t, net.fc_q), net.dropout.p, pos_mean, pos_scale,
                                   input_size).eval()
    return ExportedPoseModel(net, pos_mean, pos_scale, input_size).eval()


def _check_input_size(input_size: Sequence[int]) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in input_size)
        ok = (w, h) == tuple(input_size) and w > 0 and h > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"input_size must be two positive integers (width, height), got {input_size!r}")
    return w, h


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

@contextmanager
def _quiet_torch_deprecations() -> Iterator[None]:
    """Silence torch 2.13's deprecation notices for the TorchScript / legacy ONNX calls made here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*deprecated")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*legacy TorchScript-based ONNX")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*feature will be removed")
        warnings.filterwarnings("ignore", category=UserWarning, message=r".*no signature found for")
        yield


def _check_target(path: Path) -> None:
    """Raise ``ValueError`` now, before any work, if ``path`` cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(f"cannot write model '{path}': it is a directory; give a file name such as '{path}/model.pt'")
    if not parent.is_dir():
        raise ValueError(f"cannot write model '{path}': directory '{parent}' does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"cannot write model '{path}': directory '{parent}' is not writable")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.generic, np.ndarray, Tensor)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON-serialisable")


def _dumps(metadata: Mapping[str, Any]) -> str:
    try:
        return json.dumps(metadata, indent=2, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model metadata must be JSON-serialisable: {e}") from e


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
    if "input_size" in meta and list(_check_input_size(meta["input_size"])) != size:
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
    return json.loads(_dumps(meta))


def _frozen_cpu_copy(net: nn.Module) -> nn.Module:
    """Return a CPU copy of ``net`` in eval mode without gradients; the trainer's net is not touched."""
    net = copy.deepcopy(net).to("cpu").eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _random_images(batch: int, h: int, w: int, seed: int) -> Tensor:
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
        x = (_random_images(2, h, w, seed).float() / 255.0 - wrapper.img_mean) / wrapper.img_std
        _check_net_outputs(wrapper.head(wrapper.net(x)) if mc else wrapper.net(x), 2)
        try:
            with _quiet_torch_deprecations():
                traced = torch.jit.trace(wrapper.net, (x,), check_trace=False)
        except Exception as e:  # tracing fails in many ways; all mean "this net cannot be exported"
            raise RelocError(f"tracing the network for export failed: {e}") from e
    common = (wrapper.pos_mean, wrapper.pos_scale, (w, h), wrapper.img_mean.flatten(), wrapper.img_std.flatten())
    if mc:
        inner: ExportedPoseModel = ExportedMCPoseModel(traced, wrapper.head, wrapper.dropout, *common)
    else:
        inner = ExportedPoseModel(traced, *common)
    with _quiet_torch_deprecations():
        return torch.jit.script(inner.eval())


def keep_masks(samples: int, feature_dim: int, dropout: float, seed: int = 0) -> Tensor:
    """Return ``(samples, feature_dim)`` float 0/1 dropout keep masks (keep probability ``1 - dropout``), seeded."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(samples, feature_dim, generator=gen) >= dropout).float()


def _pose_diffs(ref: Tuple[Tensor, Tensor], got: Tuple[Tensor, Tensor]) -> tuple[float, float]:
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
            images = _random_images(batch, h, w, seed + 1 + k)
            ref = eager(images)
            dt, dq = _pose_diffs(ref, module(images))
            t_tol = atol + rtol * float(ref[0].abs().max())
            if not (dt <= t_tol and dq <= atol + rtol):
                raise RelocError(f"{what} differs from the eager model on random images (batch {batch}): "
                                 f"max |dt| {dt:.3g} (tolerance {t_tol:.3g}), max |dq| {dq:.3g} "
                                 f"(tolerance {atol + rtol:.3g}); the net may be non-deterministic or have "
                                 f"data-dependent Python control flow that tracing cannot record")
            worst = max(worst, dt, dq)
        if isinstance(eager, ExportedMCPoseModel):
            images = _random_images(2, h, w, seed + 5)
            keep = keep_masks(4, eager.feature_dim, eager.dropout, seed)
            ref = eager.sample(images, keep)
            got = module.sample(images, keep)
            dt, dq = _pose_diffs((ref[2].reshape(-1, 3), ref[3].reshape(-1, 4)),
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
    _check_target(path)
    eager = wrap_for_export(net, pos_mean, pos_scale, input_size)
    meta = build_metadata(metadata, eager, pos_scale)
    scripted = compile_wrapper(eager, seed)
    with atomic_path(path) as tmp:
        with _quiet_torch_deprecations():
            torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: _dumps(meta)})
            reloaded = torch.jit.load(str(tmp), map_location="cpu")
        diff = _verify(eager, reloaded.eval(), "the saved TorchScript model", seed, rtol, atol)
    logger.info("exported %s model '%s' to %s (%.1f MB; max |saved - eager| %.2g)",
                meta["model_kind"], meta["model"], path, path.stat().st_size / 1e6, diff)
    return path


# --------------------------------------------------------------------------
# Loading and inference
# --------------------------------------------------------------------------

def _not_a_model(path: Path, why: str) -> RelocError:
    return RelocError(f"'{path}' is not a reloc_ros model file ({why})")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Return the validated metadata of the model file ``path`` without loading the network.

    Raises :class:`RelocError` ("... is not a reloc_ros model file (...)") for
    anything that is not a reloc_ros model, a newer ``format_version`` than this
    reloc_ros reads, or missing keys; ``ValueError`` if ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file '{path}' does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    # Read the archive directly: a future format may not even load in this torch, and the
    # version check must come first to say so.
    if not zipfile.is_zipfile(path):
        raise _not_a_model(path, "not a zip archive: truncated, corrupt or another format")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            meta_names = [n for n in names if n.split("/", 1)[-1] == f"extra/{METADATA_FILE}"]
            if not meta_names:
                if not any(n.split("/", 1)[-1] == "constants.pkl" for n in names):
                    kind = ("a torch.save file (state_dict or checkpoint), not an exported model"
                            if any(n.endswith("data.pkl") for n in names) else "a zip archive that is not TorchScript")
                else:
                    kind = "TorchScript without reloc_ros metadata"
                raise _not_a_model(path, kind)
            text = zf.read(meta_names[0]).decode("utf-8")
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, EOFError) as e:
        raise _not_a_model(path, f"unreadable archive: {e}") from e
    return validate_metadata(text, path)


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """Return the validated metadata of an ONNX model written by :func:`export_onnx` (needs ``onnx``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file '{path}' does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    onnx, _ = _import_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError and friends for anything that is not ONNX
        raise _not_a_model(path, f"ONNX cannot read it: {e}") from e
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_FILE not in props:
        raise _not_a_model(path, "ONNX without reloc_ros metadata")
    return validate_metadata(props[METADATA_FILE], path)


def validate_metadata(text: str, path: str | Path) -> dict[str, Any]:
    """Parse and validate the metadata JSON of the model file ``path`` (format, version, required keys)."""
    path = Path(path)
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise _not_a_model(path, f"{METADATA_FILE} is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise _not_a_model(path, f"metadata format is {got!r}, expected '{FORMAT}'")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RelocError(f"model file '{path}' has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise RelocError(f"model file '{path}' has format_version {version} (written by reloc_ros "
                         f"{meta.get('reloc_ros_version', '?')}); this reloc_ros {__version__} reads format_version "
                         f"<= {FORMAT_VERSION}: upgrade reloc_ros")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise RelocError(f"model file '{path}' (format_version {version}) lacks metadata keys: {', '.join(missing)}")
    try:
        _check_input_size(meta["input_size"])
    except ValueError as e:
        raise RelocError(f"model file '{path}' has invalid metadata input_size: {e}") from e
    if meta["preprocessing"] not in MODES:
        raise RelocError(f"model file '{path}' has unknown preprocessing {meta['preprocessing']!r} "
                         f"(known: {', '.join(MODES)})")
    return meta


def pick_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """Resolve 'auto' (CUDA if available, else CPU), 'cpu' or 'cuda[:N]', with clear errors."""
    if isinstance(device, str) and device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"invalid device {device!r}; use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available; use auto or cpu")
    return dev


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported model; return ``(module in eval mode on device, metadata)``.

    Metadata is validated first (:func:`read_metadata`); failures raise
    :class:`RelocError`. The module is ``module(images_b3hw) -> (t_b3, q_b4)``;
    :func:`predict` feeds it ``(B, H, W, 3)`` images.
    """
    path = Path(path)
    dev = pick_device(device)
    meta = read_metadata(path)
    try:
        with _quiet_torch_deprecations():
            module = torch.jit.load(str(path), map_location=dev)
    except Exception as e:  # torch raises RuntimeError, ValueError, pickle errors ... for damaged archives
        raise _not_a_model(path, f"TorchScript cannot load it: {e}; saved with torch "
                                 f"{meta.get('torch_version', '?')}, this is torch {torch.__version__}") from e
    return module.eval(), meta


def _module_device(module: nn.Module) -> torch.device:
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
    x = _as_input(metadata, images_bhw3, _module_device(module))
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
    if "mc_dropout" not in metadata or not _has_sample(module):
        raise ValueError(f"model '{metadata.get('model')}' has no MC-dropout samples (exported without dropout "
                         "or by an older reloc_ros); re-export it to get an uncertainty")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    x = _as_input(metadata, images_bhw3, _module_device(module))
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


# --------------------------------------------------------------------------
# Optional ONNX export
# --------------------------------------------------------------------------

def _import_onnx(runtime_only: bool = False) -> tuple[Any, Any]:
    try:
        import onnxruntime
        onnx = None if runtime_only else importlib.import_module("onnx")
    except ImportError as e:
        raise RelocError(f"ONNX export and checking need the onnx and onnxruntime packages ({e}): "
                         f"{_ONNX_HINT}") from e
    return onnx, onnxruntime


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
    onnx, _ = _import_onnx()
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    onnx_path = Path(onnx_path)
    _check_target(onnx_path)
    if isinstance(source, (str, Path)):
        module, file_meta = load_model(source, "cpu")
        metadata = file_meta if metadata is None else metadata
    elif isinstance(source, torch.jit.ScriptModule):
        module = source if _module_device(source).type == "cpu" else copy.deepcopy(source).cpu()
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
    meta_text = _dumps(metadata)
    module = module.eval()
    with atomic_path(onnx_path) as tmp:
        with _quiet_torch_deprecations(), torch.no_grad():
            # dynamo=False: the TorchScript-based exporter takes our scripted module as it is and needs
            # no onnxscript; H and W are fixed, so ONNX Runtime itself rejects wrongly sized inputs.
            images = torch.zeros(1, 3, h, w, dtype=torch.uint8)
            if _has_sample(module):
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
            diff = check_onnx(tmp, module, _random_images(3, h, w, seed + 7), atol=atol)
            logger.info("exported ONNX model to %s (opset %d; max |onnx - torchscript| %.2g)", onnx_path, opset, diff)
    return onnx_path


ONNX_MC_OUTPUTS = ["t_b3", "q_b4", "t_bn3", "q_bn4"]
"""Outputs of an ONNX model exported from an MC-dropout model (inputs: ``images``, ``keep``)."""


def _has_sample(module: nn.Module) -> bool:
    return callable(getattr(module, "sample", None))


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
    _, ort = _import_onnx(runtime_only=True)
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
    dt, dq = _pose_diffs(ref, (torch.from_numpy(got[0]), torch.from_numpy(got[1])))
    diff = max(dt, dq)
    logger.info("ONNX vs TorchScript on %d images: max |dt| %.3g m, max |dq| %.3g", images.shape[0], dt, dq)
    if not diff <= atol:
        raise RelocError(f"ONNX model '{onnx_path}' differs from TorchScript: max |dt| {dt:.3g}, "
                         f"max |dq| {dq:.3g} > tolerance {atol:.3g}")
    return diff


def read_model_metadata(path: str | Path) -> dict[str, Any]:
    """Return the validated metadata of a TorchScript (``.pt``) or ONNX (``.onnx``) model file."""
    return read_onnx_metadata(path) if Path(path).suffix.lower() == ".onnx" else read_metadata(path)
