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

"""The one benchmark of every method: ``reloc-ros bench --suite full``.

Fixed synthetic scenes at fixed seeds, each with a mapping route (driven
twice, with depth) and a different query route: ``room`` (8 x 6 m) and
``two_rooms`` (14 x 8 m with a doorway). On each, every method is trained or
built on the mapping bag and evaluated on the query bag:

* the learned methods that exist (PoseNet, LRF-PoseNet), through the same
  trainer, export and runtime engine as a user's models, so their covariance
  calibration is measured too;
* the classical geometric reference: ORB + depth + PnP RANSAC against the
  nearest mapping frames (:class:`reloc_ros.baselines.OrbPnPReference`);
* the trivial baselines: the constant mean pose, and nearest-neighbour image
  retrieval (:class:`reloc_ros.baselines.RetrievalBaseline`).

Cost per method: training time, model file size, per-frame latency (median,
batch 1, on this CPU and on CUDA when present) and resident memory after
loading and running it. Scaling: APR latency and memory against the input size,
and retrieval latency and memory against the mapping-set size.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SCENES = ("room", "two_rooms")
APR_METHODS = (("PoseNet", {"model": "posenet"}), ("LRF-PoseNet", {"model": "lrf-posenet"}))
SIZE = (160, 120)
RATE_HZ = 10.0


def _nbytes_mb(obj, depth: int = 0) -> float:
    """Megabytes of the numpy arrays an index holds (its attributes, lists and tuples, two levels deep)."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes / 1e6
    if depth > 3:
        return 0.0
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes_mb(o, depth + 1) for o in obj)
    if hasattr(obj, "__dict__"):
        return sum(_nbytes_mb(v, depth + 1) for v in vars(obj).values())
    return 0.0


# VmHWM (this process's peak resident set) rather than getrusage's ru_maxrss: Linux carries ru_maxrss
# over from the parent through fork and exec, so a child of a large process would read the parent's peak.
_PEAK_SCRIPT = """
import sys
import numpy as np
import torch
from reloc_ros.runtime.engine import Relocalizer

def hwm_mb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024.0

base = hwm_mb()
reloc = Relocalizer(sys.argv[1], device=sys.argv[2], warmup=3)
w, h = reloc.input_size
for _ in range(10):
    reloc.relocalize_preprocessed(np.zeros((1, h, w, 3), np.uint8), [0])
print(hwm_mb() - base)
"""


def _peak_mb(model: Path, device: str = "cpu") -> float:
    """Peak resident memory (MB) that loading and running ``model`` adds to a fresh process with torch imported.

    A fresh process, because in this one the allocator keeps what earlier
    models freed and a difference of resident sizes would read near zero.
    """
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(model), device], capture_output=True, text=True,
                         timeout=600)
    if res.returncode != 0:
        log.warning("peak memory of %s not measured: %s", model, res.stderr[-500:])
        return float("nan")
    return round(float(res.stdout.strip().splitlines()[-1]), 1)


def _accuracy_row(method: str, pred_n44: np.ndarray, gt_n44: np.ndarray, **extra) -> dict:
    from reloc_ros.evaluation import accuracy_report

    rep = accuracy_report(pred_n44, gt_n44, method=method, **extra)
    return {k: rep[k] for k in ("method", "frames", "median_translation_m", "median_rotation_deg", "within")} | extra


def _timed(fn, runs: int) -> float:
    """Median milliseconds of ``fn()`` over ``runs`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def mapping_speed(scene: str, frames: int, size: tuple[int, int] = SIZE) -> float:
    """Speed (m/s) at which ``frames`` frames at RATE_HZ drive the mapping route of ``scene`` twice."""
    from reloc_ros.data.synth import make_run

    return 2 * make_run(route="train", frames=frames, size=size, scene=scene).curve.length_m * RATE_HZ / frames


def scene_bags(root: Path, scene: str, frames: int, query: int, progress: bool, size: tuple[int, int] = SIZE,
               depth: bool = True) -> tuple[Path, Path]:
    """Write the benchmark's mapping bag (route driven twice) and query bag (the other route) of ``scene``."""
    from reloc_ros.data.synth import write_synthetic_bag

    mapping, query_bag = root / f"{scene}_map", root / f"{scene}_query"
    write_synthetic_bag(mapping, route="train", frames=frames, size=size, seed=0, scene=scene, depth=depth,
                        progress=progress, speed_mps=mapping_speed(scene, frames, size), rate_hz=RATE_HZ)
    write_synthetic_bag(query_bag, route="test", frames=query, size=size, seed=0, scene=scene, progress=progress)
    return mapping, query_bag


