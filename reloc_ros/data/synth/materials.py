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

"""Materials of the synthetic scene: procedural textures as functions of surface coordinates (metres).

A texture depends on the hit point only, so a surface looks the same from
every view; :func:`scene_materials` gives every surface of a room its own.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float64)


def _lattice(i: np.ndarray, j: np.ndarray, salt: float) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) at integer lattice points (a hash, no state)."""
    x = np.sin(i * 12.9898 + j * 78.233 + salt * 37.719) * 43758.5453
    return x - np.floor(x)


def _value_noise(u: np.ndarray, v: np.ndarray, salt: float) -> np.ndarray:
    """Two octaves of smooth value noise in [0, 1] at surface coordinates (metres): cells of 5 and 1.5 cm."""
    out = np.zeros_like(u)
    for cell, weight, k in ((0.05, 0.65, 0.0), (0.015, 0.35, 1.0)):
        x, y = u / cell, v / cell
        i, j = np.floor(x), np.floor(y)
        fx, fy = x - i, y - j
        fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)  # smoothstep: no grid lines
        s = salt + 101.0 * k
        top = _lattice(i, j, s) * (1 - fx) + _lattice(i + 1, j, s) * fx
        bottom = _lattice(i, j + 1, s) * (1 - fx) + _lattice(i + 1, j + 1, s) * fx
        out += weight * (top * (1 - fy) + bottom * fy)
    return out


def _soft(x: np.ndarray, sharpness: float = 2.5) -> np.ndarray:
    """Soft step in [0, 1]: crisp enough to give edges, smooth enough not to alias at 128 px."""
    return 0.5 + 0.5 * np.tanh(sharpness * x)


@dataclass
class Material:
    """A procedural texture on a plane, evaluated at surface coordinates (u, v) in metres.

    ``u`` runs along the surface horizontally (or along x on floor and ceiling),
    ``v`` up (or along y). Colour = pattern blend of ``c0``/``c1``, plus a linear
    colour ramp along u over ``[u_lo, u_hi]`` (so places along one wall differ),
    with rectangular posters ``(u0, u1, v0, v1)`` painted on top. Every term
    depends on the hit point only, so the texture is the same from any view.
    """

    pattern: str
    c0: np.ndarray
    c1: np.ndarray
    period: float = 0.6
    angle: float = 0.0
    phase: float = 0.0
    ramp: np.ndarray = field(default_factory=lambda: np.zeros(3))
    u_lo: float = -1.0
    u_hi: float = 1.0
    blobs: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (cu, cv, sigma)
    posters: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (u0, u1, v0, v1)
    poster_colours: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))  # border, a, b
    detail: float = 0.0  # amplitude of the fine grain (SceneConfig.detail)
    salt: float = 0.0  # makes each material's grain its own

    def colour(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """RGB in [0, 1] (n, 3) at surface coordinates ``u``, ``v`` (n,)."""
        p = self.period
        if self.pattern == "stripes":  # vertical bands
            w = _soft(np.sin(2 * np.pi * u / p + self.phase))
        elif self.pattern == "hstripes":  # horizontal bands (shelf boards)
            w = _soft(np.sin(2 * np.pi * v / p + self.phase))
        elif self.pattern == "checker":
            w = _soft(np.sin(np.pi * u / p + self.phase) * np.sin(np.pi * v / p), 4.0)
        elif self.pattern == "grating":  # oriented sinusoid
            w = 0.5 + 0.5 * np.sin(2 * np.pi * (u * np.cos(self.angle) + v * np.sin(self.angle)) / p + self.phase)
        elif self.pattern == "waves":  # horizontal wavy bands
            w = _soft(np.sin(2 * np.pi * v / p + 1.6 * np.sin(2 * np.pi * u / (3.0 * p) + self.phase)))
        elif self.pattern == "blobs":
            acc = np.zeros_like(u)
            for cu, cv, sig in self.blobs:
                acc += np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2.0 * sig * sig))
            w = np.clip(acc, 0.0, 1.0)
        elif self.pattern == "rings":
            w = _soft(np.sin(2 * np.pi * np.hypot(u - self.blobs[0, 0], v - self.blobs[0, 1]) / p + self.phase))
        else:  # pragma: no cover - patterns are fixed in this module
            raise ValueError(f"unknown pattern '{self.pattern}'")
        col = self.c0[None, :] + (self.c1 - self.c0)[None, :] * w[:, None]
        span = max(self.u_hi - self.u_lo, 1e-6)
        col = col + self.ramp[None, :] * ((u - self.u_lo) / span - 0.5)[:, None]
        if self.detail:
            col = col * (1.0 + self.detail * (2.0 * _value_noise(u, v, self.salt) - 1.0))[:, None]
        for (u0, u1, v0, v1), (c_border, c_a, c_b) in zip(self.posters, self.poster_colours):
            inside = (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
            if not inside.any():
                continue
            uu, vv = u[inside], v[inside]
            # A border frame and an inner area split along the diagonal: asymmetric, so
            # a poster also tells which way up and from which side it is seen.
            bw = 0.12 * min(u1 - u0, v1 - v0)
            border = (uu < u0 + bw) | (uu > u1 - bw) | (vv < v0 + bw) | (vv > v1 - bw)
            diag = (uu - u0) / (u1 - u0) > (vv - v0) / (v1 - v0)
            col[inside] = np.where(border[:, None], c_border, np.where(diag[:, None], c_a, c_b))
        return col


def _wall_material(rng: np.random.Generator, pattern: str, hue: float, u_lo: float, u_hi: float,
                   height: float) -> Material:
    """Make a wall material: distinct hue and pattern, a colour ramp along it, and posters as landmarks."""
    c0 = _hsv(hue, rng.uniform(0.35, 0.55), rng.uniform(0.55, 0.7))
    c1 = _hsv(hue + rng.uniform(0.05, 0.12), rng.uniform(0.5, 0.8), rng.uniform(0.8, 0.95))
    ramp = _hsv(hue + 0.5, 0.8, 1.0) - 0.5
    length = u_hi - u_lo
    mat = Material(pattern=pattern, c0=c0, c1=c1, period=float(rng.uniform(0.55, 0.8)),
                   angle=float(rng.uniform(0.3, 1.2)), phase=float(rng.uniform(0, 2 * np.pi)),
                   ramp=0.35 * ramp, u_lo=u_lo, u_hi=u_hi)
    if pattern == "blobs":
        n = max(6, int(length * 2.5))
        mat.blobs = np.stack([rng.uniform(u_lo, u_hi, n), rng.uniform(0.0, height, n),
                              rng.uniform(0.25, 0.5, n)], axis=1)
    n_posters = max(2, int(length / 2.5))
    rects: list[list[float]] = []
    for _ in range(50 * n_posters):
        if len(rects) == n_posters:
            break
        w, h = rng.uniform(0.6, 1.2), rng.uniform(0.5, 0.9)
        u0 = rng.uniform(u_lo + 0.3, u_hi - 0.3 - w)
        v0 = rng.uniform(0.9, min(1.5, height - h - 0.2))
        if all(u0 > r[1] + 0.4 or u0 + w < r[0] - 0.4 for r in rects):
            rects.append([u0, u0 + w, v0, v0 + h])
    rects.sort()
    mat.posters = np.array(rects, dtype=np.float64).reshape(-1, 4)
    mat.poster_colours = np.array([[_hsv(rng.uniform(), 0.2, 0.15), _hsv(rng.uniform(), 0.85, 0.95),
                                    _hsv(rng.uniform(), 0.7, 0.6)] for _ in rects]).reshape(-1, 3, 3)
    return mat


def _box_material(rng: np.random.Generator, kind: str) -> Material:
    hue = float(rng.uniform())
    c0 = _hsv(hue, rng.uniform(0.5, 0.8), rng.uniform(0.35, 0.5))
    c1 = _hsv(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.3, 0.6), rng.uniform(0.75, 0.95))
    pattern = {"table": "grating", "shelf": "hstripes", "pillar": "checker", "cabinet": "rings",
               "divider": "stripes"}[kind]
    mat = Material(pattern=pattern, c0=c0, c1=c1, period=float(rng.uniform(0.25, 0.4)),
                   angle=float(rng.uniform(0, np.pi)), phase=float(rng.uniform(0, 2 * np.pi)))
    if pattern == "rings":
        mat.blobs = np.array([[rng.uniform(-5, 5), rng.uniform(0, 1.0), 0.0]])
    return mat


