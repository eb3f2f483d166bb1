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

"""What every dataset layout reader shares: a lazy image loader, line parsing with ``file:line`` errors, clocks.

Parsing is line by line so that every malformed line is reported as
``file:line`` with the expected format.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from reloc_ros.errors import RelocError
from reloc_ros.geometry import quat_normalize

# Synthetic clocks put sequence k at k * spacing so a frame gets the same stamp
# whichever split it is read in; the spacing grows only for sequences longer than this.
_SEQ_SPACING_NS = 1000 * 1_000_000_000
#: Nanoseconds per second.
NS_PER_S = 1_000_000_000


class ImageLoader:
    """Callable ``loader(i) -> RGB uint8 (H, W, 3)`` reading ``paths[i]`` lazily.

    A class rather than a closure so a dataset can be pickled into DataLoader
    worker processes.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __call__(self, i: int) -> np.ndarray:
        path = self.paths[i]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise RelocError(f"image '{path}' could not be read or decoded")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def data_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, whitespace-split tokens) of non-blank, non-comment lines."""
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            yield lineno, text.split()


def parse_floats(tokens: Sequence[str], where: str, expected: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        raise ValueError(f"{where}: expected {expected}, got non-numeric value in '{' '.join(tokens)}'") from None


def parse_stamp_ns(token: str, where: str) -> int:
    """Seconds as decimal text -> integer nanoseconds, exactly (no float rounding)."""
    try:
        sec = Decimal(token)
    except InvalidOperation:
        raise ValueError(f"{where}: timestamp '{token}' is not a number of seconds") from None
    if not sec.is_finite():
        raise ValueError(f"{where}: timestamp '{token}' is not finite")
    return int((sec * NS_PER_S).to_integral_value())


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ValueError(f"{what} '{path}' does not exist")
    return path


def require_dir(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{what} '{p}' is not a directory")
    return p


def check_images_exist(paths: Sequence[Path], listed_in: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ValueError(f"{len(missing)} image(s) listed in {listed_in} do not exist: {shown}{more}")


def normalize_quats_at(q_n4: np.ndarray, wheres: Sequence[str]) -> np.ndarray:
    """quat_normalize on a batch, re-raising geometry's error prefixed with the offending ``file:line``."""
    try:
        return quat_normalize(q_n4)
    except ValueError as err:
        for row, where in zip(q_n4, wheres):
            try:
                quat_normalize(row)
            except ValueError as row_err:
                raise ValueError(f"{where}: {row_err}") from err
        raise


def synthetic_stamps(seq_nums: np.ndarray, frame_nums: np.ndarray, rate_hz: float) -> np.ndarray:
    """Stamps for datasets without times: frame / rate, sequence k offset by k * spacing.

    The spacing is 1000 s (or the next multiple of it above the longest
    sequence), so every sequence starts after the previous one ends and a frame's
    stamp does not depend on which other sequences were read.
    """
    if not np.isfinite(rate_hz) or rate_hz <= 0:
        raise ValueError(f"rate_hz must be a finite frame rate > 0, got {rate_hz}")
    # Rounded per frame (not frame * rounded period) so no error accumulates along a sequence.
    frame_ns = np.rint(np.asarray(frame_nums, dtype=np.float64) * (NS_PER_S / rate_hz)).astype(np.int64)
    span_ns = int(frame_ns.max()) + int(round(NS_PER_S / rate_hz)) if len(frame_ns) else 0
    spacing = max(_SEQ_SPACING_NS, -(-span_ns // _SEQ_SPACING_NS) * _SEQ_SPACING_NS)
    return np.asarray(seq_nums, dtype=np.int64) * spacing + frame_ns
