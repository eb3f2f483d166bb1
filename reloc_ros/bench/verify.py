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

"""Geometric verification benchmark: ``reloc-ros bench --suite verify``.

On two synthetic scenes, ``textured_room`` (a surface grain like a real
textured indoor scene) and ``room`` (smooth patterns: few local features),
seed 0, a mapping route driven twice and a different query route:

1. PoseNet (ResNet-18 from random initialisation, 80x80 input) is trained on
   the mapping bag, then the SIFT feature map is built, calibrated and stored
   in the model file (:func:`reloc_ros.mapping.mapper.build_model_map`), as
   ``reloc-ros train`` does by default.
2. An ablation on the query route: learned poses only; verified with the
   model's candidates, without and with the retrieval fallback (the engine);
   retrieval only (non-learned); oracle candidates (the true pose); and two
   baselines: the mean pose, and wrong proposals (the model's poses moved 2 m
   sideways), where a verified pose that is far off would be the failure
   verification exists to prevent.
3. Latency of each verification stage at 640x480 for SIFT and ORB maps.
4. Mapping cost (time, map size) against the number of mapping frames,
   measured up to a 1000-frame bag.

Images are 320x240 for the ablation: at 640x480 rendering a bag costs about
six times as long and SIFT about four times, which would make the two scenes'
mapping and query runs the better part of an hour on a small CPU; the
latency figures are measured at 640x480 separately.
"""

from __future__ import annotations

import logging
import math
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

SCENES = ("textured_room", "room")
RATE_HZ = 10.0
SHIFT_M = 2.0
"""How far the ``wrong proposals`` row moves the model's poses (horizontally, random direction per frame)."""
ROWS = ("learned only", "verified, model candidates", "verified, model candidates + retrieval fallback",
        "verified, retrieval only", "verified, oracle candidates", "baseline: mean pose",
        "baseline: wrong proposals (model poses moved 2 m)")
"""Rows of the ablation table, in order."""


@dataclass(frozen=True)
class Budget:
    """Sizes of one benchmark run (full or quick)."""

    mapping_frames: int
    query_frames: int
    epochs: int
    size: tuple[int, int]
    latency_size: tuple[int, int]
    latency_query_frames: int
    latency_map_frames: int
    cost_frames: tuple[int, ...]
    scenes: tuple[str, ...]


FULL = Budget(300, 120, 20, (320, 240), (640, 480), 40, 200, (100, 300, 1000), SCENES)
QUICK = Budget(48, 12, 2, (160, 120), (160, 120), 4, 30, (24, 48), SCENES[:1])


# ---------------------------------------------------------------------------
# Data and model
# ---------------------------------------------------------------------------

def _write_bags(root: Path, scene: str, b: Budget, progress: bool) -> tuple[Path, Path, float]:
    from reloc_ros.bench.full import mapping_speed, scene_bags

    mapping, query = scene_bags(root, scene, b.mapping_frames, b.query_frames, progress, size=b.size, depth=False)
    return mapping, query, mapping_speed(scene, b.mapping_frames, b.size)


def _train_and_map(root: Path, scene: str, mapping: Path, b: Budget, progress: bool) -> tuple[Path, dict]:
    """Train PoseNet on the mapping bag, then build, calibrate and store its map; return the model and figures."""
    from reloc_ros.data.bag import BagSource
    from reloc_ros.mapping.mapper import build_model_map
    from reloc_ros.training.trainer import TrainConfig, train

    cfg = TrainConfig(model="posenet", input_size=(80, 80), epochs=b.epochs, batch_size=16, lr=1e-3, seed=0)
    model = root / f"{scene}_posenet.pt"
    t0 = time.perf_counter()
    train([mapping], BagSource(), cfg, model, cache_dir=root / "cache", device="cpu", progress=progress)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    entry = build_model_map(model, [mapping], progress=progress)
    map_s = time.perf_counter() - t0
    info = {"train_seconds": round(train_s, 1), "map_seconds": round(map_s, 1),
            "map_mb": round(entry["bytes"] / 1e6, 2), "keyframes": int(entry["keyframes"]),
            "points": int(entry["points"]), "posed_frames": int(entry["posed_frames"]),
            "calibration_frames": int(entry.get("calibration_frames", 0)),
            "calibration": entry.get("calibration"), "calibration_error": entry.get("calibration_error"),
            "sparse": bool(entry.get("sparse")), "reprojection_px_median": entry.get("reprojection_px_median"),
            "train_config": cfg.resolved().to_dict()}
    log.info("%s: PoseNet trained in %.0f s; SIFT map %d key frames, %d points, %.1f MB in %.0f s "
             "(calibrated on %d frames)", scene, train_s, info["keyframes"], info["points"], info["map_mb"], map_s,
             info["calibration_frames"])
    return model, info


