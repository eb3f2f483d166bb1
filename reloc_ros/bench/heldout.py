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

"""Held-out routes: does each paper's method learn, and does its validation figure predict the query.

``reloc-ros bench --suite heldout``. On the synthetic ``room`` (a mapping
route driven twice, with depth, and a query route the robot never drove),
every method is trained by ``reloc-ros train`` as a user would, with the
default validation split (regions of place and view held out of the mapping
run), and evaluated on the query route through the runtime engine:

* PoseNet (Kendall et al.), LRF-PoseNet (Qin et al.), PoseNet with the
  geometric loss of Ward et al., CamNet (Ding et al.) with ORB pair labels
  (no depth, as an ordinary mapping run), PMNet (Lin et al.);
* PoseNet once more with the former time-block validation, to show what that
  split promised;
* the references that need no learning: the mean mapping pose and
  nearest-mapping-frame retrieval (thumbnails).

Each row has the validation figure the trainer reported beside the query
figure, their ratio, and how many times better than the mean pose the query
answer is; the header says how far validation frames lie from the training
frames and query frames from the mapping run.
"""

from __future__ import annotations

from dataclasses import replace
import logging
from pathlib import Path
import tempfile
import time

import numpy as np

log = logging.getLogger(__name__)

EPOCHS = {"posenet": 20, "lrf-posenet": 20, "camnet": 12, "pmnet": 12}
"""Epochs per model: the APRs as the ``full`` suite, CamNet and PMNet as their own suites (their epochs cost more)."""

METHODS = (
    ("PoseNet", {"model": "posenet"}),
    ("PoseNet, time-block validation", {"model": "posenet", "val_split": "time"}),
    ("LRF-PoseNet", {"model": "lrf-posenet"}),
    ("PoseNet + geometric loss (Ward et al.)", {"model": "posenet", "loss": "geometric"}),
    ("CamNet (ORB pairs, no depth)", {"model": "camnet", "similarity": "orb", "lr": None}),  # its SGD 0.01
    ("PMNet", {"model": "pmnet"}),
)
"""(row name, training options) of the learned rows."""


def _figures(report: dict) -> dict:
    return {"median_translation_m": round(float(report["median_translation_m"]), 4),
            "median_rotation_deg": round(float(report["median_rotation_deg"]), 3)}


def _reference_rows(map_ds, query_ds, val_split: str, val_fraction: float) -> list[dict]:
    """Mean pose and retrieval: validation on the mapping run's held-out split, query from the whole run."""
    from reloc_ros.baselines import RetrievalBaseline
    from reloc_ros.evaluation import accuracy_report, mean_pose_baseline
    from reloc_ros.training.data import split_frames

    train, val = split_frames(map_ds.poses_n44, val_fraction, val_split)
    poses, images, query_images = map_ds.poses_n44, np.asarray(map_ds.images), np.asarray(query_ds.images)

    def retrieval(db: np.ndarray, queries: np.ndarray, gt: np.ndarray) -> dict:
        return accuracy_report(RetrievalBaseline(images[db], poses[db]).predict(queries), gt)

    everything = np.arange(len(poses))
    return [{"method": "mean mapping pose", "kind": "reference",
             "validation": _figures(mean_pose_baseline(poses[train], poses[val])),
             "query": _figures(mean_pose_baseline(poses, query_ds.poses_n44))},
            {"method": "nearest-mapping-frame retrieval", "kind": "reference",
             "validation": _figures(retrieval(train, images[val], poses[val])),
             "query": _figures(retrieval(everything, query_images, query_ds.poses_n44))}]


def _learned_row(name: str, cfg, mapping: Path, query_bag: Path, out: Path, progress: bool) -> dict:
    from reloc_ros.data.bag import BagSource
    from reloc_ros.data.synth import DEPTH_TOPIC
    from reloc_ros.evaluation import evaluate_model_on_bags
    from reloc_ros.modelfile import read_metadata
    from reloc_ros.training.trainer import train

    t0 = time.perf_counter()
    train([mapping], BagSource(depth_topic=DEPTH_TOPIC), cfg, out, cache_dir=out.parent / "cache",
          progress=progress)
    seconds = time.perf_counter() - t0
    meta = read_metadata(out)
    quality = meta["quality"]
    _, _, report, _ = evaluate_model_on_bags(out, [query_bag])
    row = {"method": name, "kind": "learned", "config": cfg.resolved().to_dict(), "train_seconds": round(seconds, 1),
           "validation": {"median_translation_m": round(quality["model_median_m"], 4),
                          "median_rotation_deg": round(quality["model_median_deg"], 3),
                          "split": quality["split"], "frames": quality["frames"]},
           "weak": bool(quality["weak"]), "query": _figures(report)}
    if "covariance" in report:
        row["query_within_2sigma"] = {g: round(report["covariance"][g]["within_2sigma"], 3)
                                      for g in ("translation", "rotation")}
    log.info("%s: validation %.3f m, query %.3f m", name, row["validation"]["median_translation_m"],
             row["query"]["median_translation_m"])
    return row