def scene_materials(seed: int, room_lo: np.ndarray, room_hi: np.ndarray, box_kinds: list[str],
                    detail: float = 0.0) -> list[Material]:
    """Materials of every surface of a room, numbered as :class:`~reloc_ros.data.synth.scene.Scene` numbers them.

    Four walls with distinct patterns and hues a quarter turn apart, floor and
    ceiling, then one material per box (the same on its six faces), drawn from
    ``seed`` alone. ``detail`` > 0 adds each material its own fine grain.
    """
    height = float(room_hi[2])
    mat_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED, 99])
    hue0 = float(mat_rng.uniform())
    patterns = list(mat_rng.permutation(["stripes", "waves", "grating", "blobs"]))
    walls = []
    for i in range(4):
        along = 1 if i < 2 else 0  # walls at x = const run along y, and vice versa
        walls.append(_wall_material(mat_rng, str(patterns[i]), hue0 + 0.25 * i + mat_rng.uniform(-0.04, 0.04),
                                    float(room_lo[along]), float(room_hi[along]), height))
    floor = Material(pattern="checker", c0=_hsv(0.08, 0.25, 0.42), c1=_hsv(0.1, 0.3, 0.55), period=1.0,
                     phase=float(mat_rng.uniform(0, 2 * np.pi)), ramp=np.array([0.12, -0.05, -0.1]),
                     u_lo=float(room_lo[0]), u_hi=float(room_hi[0]))
    ceiling = Material(pattern="checker", c0=_hsv(0.6, 0.05, 0.8), c1=_hsv(0.15, 0.1, 1.0), period=1.2,
                       ramp=np.array([-0.08, 0.0, 0.1]), u_lo=float(room_lo[0]), u_hi=float(room_hi[0]))
    surface_materials = walls + [floor, ceiling]
    for kind in box_kinds:
        mat = _box_material(mat_rng, kind)
        surface_materials += [mat] * 6
    if detail:
        for k, mat in enumerate({id(m): m for m in surface_materials}.values()):
            mat.detail, mat.salt = float(detail), float(k + 1)
    return surface_materials
