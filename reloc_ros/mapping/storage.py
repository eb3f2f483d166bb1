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

"""The feature map inside the model file: one file still carries everything.

A TorchScript model file is a zip archive. The map travels in it as one more
extra file, ``reloc_ros/feature_map.npz`` (numpy arrays and a JSON header,
never a pickle), beside ``reloc_ros/metadata.json``. The metadata's
``feature_map`` entry describes it (feature type, key frames, points,
intrinsics, reprojection statistics), holds the calibration of the verified
covariance and the map's SHA-256, which the reader checks: a map copied in
from another model, or damaged, is refused.

Reading needs no torch (the archive is read as a zip); writing re-saves the
TorchScript module with ``torch.jit.save``, atomically.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any, Mapping

from reloc_ros.errors import RelocError
from reloc_ros.io_utils import atomic_path, check_output_file
from reloc_ros.mapping.featuremap import FeatureMap, digest

logger = logging.getLogger(__name__)

MAP_ENTRY = "reloc_ros/feature_map.npz"
"""Name of the map inside the TorchScript archive (an ``_extra_files`` key)."""
_METADATA_ENTRY = "reloc_ros/metadata.json"  # the model metadata's entry (training.export.METADATA_FILE)


def _entry(zf: zipfile.ZipFile, name: str) -> str | None:
    for n in zf.namelist():
        if n.split("/", 1)[-1] == f"extra/{name}":
            return n
    return None


def read_stored_metadata(model_path: str | Path) -> dict[str, Any] | None:
    """Return the metadata JSON of a TorchScript model file read as a zip (no torch), or None if it has none.

    Not validated as a model (that is the loader's job): for comparing a file with another's metadata.
    """
    path = Path(model_path)
    try:
        with zipfile.ZipFile(path) as zf:
            name = _entry(zf, _METADATA_ENTRY)
            meta = None if name is None else json.loads(zf.read(name).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, ValueError) as e:
        raise RelocError(f"cannot read the metadata of '{path}': {e}") from e
    return meta if isinstance(meta, dict) else None


def read_map_bytes(model_path: str | Path) -> bytes | None:
    """Return the stored map of a TorchScript model file, or None when it has none."""
    path = Path(model_path)
    try:
        with zipfile.ZipFile(path) as zf:
            name = _entry(zf, MAP_ENTRY)
            return None if name is None else zf.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise RelocError(f"cannot read the feature map of '{path}': {e}") from e


def load_map(model_path: str | Path, metadata: Mapping[str, Any]) -> tuple[FeatureMap, dict | None] | None:
    """Return the model file's feature map and its covariance calibration (a dict), or None without a map.

    Raises :class:`RelocError` when the metadata and the archive disagree
    (a map without its description, or the reverse), when the stored map's
    hash is not the one the metadata names (a map from another model), or
    when the map itself is corrupt or of a newer format.
    """
    entry = metadata.get("feature_map")
    data = read_map_bytes(model_path) if zipfile.is_zipfile(model_path) else None
    if entry is None and data is None:
        return None
    if entry is None:
        raise RelocError(f"model file '{model_path}' holds a feature map that its metadata does not describe: "
                         "it was not written by reloc_ros; rebuild it with 'reloc-ros map'")
    if data is None:
        raise RelocError(f"model file '{model_path}' says it carries a feature map but holds none: "
                         "rebuild it with 'reloc-ros map'")
    if digest(data) != entry.get("sha256"):
        raise RelocError(f"the feature map in '{model_path}' is not the one its metadata names (sha256 "
                         f"{digest(data)[:12]} != {str(entry.get('sha256'))[:12]}): it belongs to another model or "
                         "is damaged; rebuild it with 'reloc-ros map'")
    return FeatureMap.from_bytes(data, what=f"feature map of '{model_path}'"), entry.get("calibration")


def check_map_target(model_path: str | Path) -> Path:
    """Return the model file a map is stored in, if it can be rewritten; ``ValueError`` saying why not.

    Refused before any work: an ONNX file (maps live in the TorchScript
    model), a directory, a missing or unwritable directory
    (:func:`reloc_ros.io_utils.check_output_file`).
    """
    path = Path(model_path)
    if path.suffix.lower() == ".onnx":
        raise ValueError(f"'{path}' is an ONNX file: the feature map is stored in the TorchScript model file "
                         "(.pt); verification runs with the TorchScript backend")
    return check_output_file(path, "model")


def embed_map(model_path: str | Path, fmap: FeatureMap, calibration: Mapping[str, Any] | None,
              extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Store ``fmap`` (and its calibration) in the TorchScript model file, replacing any map; return the entry.

    The model is re-saved atomically: a crash leaves the old file. ``extra``
    goes into the metadata's ``feature_map`` entry (e.g. the bags it was
    built from and the time it took).
    """
    import torch

    from reloc_ros.modelfile import METADATA_FILE, read_metadata

    path = check_map_target(model_path)
    meta = read_metadata(path)
    data = fmap.to_bytes()
    entry = {**fmap.summary(), "sha256": digest(data), "bytes": len(data),
             "calibration": None if calibration is None else dict(calibration), **dict(extra or {})}
    meta["feature_map"] = entry
    module = torch.jit.load(str(path), map_location="cpu")
    text = json.dumps(meta, indent=2, sort_keys=True)  # every part is plain JSON already (read, or to_dict)
    with atomic_path(path) as tmp:
        torch.jit.save(module, str(tmp), _extra_files={METADATA_FILE: text, MAP_ENTRY: data})
    logger.info("stored the feature map in %s (%.1f MB: %d key frames, %d points)", path, len(data) / 1e6,
                entry.get("keyframes", 0), entry.get("points", 0))
    return entry