def run_heldout_benchmark(quick: bool = False, progress: bool = False) -> dict:
    """Train every method on the mapping route, evaluate on the query route; return the figures."""
    from reloc_ros.bench.data import machine_info
    from reloc_ros.bench.full import scene_bags
    from reloc_ros.data.bag import read_bag_dataset
    from reloc_ros.evaluation import distance_from_path
    from reloc_ros.training.data import split_frames
    from reloc_ros.training.trainer import TrainConfig

    frames, query, size = (60, 20, (32, 32)) if quick else (300, 120, (80, 80))
    nerf = ({"nerf_steps": 60, "nerf_pose_steps": 30, "nerf_resolution": 64, "nerf_rays": 512} if quick else
            {"nerf_steps": 1000, "nerf_pose_steps": 300, "nerf_resolution": 128, "nerf_rays": 2048})
    budget = TrainConfig(input_size=size, batch_size=16, lr=1e-3, seed=0, backbone="resnet18")
    results: dict = {"machine": machine_info(), "scene": "room", "mapping_frames": frames, "query_frames": query,
                     "budget": {"input_size": list(size), "batch_size": 16, "backbone": "resnet18",
                                "pretrained": False, "seed": 0, "lr": 1e-3, "camnet_lr": 0.01,
                                "epochs": dict.fromkeys(EPOCHS, 1) if quick else EPOCHS, **nerf},
                     "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mapping, query_bag = scene_bags(root, "room", frames, query, progress)
        map_ds, query_ds = read_bag_dataset(mapping), read_bag_dataset(query_bag)
        poses = map_ds.poses_n44
        for split in ("spatial", "time"):
            train_idx, val_idx = split_frames(poses, budget.val_fraction, split)
            results[f"validation_{split}_from_training"] = distance_from_path(poses[val_idx], poses[train_idx])
        results["query_from_mapping"] = distance_from_path(query_ds.poses_n44, poses)
        results["rows"] = _reference_rows(map_ds, query_ds, budget.val_split, budget.val_fraction)
        for i, (name, overrides) in enumerate(METHODS):
            model = overrides["model"]
            cfg = replace(budget, epochs=1 if quick else EPOCHS[model], **overrides,
                          **(nerf if model == "pmnet" else {}))
            results["rows"].append(_learned_row(name, cfg, mapping, query_bag, root / f"model_{i}.pt", progress))
    mean_query = results["rows"][0]["query"]["median_translation_m"]
    for row in results["rows"]:
        q, v = row["query"]["median_translation_m"], row["validation"]["median_translation_m"]
        row["query_over_validation"] = round(q / v, 2) if v > 0 else None
        row["times_better_than_mean_pose"] = round(mean_query / q, 2) if q > 0 else None
    return results


def markdown_table(results: dict) -> str:
    """Render the held-out benchmark as the README's table."""
    b, d = results["budget"], results
    ep = ", ".join(f"{k} {v}" for k, v in b["epochs"].items())
    lines = [f"Scene `{d['scene']}`: mapping {d['mapping_frames']} frames (2 laps, with depth), query "
             f"{d['query_frames']} frames of a route never driven while mapping. Every model: {b['backbone']} from "
             f"random initialisation, input {b['input_size'][0]}x{b['input_size'][1]}, batch {b['batch_size']}, "
             f"epochs: {ep}; Adam lr {b['lr']} (CamNet: SGD {b['camnet_lr']} poly, the paper's); PMNet's NeRF-P "
             f"{b['nerf_steps']} + {b['nerf_pose_steps']} steps. Validation: the trainer's figure on its "
             "validation split (regions of place and view held out of the mapping run, unless the row says "
             "otherwise), median over frames. Validation frames lie a median "
             f"{d['validation_spatial_from_training']['median_distance_m']:.2f} m and "
             f"{d['validation_spatial_from_training']['median_view_angle_deg']:.0f} deg from the nearest training "
             f"frame (time blocks: {d['validation_time_from_training']['median_distance_m']:.2f} m, "
             f"{d['validation_time_from_training']['median_view_angle_deg']:.0f} deg); query frames "
             f"{d['query_from_mapping']['median_distance_m']:.2f} m and "
             f"{d['query_from_mapping']['median_view_angle_deg']:.0f} deg from the nearest mapping frame.", "",
             "| method | validation (m / deg) | query (m / deg) | query / validation | better than mean pose "
             "| query errors within 2 sigma (pos / rot) | trainer's verdict | training (s) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in d["rows"]:
        v, q = r["validation"], r["query"]
        cov = r.get("query_within_2sigma")
        cov_text = f"{100 * cov['translation']:.0f} % / {100 * cov['rotation']:.0f} %" if cov else "-"
        verdict = "-" if r["kind"] == "reference" else ("weak" if r["weak"] else "ok")
        lines.append(f"| {r['method']} | {v['median_translation_m']:.3f} / {v['median_rotation_deg']:.1f} | "
                     f"{q['median_translation_m']:.3f} / {q['median_rotation_deg']:.1f} | "
                     f"{r['query_over_validation']} | {r['times_better_than_mean_pose']}x | {cov_text} | {verdict} | "
                     f"{r.get('train_seconds', '-')} |")
    return "\n".join(lines) + "\n"