# ---------------------------------------------------------------------------
# Ablation rows
# ---------------------------------------------------------------------------

@dataclass
class _Frame:
    """What one row published for one query frame."""

    status: str
    T_map_cam: np.ndarray
    covariance: np.ndarray
    inliers: int
    ms: float


def _row(name: str, frames: Sequence[_Frame], gt_n44: np.ndarray, **extra: Any) -> dict:
    """Figures of one ablation row (see the module docstring); shares are of all query frames."""
    from reloc_ros.runtime import uncertainty as U
    from reloc_ros.evaluation import WRONG_VERIFIED, pose_errors

    status = np.array([f.status for f in frames])
    n = len(frames)
    pub = np.flatnonzero(status != "failed")
    ver = status == "verified"
    row: dict[str, Any] = {"row": name, "frames": n, "posed_share": float(len(pub) / n),
                           "verified_share": float(ver.mean()), "failed_share": float((status == "failed").mean()),
                           "median_translation_m": None, "median_rotation_deg": None,
                           "within_2sigma": None, "verified_wrong_frames": 0, "verified_wrong_share": None,
                           "median_inliers": None,
                           "median_ms_per_frame": round(float(np.median([f.ms for f in frames])), 2), **extra}
    if len(pub):
        pred = np.stack([frames[i].T_map_cam for i in pub])
        cov = np.stack([frames[i].covariance for i in pub])
        t, r = pose_errors(pred, gt_n44[pub])
        row["median_translation_m"] = float(np.median(t))
        row["median_rotation_deg"] = float(np.median(r))
        c = U.coverage(U.error_vectors(pred, gt_n44[pub]), cov)
        row["within_2sigma"] = {g: c[g]["within_2sigma"] for g in ("translation", "rotation")}
    if ver.any():
        idx = np.flatnonzero(ver)
        t, r = pose_errors(np.stack([frames[i].T_map_cam for i in idx]), gt_n44[idx])
        wrong = (t > WRONG_VERIFIED[0]) | (r > WRONG_VERIFIED[1])
        row["verified_wrong_frames"] = int(wrong.sum())
        row["verified_wrong_share"] = float(wrong.mean())
        row["median_inliers"] = float(np.median([frames[i].inliers for i in idx]))
    row["verified_wrong_of_frames"] = row["verified_wrong_frames"] / n
    return row


def _engine_frames(model: Path, ds: Any, verify: str, config: Any = None) -> tuple[list[_Frame], list[Any]]:
    """Every query frame through the Relocalizer, in time order; also the estimates (for their learned poses)."""
    from reloc_ros.runtime.engine import NoEstimate, Relocalizer

    reloc = Relocalizer(model, device="cpu", warmup=2, verify=verify, verify_config=config)
    reloc.reset_sequence()
    out, ests = [], []
    for i in range(len(ds)):
        img = ds.image(i)
        t0 = time.perf_counter()
        try:
            est = reloc.relocalize(img, int(ds.stamps_ns[i]), intrinsics=ds.intrinsics)
        except NoEstimate:
            out.append(_Frame("failed", np.eye(4), np.eye(6), 0, (time.perf_counter() - t0) * 1e3))
            ests.append(None)
            continue
        out.append(_Frame(est.status, est.T_map_cam, est.covariance, est.inliers, (time.perf_counter() - t0) * 1e3))
        ests.append(est)
    return out, ests


