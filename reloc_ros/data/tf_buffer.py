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

"""A TF buffer for recorded data: look up any frame chain at any stamp, without ROS.

tf2 semantics where they matter for ground truth:

* every frame has at most one parent; a transform ``parent -> child`` is the
  pose of ``child`` in ``parent`` (``T_parent_child``);
* between two samples a transform is interpolated (lerp + slerp);
* outside the recorded samples nothing is extrapolated except within a small
  tolerance (then the nearest sample is held), so a pose is never invented;
* a second sample with the same stamp on the same edge is ignored (tf2's
  TF_REPEATED_DATA), and counted;
* a bad sample (NaN, zero or non-unit quaternion: tf2's TF_NAN_INPUT and
  TF_DENORMALIZED_QUATERNION) is ignored; the lookups it would have served
  (between its good neighbours on its edge) get the reason it was given
  (:meth:`TfBuffer.add_bad`), so no pose comes from interpolating across it.

Additionally, a gap between two samples wider than ``max_gap_s`` is refused:
interpolating across a dropout of seconds would silently produce a wrong pose.

Lookups are vectorised over stamps because bag extraction asks for thousands.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from reloc_ros.data.types import SKIP_AFTER_LAST_TF, SKIP_NO_TF_YET, SKIP_OUTSIDE_TOLERANCE
from reloc_ros.geometry import compose, invert_pose, make_pose, pose_to_tq, slerp

log = logging.getLogger(__name__)


class TfLookupError(ValueError):
    """The requested frames are not connected, or a frame is unknown."""


@dataclass
class PoseSeries:
    """Samples of one time-varying transform, interpolated like tf2 does.

    ``bad_stamps_ns`` / ``bad_reasons``: samples that were ignored (e.g. a
    NaN quaternion) and the skip reason of every query they would have served.
    """

    stamps_ns: np.ndarray
    poses_n44: np.ndarray
    duplicates: int = 0
    bad_stamps_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bad_reasons: tuple[str, ...] = ()

    @classmethod
    def from_samples(cls, stamps_ns: np.ndarray, poses_n44: np.ndarray, bad_stamps_ns: np.ndarray | None = None,
                     bad_reasons: tuple[str, ...] | list[str] = ()) -> "PoseSeries":
        """Sort samples by stamp; keep the first of samples sharing a stamp (tf2 rule); keep the bad ones apart."""
        stamps = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
        poses = np.asarray(poses_n44, dtype=np.float64).reshape(-1, 4, 4)
        order = np.argsort(stamps, kind="stable")
        stamps, poses = stamps[order], poses[order]
        keep = np.ones(len(stamps), dtype=bool)
        keep[1:] = stamps[1:] != stamps[:-1]
        bad = np.asarray([] if bad_stamps_ns is None else bad_stamps_ns, dtype=np.int64).reshape(-1)
        if len(bad) != len(bad_reasons):
            raise ValueError(f"{len(bad)} bad sample stamps but {len(bad_reasons)} reasons")
        return cls(stamps[keep], poses[keep], duplicates=int((~keep).sum()), bad_stamps_ns=bad,
                   bad_reasons=tuple(bad_reasons))

    def __len__(self) -> int:
        return len(self.stamps_ns)

    def interpolate(self, query_ns: np.ndarray, tolerance_s: float,
                    max_gap_s: float) -> tuple[np.ndarray, list[str | None]]:
        """Poses at ``query_ns``; reason strings (None = ok) where no pose can be given.

        A query before the first / after the last sample is served by holding
        that sample if it is within ``tolerance_s``. Between samples, the pair
        must be at most ``max_gap_s`` apart, unless the query is within
        ``tolerance_s`` of one of them (then the nearer one is held).
        """
        q = np.asarray(query_ns, dtype=np.int64)
        n = len(self.stamps_ns)
        out = np.tile(np.eye(4), (len(q), 1, 1))
        reasons: list[str | None] = [None] * len(q)
        tol = int(tolerance_s * 1e9)
        if n == 0:
            reasons = [SKIP_NO_TF_YET] * len(q)
            self._mark_bad(q, tol, reasons)
            return out, reasons
        gap = int(max_gap_s * 1e9)
        hi = np.searchsorted(self.stamps_ns, q, side="left")  # first sample >= query
        t_all, q_all = pose_to_tq(self.poses_n44)
        interp_idx = []
        for k, (s, h) in enumerate(zip(q, hi)):
            if h < n and self.stamps_ns[h] == s:
                out[k] = self.poses_n44[h]
            elif h == 0:
                if self.stamps_ns[0] - s <= tol:
                    out[k] = self.poses_n44[0]
                else:
                    reasons[k] = SKIP_NO_TF_YET
            elif h == n:
                if s - self.stamps_ns[-1] <= tol:
                    out[k] = self.poses_n44[-1]
                else:
                    reasons[k] = SKIP_AFTER_LAST_TF
            else:
                d_lo, d_hi = s - self.stamps_ns[h - 1], self.stamps_ns[h] - s
                if self.stamps_ns[h] - self.stamps_ns[h - 1] <= gap:
                    interp_idx.append(k)
                elif min(d_lo, d_hi) <= tol:
                    out[k] = self.poses_n44[h - 1] if d_lo <= d_hi else self.poses_n44[h]
                else:
                    reasons[k] = SKIP_OUTSIDE_TOLERANCE
        if interp_idx:
            ki = np.asarray(interp_idx)
            h = hi[ki]
            t0, t1 = self.stamps_ns[h - 1], self.stamps_ns[h]
            alpha = (q[ki] - t0) / (t1 - t0)
            trans = (1.0 - alpha)[:, None] * t_all[h - 1] + alpha[:, None] * t_all[h]
            out[ki] = make_pose(trans, slerp(q_all[h - 1], q_all[h], alpha))
        self._mark_bad(q, tol, reasons)
        return out, reasons

    def _mark_bad(self, q: np.ndarray, tol: int, reasons: list[str | None]) -> None:
        """Give the reason of each bad sample to the queries it would have served.

        That is every query between the bad sample's good neighbours (or
        within ``tol`` of it where it has no neighbour on that side), unless
        a good sample has the same stamp and took its place.
        """
        good = self.stamps_ns
        for s, why in zip(self.bad_stamps_ns, self.bad_reasons):
            i = int(np.searchsorted(good, s))
            if i < len(good) and good[i] == s:
                continue
            after = q > good[i - 1] if i > 0 else q >= s - tol
            before = q < good[i] if i < len(good) else q <= s + tol
            for k in np.flatnonzero(after & before):
                reasons[k] = why


@dataclass
class _Edge:
    parent: str
    static_pose: np.ndarray | None = None
    stamps: list[int] = field(default_factory=list)
    poses: list[np.ndarray] = field(default_factory=list)
    series: PoseSeries | None = None
    bad_stamps: list[int] = field(default_factory=list)
    bad_reasons: list[str] = field(default_factory=list)
    bad_static: str | None = None  # reason of an ignored static sample


class TfBuffer:
    """Transforms from /tf and /tf_static, queried by frame pair and stamp.

    ``lookup_many('map', 'camera_optical_frame', stamps)`` returns
    ``T_map_camera_optical_frame`` at each stamp, composed through whatever
    chain connects them (e.g. map -> odom -> base_link -> camera_link -> ...).
    """

    def __init__(self, tolerance_s: float = 0.05, max_gap_s: float = 0.5) -> None:
        if tolerance_s < 0 or max_gap_s <= 0:
            raise ValueError(f"tolerance_s must be >= 0 and max_gap_s > 0, got {tolerance_s}, {max_gap_s}")
        self.tolerance_s = tolerance_s
        self.max_gap_s = max_gap_s
        self._edges: dict[str, _Edge] = {}  # keyed by child frame
        # Samples ignored while filling (as tf2 ignores them), by reason; kept by whoever fills the buffer.
        self.ignored_samples: Counter = Counter()

    # ------------------------------------------------------------------ filling
    def _edge(self, parent: str, child: str) -> _Edge:
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child:
            raise ValueError(f"transform with empty frame id: parent '{parent}', child '{child}'")
        if parent == child:
            raise ValueError(f"transform from frame '{parent}' to itself")
        edge = self._edges.get(child)
        if edge is None:
            edge = self._edges[child] = _Edge(parent)
        elif edge.parent != parent:
            raise ValueError(
                f"frame '{child}' has two parents, '{edge.parent}' and '{parent}'; a TF tree allows "
                "one parent per frame (REP-105: map -> odom -> base_link, a localizer publishes map -> odom)")
        return edge

    def add(self, parent: str, child: str, stamp_ns: int, T_parent_child_44: np.ndarray,
            static: bool = False) -> None:
        """Add one transform sample ``parent -> child``."""
        edge = self._edge(parent, child)
        T = np.asarray(T_parent_child_44, dtype=np.float64)
        if static:
            edge.static_pose = T
        else:
            edge.stamps.append(int(stamp_ns))
            edge.poses.append(T)
            edge.series = None

    def add_bad(self, parent: str, child: str, stamp_ns: int, reason: str, static: bool = False) -> None:
        """Record an ignored sample ``parent -> child`` (NaN, bad quaternion, ...).

        Its frames stay known, and every lookup the sample would have served
        gets ``reason`` instead of a pose (a static one: every lookup through
        the edge, unless a good static sample exists).
        """
        edge = self._edge(parent, child)
        if static:
            edge.bad_static = edge.bad_static or reason
        else:
            edge.bad_stamps.append(int(stamp_ns))
            edge.bad_reasons.append(reason)
            edge.series = None

    @property
    def frames(self) -> set[str]:
        return set(self._edges) | {e.parent for e in self._edges.values()}

    def _series(self, child: str) -> PoseSeries:
        edge = self._edges[child]
        if edge.series is None:
            edge.series = PoseSeries.from_samples(np.asarray(edge.stamps), np.asarray(edge.poses),
                                                  np.asarray(edge.bad_stamps), edge.bad_reasons)
            if edge.series.duplicates:
                log.warning("TF %s -> %s: ignored %d samples with a repeated stamp (TF_REPEATED_DATA)",
                            edge.parent, child, edge.series.duplicates)
        return edge.series

    # ------------------------------------------------------------------ graph
    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while path[-1] in self._edges:
            nxt = self._edges[path[-1]].parent
            if nxt in path:
                raise TfLookupError(f"TF contains a cycle through frame '{nxt}'")
            path.append(nxt)
        return path

    def connected_frames(self, frame: str) -> list[str]:
        """All frames connected to ``frame`` (same tree), sorted."""
        root = self._path_to_root(frame)[-1]
        return sorted(f for f in self.frames if self._path_to_root(f)[-1] == root)

    def chain(self, target: str, source: str) -> tuple[list[str], list[str]]:
        """Frames from ``target`` up to the common ancestor, and from ``source`` up to it."""
        target, source = target.lstrip("/"), source.lstrip("/")
        for f in (target, source):
            if f not in self.frames:
                raise TfLookupError(
                    f"frame '{f}' does not exist in TF; frames present: {', '.join(sorted(self.frames)) or 'none'}")
        up_t, up_s = self._path_to_root(target), self._path_to_root(source)
        common = next((f for f in up_t if f in up_s), None)
        if common is None:
            raise TfLookupError(
                f"no TF path between '{target}' and '{source}': '{target}' is connected to "
                f"{', '.join(self.connected_frames(target))}; '{source}' is connected to "
                f"{', '.join(self.connected_frames(source))}")
        return up_t[:up_t.index(common) + 1], up_s[:up_s.index(common) + 1]

    def is_static(self, target: str, source: str) -> bool:
        """Tell whether every edge between the frames is static (time-independent)."""
        up_t, up_s = self.chain(target, source)
        return all(self._edges[c].static_pose is not None and not self._edges[c].stamps
                   for c in up_t[:-1] + up_s[:-1])

    # ------------------------------------------------------------------ lookup
    def _to_ancestor(self, frames_up: list[str], stamps: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
        """T_ancestor_frame for the chain frames_up = [frame, parent, ..., ancestor]."""
        T = np.tile(np.eye(4), (len(stamps), 1, 1))
        reasons: list[str | None] = [None] * len(stamps)
        for child in frames_up[:-1]:
            edge = self._edges[child]
            if edge.stamps or (edge.bad_stamps and edge.static_pose is None):
                T_edge, r = self._series(child).interpolate(stamps, self.tolerance_s, self.max_gap_s)
                reasons = [a or b for a, b in zip(reasons, r)]
            elif edge.static_pose is not None:
                T_edge = np.broadcast_to(edge.static_pose, (len(stamps), 4, 4))
            else:  # only ignored static samples: no lookup through this edge has a pose
                T_edge = np.broadcast_to(np.eye(4), (len(stamps), 4, 4))
                reasons = [a or edge.bad_static for a in reasons]
            T = T_edge @ T  # T_parent_frame = T_parent_child @ T_child_frame
        return T, reasons

    def lookup_many(self, target: str, source: str,
                    stamps_ns: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
        """``T_target_source`` at each stamp, and per stamp a skip reason or None.

        Raises :class:`TfLookupError` when the frames are unknown or not
        connected (a configuration error, not a per-frame skip).
        """
        stamps = np.atleast_1d(np.asarray(stamps_ns, dtype=np.int64))
        up_t, up_s = self.chain(target, source)
        T_anc_t, r_t = self._to_ancestor(up_t, stamps)
        T_anc_s, r_s = self._to_ancestor(up_s, stamps)
        return compose(invert_pose(T_anc_t), T_anc_s), [a or b for a, b in zip(r_t, r_s)]

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """``T_target_source`` at one stamp; ValueError saying why if unavailable."""
        T, reasons = self.lookup_many(target, source, np.array([stamp_ns]))
        if reasons[0]:
            raise TfLookupError(f"cannot look up {target} -> {source} at {stamp_ns * 1e-9:.3f} s: {reasons[0]}")
        return T[0]