def _classical_rows(map_ds, query_ds, runs: int) -> list[dict]:
    from reloc_ros.baselines import OrbPnPReference, RetrievalBaseline
    from reloc_ros.evaluation import mean_pose

    gt = query_ds.poses_n44
    rows = []
    T_mean = mean_pose(map_ds.poses_n44)
    rows.append(_accuracy_row("mean-pose baseline", np.broadcast_to(T_mean, gt.shape), gt, kind="baseline"))

    retrieval = RetrievalBaseline(map_ds.images, map_ds.poses_n44)
    pred = retrieval.predict(query_ds.images)
    one = query_ds.images[:1]
    rows.append(_accuracy_row("nearest-neighbour retrieval", pred, gt, kind="baseline",
                              latency_ms_cpu=round(_timed(lambda: retrieval.predict(one), runs), 3),
                              memory_mb=round(_nbytes_mb(retrieval), 2)))

    t0 = time.perf_counter()
    orb = OrbPnPReference(map_ds.images, map_ds.depths, map_ds.poses_n44, map_ds.intrinsics)
    build_s = time.perf_counter() - t0
    res = orb.predict(query_ds.images)
    rows.append(_accuracy_row("ORB + depth + PnP RANSAC (geometric reference)", res.poses_n44, gt,
                              kind="geometric", build_seconds=round(build_s, 2),
                              pnp_success=round(float(np.mean(res.success)), 3),
                              latency_ms_cpu=round(_timed(lambda: orb.predict(one), runs), 2),
                              memory_mb=round(_nbytes_mb(orb), 2)))
    return rows


