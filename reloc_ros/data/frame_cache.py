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

"""The cache of decoded frames: a read of bags kept on disk, keyed by the bags' files and the read's options.

An entry is three arrays and a JSON file written last, each atomically, so a
crash never leaves an entry that reads as complete. An unreadable entry is
ignored with a warning (and rewritten).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from reloc_ros.data.bag_file import BagSource, bag_path
from reloc_ros.data.types import Intrinsics, PoseDataset, SkipReport
from reloc_ros.io_utils import atomic_path

log = logging.getLogger(__name__)

# 2: skip reasons by kind of undecodable image and bad ground-truth sample, ignored samples kept.
CACHE_VERSION = 2


def check_cache_dir(cache_dir: str | Path) -> Path:
    """Return ``cache_dir`` if the cache can be written there; ``ValueError`` saying why not.

    Run before any decoding, so a bad path costs nothing: the directory must
    be a writable directory, or creatable (its nearest existing parent a
    writable directory).
    """
    d = Path(cache_dir)
    if d.exists() and not d.is_dir():
        raise ValueError(f"cache directory '{d}' exists and is not a directory; give a directory path")
    existing = d
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot create cache directory '{d}': '{existing}' is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cache directory '{d}' cannot be written: '{existing}' is not writable")
    return d


def cache_key(paths: str | Path | Sequence[str | Path], source: BagSource,
              image_size: tuple[int, int] | None, mode: str) -> str:
    """Return the entry name of a read: the bags' files (path, size, mtime), the source options, size and mode."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = []
    for p in paths:
        p = bag_path(p).resolve()
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if f.is_file():
                st = f.stat()
                files.append((str(f), st.st_size, st.st_mtime_ns))
    blob = json.dumps({"v": CACHE_VERSION, "files": files, "source": asdict(source),
                       "size": list(image_size) if image_size else None, "mode": mode}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_cache(cache_dir: Path, key: str) -> PoseDataset | None:
    """Return the cached dataset of ``key`` (images memory-mapped), or None if there is none or it is unreadable."""
    meta_path = cache_dir / f"{key}.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays = np.load(cache_dir / f"{key}.npz")
        images = np.load(cache_dir / f"{key}.images.npy", mmap_mode="r")
        depths = np.load(cache_dir / f"{key}.depths.npy", mmap_mode="r") if meta["has_depth"] else None
        skipped = SkipReport()
        for reason, n in meta["skipped"].items():
            skipped.add(reason, n)
        for reason, n in meta.get("ignored_samples", {}).items():
            skipped.add_ignored_sample(reason, n)
        ds = PoseDataset(stamps_ns=arrays["stamps_ns"], poses_n44=arrays["poses_n44"],
                         intrinsics=Intrinsics(**meta["intrinsics"]) if meta["intrinsics"] else None,
                         images=images, depths=depths, skipped=skipped, source=meta["source"],
                         map_frame=meta["map_frame"], camera_frame=meta["camera_frame"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable cache entry %s: %s", meta_path, exc)
        return None
    log.info("read %d decoded frames from cache %s", len(ds), meta_path)
    return ds


def save_cache(cache_dir: Path, key: str, ds: PoseDataset) -> None:
    """Write ``ds`` as the entry ``key``: arrays first, metadata last (an entry only counts once its .json exists)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache_dir / f"{key}.images.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(ds.images))
    if ds.depths is not None:
        with atomic_path(cache_dir / f"{key}.depths.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, ds.depths)
    with atomic_path(cache_dir / f"{key}.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, stamps_ns=ds.stamps_ns, poses_n44=ds.poses_n44)
    meta = {"source": ds.source, "map_frame": ds.map_frame, "camera_frame": ds.camera_frame,
            "intrinsics": asdict(ds.intrinsics) if ds.intrinsics else None,
            "skipped": dict(ds.skipped.counts), "ignored_samples": dict(ds.skipped.ignored_samples),
            "has_depth": ds.depths is not None}
    with atomic_path(cache_dir / f"{key}.json") as tmp:
        tmp.write_text(json.dumps(meta))
