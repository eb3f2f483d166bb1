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

"""A synthetic run: the robot driving one route, with stamps, TF samples, exact poses and rendered frames.

:func:`make_run` plans a run (no rendering); :func:`render_route`,
:func:`ground_truth` and :func:`synthetic_dataset` give its frames, poses or
a :class:`PoseDataset` in memory, without a bag.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from reloc_ros.data.synth.config import (MAP_FRAME, OPTICAL_FRAME, ROUTES, CameraRig, SceneConfig,
                                         default_intrinsics)
from reloc_ros.data.synth.render import Renderer
from reloc_ros.data.synth.routes import RouteCurve, planar_poses
from reloc_ros.data.synth.scene import Scene, build_scene
from reloc_ros.data.types import Intrinsics, PoseDataset
from reloc_ros.errors import RelocError
from reloc_ros.geometry import invert_pose

log = logging.getLogger(__name__)

DEFAULT_SPEED_MPS = 0.4

#: Stamp of the first sample of each route: the test run is recorded a day after the mapping run.
_START_NS = {"train": 1_700_000_000 * 10**9, "test": 1_700_086_400 * 10**9}
#: Nanoseconds per second.
NS = 1_000_000_000


def _xyyaw(T_n44: np.ndarray) -> np.ndarray:
    """(n, 3) x, y, yaw of planar poses (rotation about z only)."""
    return np.stack([T_n44[:, 0, 3], T_n44[:, 1, 3], np.arctan2(T_n44[:, 1, 0], T_n44[:, 0, 0])], axis=1)


def _interp_planar(stamps_ns: np.ndarray, xyyaw_n3: np.ndarray, query_ns: np.ndarray, what: str) -> np.ndarray:
    """Planar poses at ``query_ns`` between samples, as tf2 interpolates: lerp, and yaw along the shorter arc."""
    q = np.asarray(query_ns, dtype=np.int64).reshape(-1)
    if q.size and (q.min() < stamps_ns[0] or q.max() > stamps_ns[-1]):
        raise ValueError(f"{what}: stamps outside the sampled range [{stamps_ns[0]}, {stamps_ns[-1]}] ns "
                         "are not extrapolated")
    i = np.clip(np.searchsorted(stamps_ns, q, side="right") - 1, 0, len(stamps_ns) - 2)
    alpha = (q - stamps_ns[i]).astype(np.float64) / (stamps_ns[i + 1] - stamps_ns[i]).astype(np.float64)
    a, b = xyyaw_n3[i], xyyaw_n3[i + 1]
    dyaw = np.mod(b[:, 2] - a[:, 2] + np.pi, 2 * np.pi) - np.pi
    return planar_poses(a[:, 0] + alpha * (b[:, 0] - a[:, 0]), a[:, 1] + alpha * (b[:, 1] - a[:, 1]),
                        a[:, 2] + alpha * dyaw)


@dataclass
class SynthFrame:
    """One rendered camera frame and its ground truth (``T_map_cam`` of the optical frame)."""

    index: int
    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray | None
    T_map_cam: np.ndarray


@dataclass
class SyntheticRun:
    """The robot driving one route through a scene: stamps, TF samples and exact poses.

    The motion is generated from continuous functions of time (route curve,
    odometry drift), but those are only *sampled* at the TF stamps. The true
    pose at any stamp is defined as what tf2 computes from those samples:
    map -> odom and odom -> base_link each interpolated (lerp + slerp) between
    their bracketing samples, then composed. So a reader interpolating the
    bag's ``/tf`` reproduces the rendered poses to rounding error, at any
    speed, instead of up to an interpolation error of the sampling. (All
    these transforms are planar, a yaw about z; slerp is then linear in yaw
    along the shorter arc, which is how they are interpolated here.)
    """

    scene: Scene
    route: str
    curve: RouteCurve
    intrinsics: Intrinsics
    rig: CameraRig
    rate_hz: float
    tf_rate_hz: float
    speed_mps: float
    start_ns: int
    image_stamps_ns: np.ndarray
    tf_stamps_ns: np.ndarray  # odom -> base_link samples
    map_odom_stamps_ns: np.ndarray  # map -> odom samples
    _odom_base_xyyaw: np.ndarray = field(init=False, repr=False)
    _map_odom_xyyaw: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        map_odom = self._map_odom_continuous(self.map_odom_stamps_ns)
        self._map_odom_xyyaw = _xyyaw(map_odom)
        odom_base = invert_pose(self._map_odom_continuous(self.tf_stamps_ns)) @ self._map_base_continuous(
            self.tf_stamps_ns)
        self._odom_base_xyyaw = _xyyaw(odom_base)

    @property
    def frames(self) -> int:
        return len(self.image_stamps_ns)

    @property
    def laps(self) -> float:
        """How many times the image stamps go round the route."""
        return self.speed_mps * self.frames / self.rate_hz / self.curve.length_m

    def _travel(self, stamps_ns: np.ndarray) -> np.ndarray:
        # Integer difference first: float64 of absolute nanosecond stamps would lose ~100 ns.
        dt = (np.asarray(stamps_ns, dtype=np.int64) - self.start_ns).astype(np.float64) / NS
        return self.speed_mps * dt

    def _map_base_continuous(self, stamps_ns: np.ndarray) -> np.ndarray:
        x, y, yaw = self.curve.xy_yaw(self._travel(stamps_ns))
        return planar_poses(x, y, yaw)

    def _map_odom_continuous(self, stamps_ns: np.ndarray) -> np.ndarray:
        # Odometry starts counting at the robot's start pose, then drifts with distance travelled.
        start = self._map_base_continuous(np.array([self.start_ns]))[0]
        return start @ self.curve.drift(self._travel(stamps_ns))

    def T_map_odom(self, stamps_ns: np.ndarray) -> np.ndarray:
        """(n, 4, 4) map -> odom at ``stamps_ns``, interpolated from its /tf samples."""
        return _interp_planar(self.map_odom_stamps_ns, self._map_odom_xyyaw, stamps_ns, "map -> odom")

    def T_odom_base(self, stamps_ns: np.ndarray) -> np.ndarray:
        """(n, 4, 4) odom -> base_link at ``stamps_ns``, interpolated from its /tf samples."""
        return _interp_planar(self.tf_stamps_ns, self._odom_base_xyyaw, stamps_ns, "odom -> base_link")

    def T_map_base(self, stamps_ns: np.ndarray) -> np.ndarray:
        """(n, 4, 4) true pose of base_link in the map: the TF chain map -> odom -> base_link."""
        return self.T_map_odom(stamps_ns) @ self.T_odom_base(stamps_ns)

    def T_map_cam(self, stamps_ns: np.ndarray | None = None) -> np.ndarray:
        """(n, 4, 4) exact pose of camera_optical_frame in the map (image stamps by default)."""
        stamps = self.image_stamps_ns if stamps_ns is None else stamps_ns
        return self.T_map_base(stamps) @ self.rig.T_base_optical

    def iter_frames(self, depth: bool = True, progress: bool = False) -> Iterator[SynthFrame]:
        """Render every image of the run in order."""
        from tqdm import tqdm

        renderer = Renderer(self.scene, self.intrinsics)
        poses = self.T_map_cam()
        show = progress and sys.stderr.isatty()
        bar = tqdm(total=self.frames, desc=f"render {self.route}", unit="frame", disable=not show)
        try:
            for i, (stamp, T) in enumerate(zip(self.image_stamps_ns, poses)):
                rgb, dep = renderer.render(T, depth=depth)
                bar.update(1)
                yield SynthFrame(index=i, stamp_ns=int(stamp), rgb=rgb, depth=dep, T_map_cam=T)
        finally:
            bar.close()


def make_run(route: str = "train", frames: int = 200, seed: int = 0, size: tuple[int, int] = (160, 120),
             scene: str | SceneConfig | Scene = "room", rate_hz: float = 10.0, tf_rate_hz: float = 40.0,
             speed_mps: float | None = None, hfov_deg: float = 70.0, rig: CameraRig | None = None,
             start_ns: int | None = None) -> SyntheticRun:
    """Plan a run: the scene of ``(scene, seed)``, the ``route`` curve, and all stamps.

    ``speed_mps`` None drives at ``DEFAULT_SPEED_MPS`` (0.4 m/s) when the
    ``frames`` at ``rate_hz`` suffice for a whole lap of the route, and faster
    otherwise, so that train and test always cover their whole routes (200
    frames at 10 Hz on the 'room' train route: one lap at about 1 m/s). A number
    fixes the speed instead, and ``frames`` then decides how far the robot gets.
    Image stamps get a small deterministic jitter (±0.3 ms) and an offset from
    the TF stamps, as real cameras have.
    """
    if route not in ROUTES:
        raise ValueError(f"route '{route}' unknown; valid routes: {', '.join(ROUTES)}")
    if int(frames) < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    for name, val in (("rate_hz", rate_hz), ("tf_rate_hz", tf_rate_hz)):
        if not (np.isfinite(val) and val > 0):
            raise ValueError(f"{name} must be a positive number of Hz, got {val}")
    if tf_rate_hz < rate_hz:
        raise ValueError(f"tf_rate_hz ({tf_rate_hz}) must be at least the camera rate_hz ({rate_hz})")
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise ValueError(f"size must be (width, height) in pixels, got {size}")
    sc = scene if isinstance(scene, Scene) else build_scene(scene, seed)
    curve = sc.routes[route]
    frames = int(frames)
    if speed_mps is None:
        speed = max(DEFAULT_SPEED_MPS, curve.length_m * rate_hz / frames)
        if speed > 2.0:
            log.info("%d frames at %.1f Hz cover the %.1f m %s route at %.2f m/s; more frames or a lower rate "
                     "give a slower robot", frames, rate_hz, curve.length_m, route, speed)
    else:
        if not (np.isfinite(speed_mps) and speed_mps > 0):
            raise ValueError(f"speed_mps must be positive, got {speed_mps}")
        speed = float(speed_mps)
    start = _START_NS[route] if start_ns is None else int(start_ns)
    period_ns = int(round(NS / rate_hz))
    tf_period_ns = int(round(NS / tf_rate_hz))
    jitter_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED, 7, ROUTES.index(route)])
    jitter = jitter_rng.integers(-300_000, 300_001, size=frames)
    # First image 0.1 s after TF starts, offset by a third of a TF period so stamps never coincide.
    first = start + 100_000_000 + tf_period_ns // 3
    image_stamps = first + np.arange(frames, dtype=np.int64) * period_ns + jitter
    end = int(image_stamps[-1]) + 100_000_000
    tf_stamps = np.arange(start, end + tf_period_ns, tf_period_ns, dtype=np.int64)
    map_odom_stamps = np.arange(start + tf_period_ns // 2, end + 2 * tf_period_ns, 2 * tf_period_ns, dtype=np.int64)
    intr = default_intrinsics(int(size[0]), int(size[1]), hfov_deg)
    run = SyntheticRun(scene=sc, route=route, curve=curve, intrinsics=intr, rig=rig or CameraRig(),
                       rate_hz=float(rate_hz), tf_rate_hz=float(tf_rate_hz), speed_mps=speed, start_ns=start,
                       image_stamps_ns=image_stamps, tf_stamps_ns=tf_stamps, map_odom_stamps_ns=map_odom_stamps)
    # The routes keep clearance from every box by construction; check the cameras anyway.
    cams = run.T_map_cam()[:, :3, 3]
    if sc.inside_box(cams).any() or not sc.inside_room(cams).all():
        raise RelocError(f"scene '{sc.config.name}' seed {seed}: a camera of the {route} route is inside "
                         "furniture or outside the room")
    return run


def render_route(route: str = "train", frames: int = 200, seed: int = 0, size: tuple[int, int] = (160, 120),
                 scene: str | SceneConfig | Scene = "room", depth: bool = True, progress: bool = False,
                 **run_kwargs: Any) -> list[SynthFrame]:
    """Render every frame of a run in memory (no bag): rgb, depth, ``T_map_cam``, stamp."""
    run = make_run(route=route, frames=frames, seed=seed, size=size, scene=scene, **run_kwargs)
    return list(run.iter_frames(depth=depth, progress=progress))


def ground_truth(route: str = "train", frames: int = 200, seed: int = 0, scene: str | SceneConfig = "room",
                 **run_kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Image stamps (n,) and exact ``T_map_cam`` (n, 4, 4) of a run, without rendering."""
    run = make_run(route=route, frames=frames, seed=seed, scene=scene, **run_kwargs)
    return run.image_stamps_ns.copy(), run.T_map_cam()


def synthetic_dataset(route: str = "train", frames: int = 200, seed: int = 0, size: tuple[int, int] = (160, 120),
                      scene: str | SceneConfig = "room", depth: bool = False, progress: bool = False,
                      **run_kwargs: Any) -> PoseDataset:
    """Return the run as a :class:`PoseDataset` (images in memory), skipping the bag round trip."""
    run = make_run(route=route, frames=frames, seed=seed, size=size, scene=scene, **run_kwargs)
    h, w = run.intrinsics.height, run.intrinsics.width
    images = np.empty((run.frames, h, w, 3), dtype=np.uint8)
    depths = np.empty((run.frames, h, w), dtype=np.float32) if depth else None
    for fr in run.iter_frames(depth=depth, progress=progress):
        images[fr.index] = fr.rgb
        if depths is not None:
            depths[fr.index] = fr.depth
    return PoseDataset(stamps_ns=run.image_stamps_ns.copy(), poses_n44=run.T_map_cam(), intrinsics=run.intrinsics,
                       images=images, depths=depths, source=f"synthetic {run.scene.config.name} seed {seed} {route}",
                       map_frame=MAP_FRAME, camera_frame=OPTICAL_FRAME)
