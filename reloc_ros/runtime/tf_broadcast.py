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

"""The map -> odom correction as the node broadcasts it: future-dated, and held between corrections. ROS-free.

A localizer that owns ``map -> odom`` must keep it in TF continuously, not
only on the frames it is confident about: Nav2 looks up ``map -> base_link``
at "now", and a transform last stamped at an old image time makes those
lookups fail with extrapolation errors. AMCL solves this by stamping the
transform ``transform_tolerance`` ahead and re-sending its last one; this
does the same: every correction is stamped ``image stamp + tolerance``, and
the last correction is re-broadcast at ``rebroadcast_hz`` stamped ``now +
tolerance`` until the next one replaces it.
"""

from __future__ import annotations

import math

import numpy as np

NS_PER_S = 1_000_000_000


class MapOdomBroadcast:
    """Stamps for the map -> odom correction and the held transform to re-broadcast.

    Args:
        tolerance_s: how far ahead of its time a transform is stamped (>= 0).
        rebroadcast_hz: re-broadcast rate of the last correction (0: never).
    """

    def __init__(self, tolerance_s: float, rebroadcast_hz: float) -> None:
        if not (math.isfinite(tolerance_s) and tolerance_s >= 0):
            raise ValueError(f"tolerance_s must be a finite number >= 0, got {tolerance_s!r}")
        if not (math.isfinite(rebroadcast_hz) and rebroadcast_hz >= 0):
            raise ValueError(f"rebroadcast_hz must be a finite number >= 0 (0: no re-broadcast), "
                             f"got {rebroadcast_hz!r}")
        self.tolerance_ns = int(round(tolerance_s * NS_PER_S))
        self.rebroadcast_hz = float(rebroadcast_hz)
        self._held: tuple[np.ndarray, str, str] | None = None

    @property
    def period_s(self) -> float | None:
        """Seconds between re-broadcasts, None when there are none."""
        return 1.0 / self.rebroadcast_hz if self.rebroadcast_hz > 0 else None

    def correct(self, T_parent_child: np.ndarray, stamp_ns: int, parent: str, child: str) -> int:
        """Hold a new correction (from the image at ``stamp_ns``); return the stamp to broadcast it with."""
        self._held = (np.array(T_parent_child, dtype=np.float64), parent, child)
        return int(stamp_ns) + self.tolerance_ns

    def rebroadcast(self, now_ns: int) -> tuple[np.ndarray, int, str, str] | None:
        """Return the held correction stamped ``now + tolerance`` (T, stamp_ns, parent, child); None before any."""
        if self._held is None or self.rebroadcast_hz <= 0:
            return None
        T, parent, child = self._held
        return T, int(now_ns) + self.tolerance_ns, parent, child

    def clear(self) -> None:
        """Forget the held correction (the node is deactivated or cleaned up)."""
        self._held = None
