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

"""The reloc_ros model file: its format, metadata and versions; reading it, for training and the robot alike.

A model file is one TorchScript archive (``.pt``) or one ONNX model
(``.onnx``). Beside the network it carries a JSON metadata entry
(:data:`METADATA_FILE`: an ``_extra_files`` entry of the TorchScript zip, a
``metadata_props`` entry of the ONNX model) with the input size,
preprocessing, normalisations, frames, training data, metrics and, from
version 1 on, every key of :data:`REQUIRED_KEYS`. A model file may carry more
entries (the 3-D feature map that verifies poses, :mod:`reloc_ros.mapping.storage`).

This module is what both sides share: the trainer's exporters
(:mod:`reloc_ros.training.export`, :mod:`reloc_ros.training.camnet_export`)
write files in this format, and the runtime (:mod:`reloc_ros.runtime.engine`)
reads them through :func:`read_metadata`, :func:`load_model` and
:func:`import_onnx`, without importing any training code. torch is imported
only where a TorchScript network is loaded, so reading metadata and running an
ONNX model need no torch.
"""

from __future__ import annotations

from contextlib import contextmanager
import importlib
import json
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, TYPE_CHECKING
import warnings
import zipfile

import numpy as np

from reloc_ros import __version__
from reloc_ros.errors import RelocError
from reloc_ros.preprocess import MODES

if TYPE_CHECKING:
    import torch

ONNX_HINT = "pip install onnx onnxruntime"
"""How to install what ONNX export and inference need."""


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


ONNX_MC_OUTPUTS = ["t_b3", "q_b4", "t_bn3", "q_bn4"]
"""Outputs of an ONNX model exported from an MC-dropout model (inputs: ``images``, ``keep``)."""


def check_input_size(input_size: Sequence[int]) -> tuple[int, int]:
    """Return ``input_size`` as ``(width, height)``, two positive integers; ``ValueError`` otherwise."""
    try:
        w, h = (int(v) for v in input_size)
        ok = (w, h) == tuple(input_size) and w > 0 and h > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"input_size must be two positive integers (width, height), got {input_size!r}")
    return w, h


@contextmanager
def quiet_torch_deprecations() -> Iterator[None]:
    """Silence torch 2.13's deprecation notices for the TorchScript / legacy ONNX calls made here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*deprecated")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*legacy TorchScript-based ONNX")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*feature will be removed")
        warnings.filterwarnings("ignore", category=UserWarning, message=r".*no signature found for")
        yield


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.generic, np.ndarray)) or type(obj).__name__ == "Tensor":
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON-serialisable")


def metadata_json(metadata: Mapping[str, Any]) -> str:
    """Return ``metadata`` as the JSON text stored in a model file; ``ValueError`` if it is not serialisable."""
    try:
        return json.dumps(metadata, indent=2, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model metadata must be JSON-serialisable: {e}") from e


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
    onnx, _ = import_onnx()
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
        check_input_size(meta["input_size"])
    except ValueError as e:
        raise RelocError(f"model file '{path}' has invalid metadata input_size: {e}") from e
    if meta["preprocessing"] not in MODES:
        raise RelocError(f"model file '{path}' has unknown preprocessing {meta['preprocessing']!r} "
                         f"(known: {', '.join(MODES)})")
    return meta


def pick_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """Resolve 'auto' (CUDA if available, else CPU), 'cpu' or 'cuda[:N]', with clear errors."""
    import torch

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
    :func:`reloc_ros.training.export.predict` feeds it ``(B, H, W, 3)`` images.
    """
    import torch

    path = Path(path)
    dev = pick_device(device)
    meta = read_metadata(path)
    try:
        with quiet_torch_deprecations():
            module = torch.jit.load(str(path), map_location=dev)
    except Exception as e:  # torch raises RuntimeError, ValueError, pickle errors ... for damaged archives
        raise _not_a_model(path, f"TorchScript cannot load it: {e}; saved with torch "
                                 f"{meta.get('torch_version', '?')}, this is torch {torch.__version__}") from e
    return module.eval(), meta


def import_onnx(runtime_only: bool = False) -> tuple[Any, Any]:
    """Return ``(onnx, onnxruntime)`` (``onnx`` is None with ``runtime_only``); ``RelocError`` naming the install."""
    try:
        import onnxruntime
        onnx = None if runtime_only else importlib.import_module("onnx")
    except ImportError as e:
        raise RelocError(f"ONNX export and checking need the onnx and onnxruntime packages ({e}): "
                         f"{ONNX_HINT}") from e
    return onnx, onnxruntime


def read_model_metadata(path: str | Path) -> dict[str, Any]:
    """Return the validated metadata of a TorchScript (``.pt``) or ONNX (``.onnx``) model file."""
    return read_onnx_metadata(path) if Path(path).suffix.lower() == ".onnx" else read_metadata(path)


def describe_quality(quality: dict[str, Any]) -> str:
    """Return one line on a model file's ``quality`` (:func:`reloc_ros.evaluation.model_quality`): weak or not, why."""
    figures = (f"validation ({quality['split']}, {quality['frames']} frames): model {quality['model_median_m']:.3f} m "
               f"/ {quality['model_median_deg']:.1f} deg, mean mapping pose {quality['mean_pose_median_m']:.3f} m / "
               f"{quality['mean_pose_median_deg']:.1f} deg, nearest-mapping-frame retrieval "
               f"{quality['retrieval_median_m']:.3f} m / {quality['retrieval_median_deg']:.1f} deg")
    if quality["weak"]:
        return (f"WEAK MODEL: it does not beat the mean mapping pose by the required margin (at most "
                f"{quality['margin']:.0%} of its error); {figures}. Its poses are barely better than a constant: "
                f"see the README, 'When the trainer says the model is weak'")
    worse = "" if quality["beats_retrieval"] else "; it does not beat nearest-frame retrieval"
    return f"model beats the mean mapping pose{worse}; {figures}"