def _verifier_frames(verifier: Any, ds: Any, candidates: Sequence[np.ndarray]) -> list[_Frame]:
    """Each query frame through the Verifier alone with its candidates; failed frames publish nothing."""
    out = []
    for i in range(len(ds)):
        img = ds.image(i)
        t0 = time.perf_counter()
        v = verifier.verify(img, candidates[i], ds.intrinsics)
        ms = (time.perf_counter() - t0) * 1e3
        cov = verifier.calibration.apply(v.raw_covariance) if v.raw_covariance is not None else np.eye(6)
        T = v.T_map_cam if v.T_map_cam is not None else np.eye(4)
        out.append(_Frame(v.status, T, cov, v.inliers, ms))
    return out


def _shifted(ests: Sequence[Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Return the model's pose and hypotheses of each frame, all moved SHIFT_M in one random horizontal direction."""
    out = []
    for est in ests:
        if est is None:
            out.append(np.zeros((0, 4, 4)))
            continue
        cands = np.concatenate([est.learned_T_map_cam[None] if est.learned_T_map_cam is not None
                                else est.T_map_cam[None], est.hypotheses.reshape(-1, 4, 4)]).copy()
        a = rng.uniform(0.0, 2.0 * math.pi)
        # The synthetic map frame has z up: horizontal is the x-y plane.
        cands[:, :2, 3] += SHIFT_M * np.array([math.cos(a), math.sin(a)])
        out.append(cands)
    return out


def _ablation(model: Path, mapping: Path, query: Path, progress: bool) -> list[dict]:
    from reloc_ros.data.bag import BagSource, read_bag_dataset
    from reloc_ros.mapping.storage import load_map
    from reloc_ros.runtime import uncertainty as U
    from reloc_ros.runtime.verify import Verifier, VerifyConfig
    from reloc_ros.evaluation import mean_pose
    from reloc_ros.modelfile import read_metadata

    ds = read_bag_dataset(query, BagSource(), image_size=None, progress=progress)
    gt = ds.poses_n44
    no_fallback = VerifyConfig(retrieval_fallback=False)
    rows = []
    learned, ests = _engine_frames(model, ds, "off")
    rows.append(_row(ROWS[0], learned, gt, candidates="-"))
    frames, _ = _engine_frames(model, ds, "on", no_fallback)
    rows.append(_row(ROWS[1], frames, gt, candidates="model pose, MC hypotheses, last verified pose"))
    frames, _ = _engine_frames(model, ds, "on")
    rows.append(_row(ROWS[2], frames, gt, candidates="as above; map thumbnail retrieval when they fail"))

    loaded = load_map(model, read_metadata(model))
    if loaded is None:
        raise RuntimeError(f"{model} carries no feature map after build_model_map")
    fmap, cal = loaded
    calibration = U.Calibration.from_dict(cal) if cal else None
    none = [np.zeros((0, 4, 4))] * len(ds)
    rows.append(_row(ROWS[3], _verifier_frames(Verifier(fmap, VerifyConfig(), calibration), ds, none), gt,
                     candidates="map thumbnail retrieval only (no learned pose)"))
    oracle = Verifier(fmap, no_fallback, calibration)
    rows.append(_row(ROWS[4], _verifier_frames(oracle, ds, [T[None] for T in gt]), gt,
                     candidates="the true pose (key frames nearest it); no fallback"))

    map_ds = read_bag_dataset(mapping, BagSource(), load_images=False)
    T_mean = mean_pose(map_ds.poses_n44)
    # The mean pose's honest covariance: the spread of the mapping poses around it.
    prior = np.cov(U.error_vectors(np.broadcast_to(T_mean, map_ds.poses_n44.shape), map_ds.poses_n44).T)
    rows.append(_row(ROWS[5], [_Frame("unverified", T_mean, prior, 0, 0.0) for _ in range(len(ds))], gt,
                     candidates="-"))
    wrong = _verifier_frames(oracle, ds, _shifted(ests, np.random.default_rng(0)))
    rows.append(_row(ROWS[6], wrong, gt, candidates=f"model pose and hypotheses moved {SHIFT_M:g} m; no fallback"))
    return rows


# ---------------------------------------------------------------------------
# Latency and mapping cost
# ---------------------------------------------------------------------------

def _latency(b: Budget, progress: bool) -> dict:
    """Median milliseconds per verification stage at ``latency_size``, SIFT and ORB maps, oracle candidates."""
    import torch

    from reloc_ros.mapping.build import MapConfig, build_map
    from reloc_ros.runtime.verify import VERIFY_STAGES, Verifier, VerifyConfig
    from reloc_ros.data.synth import synthetic_dataset

    scene = SCENES[0]
    t0 = time.perf_counter()
    mapping = synthetic_dataset(route="train", frames=b.latency_map_frames, size=b.latency_size, scene=scene,
                                progress=progress)
    query = synthetic_dataset(route="test", frames=b.latency_query_frames, size=b.latency_size, scene=scene,
                              progress=progress)
    log.info("latency: rendered %d + %d frames at %dx%d in %.0f s", len(mapping), len(query), *b.latency_size,
             time.perf_counter() - t0)
    out: dict[str, Any] = {"scene": scene, "size": list(b.latency_size), "mapping_frames": len(mapping),
                           "query_frames": len(query), "cuda_available": bool(torch.cuda.is_available()),
                           "features": {}}
    for feature in ("sift", "orb"):
        t0 = time.perf_counter()
        fmap = build_map(mapping.images, mapping.poses_n44, mapping.intrinsics, config=MapConfig(feature=feature),
                         progress=progress)
        build_s = time.perf_counter() - t0
        verifier = Verifier(fmap, VerifyConfig(retrieval_fallback=False))
        verifier.verify(query.images[0], query.poses_n44[:1], query.intrinsics)  # warm-up
        stages: dict[str, list[float]] = {k: [] for k in (*VERIFY_STAGES, "total")}
        verified = 0
        for i in range(len(query)):
            t1 = time.perf_counter()
            v = verifier.verify(query.images[i], query.poses_n44[i][None], query.intrinsics)
            stages["total"].append((time.perf_counter() - t1) * 1e3)
            for k in VERIFY_STAGES:
                stages[k].append(v.timings_ms[k])
            verified += v.status == "verified"
        out["features"][feature] = {
            "median_ms": {k: round(statistics.median(v), 2) for k, v in stages.items()},
            "verified_share": verified / len(query), "map_keyframes": fmap.n_keyframes,
            "map_points": fmap.n_points, "map_mb": round(len(fmap.to_bytes()) / 1e6, 2),
            "map_build_seconds": round(build_s, 1)}
        log.info("latency %s at %dx%d: median total %.0f ms", feature, *b.latency_size,
                 out["features"][feature]["median_ms"]["total"])
    return out


def _mapping_cost(root: Path, model: Path, b: Budget, reuse: dict | None, progress: bool) -> list[dict]:
    """``build_model_map`` wall time (bag reading included) and map size against the number of mapping frames.

    Each bag drives the textured_room mapping route at the speed of the main
    mapping run (two laps per ``mapping_frames``), so more frames are more
    laps, and is mapped into a copy of that scene's trained model file.
    ``reuse``: the main run's own figures for its frame count (the same bag).
    """
    from reloc_ros.bench.full import mapping_speed
    from reloc_ros.data.synth import write_synthetic_bag
    from reloc_ros.mapping.mapper import build_model_map

    scene = SCENES[0]
    speed = mapping_speed(scene, b.mapping_frames, b.size)  # the same frame spacing at every size: more laps
    rows = []
    for n in b.cost_frames:
        if reuse is not None and n == b.mapping_frames:
            rows.append({"frames": n, "seconds": reuse["map_seconds"], "map_mb": reuse["map_mb"],
                         "keyframes": reuse["keyframes"], "points": reuse["points"],
                         "calibration_frames": reuse["calibration_frames"], "measured": "in the ablation run"})
            continue
        bag = root / f"cost_{n}"
        write_synthetic_bag(bag, route="train", frames=n, size=b.size, seed=0, scene=scene, progress=progress,
                            speed_mps=speed, rate_hz=RATE_HZ)
        copy = root / f"cost_{n}.pt"
        shutil.copyfile(model, copy)
        t0 = time.perf_counter()
        entry = build_model_map(copy, [bag], progress=progress)
        secs = time.perf_counter() - t0
        rows.append({"frames": n, "seconds": round(secs, 1), "map_mb": round(entry["bytes"] / 1e6, 2),
                     "keyframes": int(entry["keyframes"]), "points": int(entry["points"]),
                     "calibration_frames": int(entry.get("calibration_frames", 0)), "measured": "here"})
        log.info("mapping cost: %d frames in %.0f s, %.1f MB", n, secs, rows[-1]["map_mb"])
        shutil.rmtree(bag, ignore_errors=True)
        copy.unlink(missing_ok=True)
    rows.sort(key=lambda r: r["frames"])
    return rows


# ---------------------------------------------------------------------------
# Driver and report
# ---------------------------------------------------------------------------

def _commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() or None


def run_verify_benchmark(quick: bool = False, progress: bool = False) -> dict:
    """Run the verification benchmark (see the module docstring); return every figure as a JSON-ready dict."""
    from reloc_ros.bench.data import machine_info

    b = QUICK if quick else FULL
    t_start = time.perf_counter()
    results: dict[str, Any] = {
        "suite": "verify", "quick": bool(quick), "commit": _commit(), "machine": machine_info(),
        "config": {**asdict(b), "seed": 0, "rate_hz": RATE_HZ, "mapping_laps": 2, "wrong_shift_m": SHIFT_M,
                   "model": "posenet", "backbone": "resnet18", "pretrained": False, "input_size": [80, 80],
                   "batch_size": 16, "lr": 1e-3, "optimizer": "Adam", "map_feature": "sift",
                   "size_note": "ablation at the smaller size: 640x480 rendering and SIFT cost several times more "
                                "on this CPU; latency is measured at latency_size"},
        "scenes": {}}
    with tempfile.TemporaryDirectory(prefix="reloc_bench_verify_") as tmp:
        root = Path(tmp)
        models: dict[str, tuple[Path, dict]] = {}
        for scene in b.scenes:
            t0 = time.perf_counter()
            mapping, query, speed = _write_bags(root, scene, b, progress)
            model, info = _train_and_map(root, scene, mapping, b, progress)
            info["mapping_speed_mps"] = round(speed, 3)
            rows = _ablation(model, mapping, query, progress)
            results["scenes"][scene] = {**info, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
            models[scene] = (model, info)
            for r in rows:
                log.info("%s | %s: posed %.2f verified %.2f failed %.2f wrong-verified %d", scene, r["row"],
                         r["posed_share"], r["verified_share"], r["failed_share"], r["verified_wrong_frames"])
        results["latency"] = _latency(b, progress)
        model, info = models[SCENES[0]]
        results["mapping_cost"] = _mapping_cost(root, model, b, info, progress)
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    results["findings"] = findings(results)
    return results


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def findings(results: dict) -> list[str]:
    """Return a few "what this shows" sentences computed from the figures (nothing here is a fixed claim)."""
    out = []
    scenes = results["scenes"]
    by = {s: {r["row"]: r for r in d["rows"]} for s, d in scenes.items()}
    for s, rows in by.items():
        learned, default, model = rows[ROWS[0]], rows[ROWS[2]], rows[ROWS[1]]
        oracle, retr, wrong = rows[ROWS[4]], rows[ROWS[3]], rows[ROWS[6]]
        line = (f"{s}: the engine's default verified {_pct(default['verified_share'])} of query frames "
                f"(model candidates alone {_pct(model['verified_share'])}, retrieval alone "
                f"{_pct(retr['verified_share'])}, oracle candidates {_pct(oracle['verified_share'])}) on a map of "
                f"{scenes[s]['points']} points")
        if default["median_translation_m"] is not None and learned["median_translation_m"]:
            ratio = learned["median_translation_m"] / max(default["median_translation_m"], 1e-9)
            line += (f"; published poses' median error {default['median_translation_m']:.3f} m / "
                     f"{default['median_rotation_deg']:.2f} deg against {learned['median_translation_m']:.3f} m / "
                     f"{learned['median_rotation_deg']:.2f} deg learned only ({ratio:.1f}x smaller in translation)")
        out.append(line + ".")
        wv = sum(r["verified_wrong_frames"] for r in rows.values())
        n_ok = round(wrong["verified_share"] * wrong["frames"]) - wrong["verified_wrong_frames"]
        reach = (f"{n_ok} verified within 0.25 m / 5 deg of the truth (the moved candidate was still within reach "
                 "of the true pose)" if n_ok > 0 else "none verified correctly")
        out.append(f"{s}: wrong proposals moved {SHIFT_M:g} m: {wrong['verified_wrong_frames']} of {wrong['frames']} "
                   f"frames ended verified but wrong, {_pct(wrong['failed_share'])} failed, {reach}; "
                   f"verified-but-wrong frames over all rows of this scene: {wv}.")
        if default["within_2sigma"] is not None and default["verified_share"] > 0:
            cov = default["within_2sigma"]
            out.append(f"{s}: 2-sigma coverage of the default's published poses {_pct(cov['translation'])} position "
                       f"/ {_pct(cov['rotation'])} rotation (Gaussian: 95.4 %); learned only "
                       f"{_pct((learned['within_2sigma'] or {}).get('translation'))} / "
                       f"{_pct((learned['within_2sigma'] or {}).get('rotation'))}.")
    if len(by) >= 2:
        a, c = SCENES[0], SCENES[1]
        if a in by and c in by:
            thin = by[c][ROWS[2]]
            out.append(f"Texture and verified share: {a} verifies {_pct(by[a][ROWS[2]]['verified_share'])} "
                       f"({scenes[a]['points']} map points), {c} {_pct(thin['verified_share'])} "
                       f"({scenes[c]['points']} map points); on {c} the default failed {_pct(thin['failed_share'])} "
                       f"of frames and published {thin['verified_wrong_frames']} verified pose(s) off by more than "
                       "0.25 m or 5 deg.")
    lat = results.get("latency", {}).get("features", {})
    if "sift" in lat and "orb" in lat:
        s, o = lat["sift"]["median_ms"], lat["orb"]["median_ms"]
        top = max(("features", "matching", "ransac", "refinement"), key=lambda k: s[k])
        w, h = results["latency"]["size"]
        out.append(f"At {w}x{h} one verification takes {s['total']:.0f} ms with SIFT ({top} the largest stage, "
                   f"{s[top]:.0f} ms) and {o['total']:.0f} ms with ORB ({s['total'] / max(o['total'], 1e-9):.1f}x "
                   f"faster); ORB verified {_pct(lat['orb']['verified_share'])} of oracle-candidate frames, SIFT "
                   f"{_pct(lat['sift']['verified_share'])}.")
    cost = results.get("mapping_cost") or []
    if cost:
        big = cost[-1]
        per = big["seconds"] / big["frames"]
        cores = results["machine"].get("cores")
        text = (f"Mapping {big['frames']} frames (bag reading, features, calibration, map) took {big['seconds']:.0f} s "
                f"and gave a {big['map_mb']:.1f} MB map")
        if big["frames"] >= 1000:
            verdict = "within" if big["seconds"] <= 600 else "over"
            text += f" (measured): {verdict} the target of 1000 frames in 10 min on this CPU ({cores} cores)."
        else:
            verdict = "within" if 1000 * per <= 600 else "over"
            text += (f"; extrapolated linearly, 1000 frames would take {1000 * per:.0f} s: {verdict} the 10 min "
                     f"target on this CPU ({cores} cores), not measured here.")
        out.append(text)
    return out


def markdown_table(results: dict) -> str:
    """Render the verification benchmark as markdown tables plus the computed findings."""
    c = results["config"]
    m = results["machine"]
    lines = [f"PoseNet ({c['backbone']} from random initialisation, {c['epochs']} epochs, input 80x80, batch "
             f"{c['batch_size']}, Adam lr {c['lr']}, seed {c['seed']}) trained on a mapping route of "
             f"{c['mapping_frames']} frames (2 laps); SIFT feature map built, calibrated on held-out mapping frames "
             f"and stored in the model file; query: {c['query_frames']} frames of another route, "
             f"{c['size'][0]}x{c['size'][1]} images through the runtime engine with the bag's CameraInfo. "
             f"Machine: {m.get('cores')} CPU cores, {m.get('torch_threads')} torch threads; commit "
             f"{results.get('commit') or '?'}, {m.get('date')}; whole run {results.get('seconds', 0):.0f} s.", "",
             "Shares are of all query frames; errors and 2-sigma coverage (per-axis errors within 2 sigma of the "
             "published covariance, Gaussian 95.4 %) are of the published poses (verified and unverified, never "
             "failed); 'verified wrong' counts verified poses off by more than 0.25 m or 5 deg.", ""]
    for scene, d in results["scenes"].items():
        cal = d.get("calibration")
        cal_text = (f"scale {cal['scale_t']:.2f} / {cal['scale_r']:.2f}, floor {cal['floor_t']:.3f} m / "
                    f"{math.degrees(cal['floor_r']):.2f} deg" if cal else "uncalibrated")
        lines += [f"**{scene}**: training {d['train_seconds']:.0f} s; map {d['map_seconds']:.0f} s "
                  f"(bag reading, features, calibration map, calibration, final map), {d['map_mb']:.1f} MB, "
                  f"{d['keyframes']} key frames, {d['points']} points; calibration on {d['calibration_frames']} "
                  f"held-out frames: {cal_text}.", "",
                  "| row | posed | verified | failed | median translation (m) | median rotation (deg) "
                  "| verified wrong | within 2 sigma (pos / rot) | median inliers | ms / frame |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in d["rows"]:
            cov = r["within_2sigma"]
            cov_text = f"{_pct(cov['translation'])} / {_pct(cov['rotation'])}" if cov else "-"
            wrong = "-" if r["verified_wrong_share"] is None else \
                f"{r['verified_wrong_frames']} ({_pct(r['verified_wrong_share'])} of verified)"
            lines.append(f"| {r['row']} | {_pct(r['posed_share'])} | {_pct(r['verified_share'])} | "
                         f"{_pct(r['failed_share'])} | {_num(r['median_translation_m'], '.3f')} | "
                         f"{_num(r['median_rotation_deg'], '.2f')} | {wrong} | {cov_text} | "
                         f"{_num(r['median_inliers'], '.0f')} | {r['median_ms_per_frame']:.1f} |")
        lines.append("")
    lat = results["latency"]
    w, h = lat["size"]
    lines += [f"Verification latency at {w}x{h} ({lat['scene']}, map of {lat['mapping_frames']} frames, "
              f"{lat['query_frames']} query frames, oracle candidates, median ms on this CPU). The stage is OpenCV "
              "features and matching plus pycolmap RANSAC and refinement, all on the CPU: there is nothing "
              "GPU-specific in it, so a CUDA machine runs it the same way"
              + (" (CUDA was present here)." if lat["cuda_available"] else " (no CUDA here)."), "",
              "| feature | features | matching | ransac | refinement | total | verified | map key frames / points "
              "| map MB | map build (s) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f, r in lat["features"].items():
        ms = r["median_ms"]
        lines.append(f"| {f.upper()} | {ms['features']:.1f} | {ms['matching']:.1f} | {ms['ransac']:.1f} | "
                     f"{ms['refinement']:.1f} | {ms['total']:.1f} | {_pct(r['verified_share'])} | "
                     f"{r['map_keyframes']} / {r['map_points']} | {r['map_mb']:.1f} | {r['map_build_seconds']:.1f} |")
    lines += ["", f"Mapping cost ({SCENES[0]}, {c['size'][0]}x{c['size'][1]}, SIFT; `build_model_map`: bag "
              "reading, features, calibration map and calibration, final map, storing it in the model file).", "",
              "| mapping frames | seconds | map MB | key frames | points | calibration frames |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in results["mapping_cost"]:
        lines.append(f"| {r['frames']} | {r['seconds']:.1f} | {r['map_mb']:.1f} | {r['keyframes']} | {r['points']} "
                     f"| {r['calibration_frames']} |")
    lines += ["", "What this shows (computed from the figures above):", ""]
    lines += [f"- {s}" for s in results.get("findings", [])]
    return "\n".join(lines) + "\n"


__all__ = ["FULL", "QUICK", "ROWS", "SCENES", "Budget", "findings", "markdown_table", "run_verify_benchmark"]