def _apr_rows(root: Path, scene: str, mapping: Path, query_bag: Path, budget, runs: int, progress: bool
              ) -> list[dict]:
    import torch

    from reloc_ros.data.bag import BagSource
    from reloc_ros.runtime.engine import Relocalizer
    from reloc_ros.evaluation import evaluate_model_on_bags
    from reloc_ros.training.trainer import train

    rows = []
    for name, overrides in APR_METHODS:
        cfg = replace(budget, **overrides)
        out = root / f"{scene}_{overrides['model']}.pt"
        t0 = time.perf_counter()
        train([mapping], BagSource(), cfg, out, cache_dir=root / "cache", progress=progress)
        train_s = time.perf_counter() - t0
        pred, ds, rep, _ = evaluate_model_on_bags(out, [query_bag])
        row = _accuracy_row(name, pred, ds.poses_n44, kind="learned", train_seconds=round(train_s, 1),
                            model_mb=round(out.stat().st_size / 1e6, 1), config=cfg.resolved().to_dict())
        row["calibration"] = {g: {k: rep["covariance"][g][k] for k in ("within_1sigma", "within_2sigma")}
                              for g in ("translation", "rotation")}
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for dev in devices:
            reloc = Relocalizer(out, device=dev, warmup=3)
            x = np.asarray(ds.images[:1])
            row[f"latency_ms_{dev}"] = round(_timed(lambda: reloc.relocalize_preprocessed(x, [0]), runs), 2)
            if dev == "cpu":
                row["memory_mb"] = _peak_mb(out)
            else:
                row["gpu"] = torch.cuda.get_device_name(0)
                row["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 1e6, 1)
        log.info("%s on %s: %.3f m %.2f deg", name, scene, row["median_translation_m"], row["median_rotation_deg"])
        rows.append(row)
    return rows


def _scaling(root: Path, quick: bool, runs: int) -> dict:
    """APR latency/memory against input size; retrieval latency/memory against mapping-set size."""
    import torch

    from reloc_ros.baselines import RetrievalBaseline
    from reloc_ros.nets.apr import APRConfig, build_apr
    from reloc_ros.runtime.engine import Relocalizer
    from reloc_ros.training.export import export_torchscript

    sizes = [(80, 80), (160, 120)] if quick else [(80, 80), (160, 120), (224, 224), (320, 240)]
    image_rows = []
    for w, h in sizes:
        torch.manual_seed(0)
        path = root / f"scale_{w}x{h}.pt"
        meta = {"model": "posenet", "preprocessing": "resize", "training_data": {}, "metrics": {},
                "frames": {"map_frame": "map", "camera_frame": "camera_optical_frame"}}
        export_torchscript(build_apr(APRConfig()), path, meta, pos_mean=(0.0, 0.0, 0.0), pos_scale=1.0,
                           input_size=(w, h))
        reloc = Relocalizer(path, device="cpu", warmup=3)
        x = np.zeros((1, h, w, 3), np.uint8)
        image_rows.append({"input": f"{w}x{h}", "latency_ms_cpu": round(_timed(
            lambda: reloc.relocalize_preprocessed(x, [0]), runs), 2), "memory_mb": _peak_mb(path)})
    map_rows = []
    rng = np.random.default_rng(0)
    query = rng.integers(0, 256, (1, SIZE[1], SIZE[0], 3), dtype=np.uint8)
    for n in ([300, 3000] if quick else [300, 3000, 30000]):
        # Random mapping images would cost minutes to make at 30k: the index only sees thumbnails, so
        # build it from random thumbnail-sized images (same descriptor size, same search).
        images = rng.integers(0, 256, (n, 24, 32, 3), dtype=np.uint8)
        retrieval = RetrievalBaseline(images, np.broadcast_to(np.eye(4), (n, 4, 4)))
        map_rows.append({"mapping_frames": n, "latency_ms_cpu": round(_timed(lambda: retrieval.predict(query),
                                                                             runs), 3),
                         "memory_mb": round(_nbytes_mb(retrieval), 2)})
    return {"input_size": image_rows, "mapping_size": map_rows,
            "note": "APR models do not grow with the mapping set: their size and latency depend on the input only"}


def run_full_benchmark(quick: bool = False, progress: bool = False) -> dict:
    """Run every method on every scene; return everything as a dict (see the module docstring)."""
    from reloc_ros.bench.data import machine_info
    from reloc_ros.data.bag import BagSource, read_bag_dataset
    from reloc_ros.training.trainer import TrainConfig

    frames, query, epochs, runs = (60, 20, 1, 5) if quick else (300, 120, 20, 30)
    budget = TrainConfig(input_size=(80, 80), epochs=epochs, batch_size=16, lr=1e-3, seed=0)
    results: dict = {"machine": machine_info(), "mapping_frames": frames, "query_frames": query,
                     "image_size": list(SIZE), "latency_runs": runs,
                     "budget": {"epochs": epochs, "input_size": [80, 80], "batch_size": 16, "lr": 1e-3,
                                "backbone": "resnet18", "pretrained": False, "seed": 0},
                     "scenes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for scene in SCENES[:1] if quick else SCENES:
            mapping, query_bag = scene_bags(root, scene, frames, query, progress)
            map_ds = read_bag_dataset(mapping, BagSource(depth_topic="/camera/depth/image_raw"))
            query_ds = read_bag_dataset(query_bag)
            rows = _classical_rows(map_ds, query_ds, runs)
            rows += _apr_rows(root, scene, mapping, query_bag, budget, runs, progress)
            results["scenes"][scene] = rows
        results["scaling"] = _scaling(root, quick, runs)
    return results


def markdown_table(results: dict) -> str:
    """Render the full benchmark as the README's markdown tables."""
    b = results["budget"]
    lines = [f"Learned methods: {b['backbone']} from random initialisation, {b['epochs']} epochs, input "
             f"{b['input_size'][0]}x{b['input_size'][1]}, batch {b['batch_size']}, Adam lr {b['lr']}, seed "
             f"{b['seed']}. Mapping {results['mapping_frames']} frames (2 laps, with depth), query "
             f"{results['query_frames']} frames of a different route, {results['image_size'][0]}x"
             f"{results['image_size'][1]} images. Latency: median of {results['latency_runs']} calls, batch 1, "
             f"after warm-up. Memory: for learned models the peak resident memory that loading and running one adds "
             f"to a fresh process with torch imported; for the others the size of their index (arrays).", ""]
    for scene, rows in results["scenes"].items():
        lines += [f"**{scene}**", "",
                  "| method | median translation (m) | median rotation (deg) | within 5 cm, 5 deg "
                  "| within 25 cm, 2 deg | errors within 2 sigma (pos / rot) | training (s) | model (MB) "
                  "| latency CPU (ms) | memory (MB) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            cal = r.get("calibration")
            cal_text = (f"{100 * cal['translation']['within_2sigma']:.0f} % / "
                        f"{100 * cal['rotation']['within_2sigma']:.0f} %") if cal else "-"
            name = r["method"] + (f" ({100 * r['pnp_success']:.0f} % PnP success)" if "pnp_success" in r else "")
            if "latency_ms_cuda" in r:
                name += f"; CUDA ({r['gpu']}): {r['latency_ms_cuda']} ms"
            lines.append(f"| {name} | {r['median_translation_m']:.3f} | {r['median_rotation_deg']:.2f} | "
                         f"{100 * r['within']['5cm_5deg']:.1f} % | {100 * r['within']['25cm_2deg']:.1f} % | "
                         f"{cal_text} | {r.get('train_seconds', r.get('build_seconds', '-'))} | "
                         f"{r.get('model_mb', '-')} | {r.get('latency_ms_cpu', '-')} | {r.get('memory_mb', '-')} |")
        lines.append("")
    sc = results["scaling"]
    lines += ["Scaling (CPU): APR (ResNet-18, MC dropout) against its input size, and nearest-neighbour "
              "retrieval against the mapping-set size. " + sc["note"] + ".", "",
              "| APR input | latency (ms) | memory (MB) |", "| --- | --- | --- |"]
    lines += [f"| {r['input']} | {r['latency_ms_cpu']} | {r['memory_mb']} |" for r in sc["input_size"]]
    lines += ["", "| mapping frames | retrieval latency (ms) | memory (MB) |", "| --- | --- | --- |"]
    lines += [f"| {r['mapping_frames']} | {r['latency_ms_cpu']} | {r['memory_mb']} |" for r in sc["mapping_size"]]
    return "\n".join(lines) + "\n"
