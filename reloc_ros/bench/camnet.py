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

"""CamNet's benchmark: ``reloc-ros bench --suite camnet``.

* **Ablation** (the CamNet paper's Table 2) on the synthetic ``room``: one CamNet
  trained on the mapping bag (frustum overlap from its depth), evaluated on
  the query route as retrieval only (the pose of the nearest key frame),
  + PFR (the coarse pose from the top-1 key frame), + PRP (the precise pose
  from the key frame Algorithm 1 re-retrieves), the consensus of the K = 3
  precise poses, and the full method with the two previous frames as extra
  hypotheses (through the runtime engine, as the node runs it). Beside it:
  the same CamNet trained with ORB similarity instead of depth, and the APR
  models, all with the same budget (backbone, input size, epochs, batch).
* **Latency by stage** at 224 x 224 with the paper's ResNet-34: encoder,
  retrieval (top K), PFR, re-retrieval (Algorithm 1), PRP and fusion, as
  the exported file runs them (TorchScript), batch 1, median of N calls; on
  CUDA too when present. The weights do not change the cost, so an untrained
  network is timed.
* **Database size**: latency of a whole frame and the memory of the database
  for 1k, 10k and 100k key frames (random unit descriptors and poses: the
  search cost does not depend on the content). Search is exact.
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

SCENE = "room"
STAGES = ("encoder", "retrieval", "pfr", "re_retrieval", "prp", "fusion")


def _median_ms(fn, runs: int, sync=None) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 3)


def _errors(pred_n44: np.ndarray, gt_n44: np.ndarray) -> dict:
    from reloc_ros.geometry import rotation_error_deg, translation_error

    return {"median_translation_m": round(float(np.median(translation_error(pred_n44, gt_n44))), 3),
            "median_rotation_deg": round(float(np.median(rotation_error_deg(pred_n44, gt_n44))), 2)}


def ablation_rows(model_path: Path, query_bag: Path, label: str) -> list[dict]:
    """Table 2 for one trained CamNet file: retrieval, + PFR, + PRP, consensus, full (with sequence)."""
    import torch

    from reloc_ros.data.bag import BagSource, read_bag_dataset
    from reloc_ros.geometry import make_pose
    from reloc_ros.evaluation import evaluate_model_on_bags
    from reloc_ros.modelfile import load_model

    module, meta = load_model(model_path)
    ds = read_bag_dataset([query_bag], BagSource(), image_size=tuple(meta["input_size"]),
                          preprocessing=meta["preprocessing"])
    gt = ds.poses_n44
    x = torch.from_numpy(np.ascontiguousarray(ds.images)).permute(0, 3, 1, 2)

    def poses(t, q):
        q = q.double().numpy()
        return make_pose(t.double().numpy(), q / np.linalg.norm(q, axis=-1, keepdims=True))

    with torch.no_grad():
        f_r, f_c, f_f = module.encode(x)
        idx = module.retrieve(f_r)
        t_c, q_c = module.coarse(f_c, idx)
        t_h, q_h = module.refine_keyframes(f_f, module.nearest(t_c, q_c))
        t_f, q_f = module(x)
    rows = [{"method": f"{label}: retrieval only (nearest key frame)",
             **_errors(poses(module.db_t[idx[:, 0]], module.db_q[idx[:, 0]]), gt)},
            {"method": f"{label}: + PFR (coarse pose, top 1)", **_errors(poses(t_c[:, 0], q_c[:, 0]), gt)},
            {"method": f"{label}: + PRP (precise pose, top 1)", **_errors(poses(t_h[:, 0], q_h[:, 0]), gt)},
            {"method": f"{label}: consensus of the K = {module.k} precise poses", **_errors(poses(t_f, q_f), gt)}]
    pred, _, rep, _ = evaluate_model_on_bags(model_path, [query_bag])
    full = {"method": f"{label}: full (+ 2 previous frames, the runtime)", **_errors(pred, gt),
            "within_2sigma": {g: round(rep["covariance"][g]["within_2sigma"], 3) for g in ("translation", "rotation")}}
    return rows + [full]


def _train_rows(root: Path, mapping: Path, query_bag: Path, budget, progress: bool) -> tuple[list[dict], dict]:
    from reloc_ros.data.bag import BagSource
    from reloc_ros.data.synth import DEPTH_TOPIC
    from reloc_ros.evaluation import evaluate_model_on_bags
    from reloc_ros.modelfile import read_metadata
    from reloc_ros.training.trainer import train

    rows, info = [], {}
    runs = [("PoseNet", {"model": "posenet", "lr": 1e-3}, BagSource()),
            ("LRF-PoseNet", {"model": "lrf-posenet", "lr": 1e-3}, BagSource()),
            ("CamNet", {"model": "camnet"}, BagSource(depth_topic=DEPTH_TOPIC)),
            ("CamNet (ORB similarity, no depth)", {"model": "camnet", "similarity": "orb"}, BagSource())]
    for name, overrides, source in runs:
        cfg = replace(budget, **overrides)
        out = root / f"{name.split()[0].lower()}_{overrides.get('similarity', 'default')}.pt"
        t0 = time.perf_counter()
        train([mapping], source, cfg, out, cache_dir=root / "cache", progress=progress)
        train_s = round(time.perf_counter() - t0, 1)
        if cfg.model == "camnet":
            label = "CamNet" if source.depth_topic else "CamNet-ORB"
            ablation = ablation_rows(out, query_bag, label)
            for r in ablation:
                r.update(train_seconds=train_s, model_mb=round(out.stat().st_size / 1e6, 1))
            rows += ablation
            info[label] = read_metadata(out)["camnet"]
        else:
            pred, ds, rep, _ = evaluate_model_on_bags(out, [query_bag])
            rows.append({"method": name, **_errors(pred, ds.poses_n44), "train_seconds": train_s,
                         "model_mb": round(out.stat().st_size / 1e6, 1),
                         "within_2sigma": {g: round(rep["covariance"][g]["within_2sigma"], 3)
                                           for g in ("translation", "rotation")}})
        log.info("%s: %s", name, rows[-1])
    return rows, info


def _random_database(n: int, feature_dim: int, input_size, backbone: str, seed: int = 0):
    import torch

    from reloc_ros.training.camnet_export import Database

    gen = torch.Generator().manual_seed(seed)
    desc = torch.nn.functional.normalize(torch.randn(n, feature_dim, generator=gen), dim=1)
    q = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=1)
    return Database(desc, torch.randn(n, feature_dim, generator=gen), torch.randn(n, feature_dim, generator=gen),
                    torch.rand(n, 3, generator=gen) * 10, q, backbone, tuple(input_size), np.arange(n))


def stage_latency(backbone: str = "resnet34", size=(224, 224), keyframes: int = 1000, runs: int = 30,
                  device: str = "cpu") -> dict:
    """Median milliseconds per stage of one frame, the exported (TorchScript) module, batch 1."""
    import torch

    from reloc_ros.nets.camnet import CamNetConfig, build_camnet
    from reloc_ros.training.camnet_export import compile_camnet, wrap_camnet

    torch.manual_seed(0)
    net = build_camnet(CamNetConfig(backbone))
    m = compile_camnet(wrap_camnet(net, _random_database(keyframes, net.feature_dim, size, backbone), size)).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    x = torch.randint(0, 256, (1, 3, size[1], size[0]), dtype=torch.uint8, device=device)
    with torch.no_grad():
        f_r, f_c, f_f = m.encode(x)
        idx = m.retrieve(f_r)
        t_c, q_c = m.coarse(f_c, idx)
        near = m.nearest(t_c, q_c)
        t_h, q_h = m.refine_keyframes(f_f, near)
        steps = {"encoder": lambda: m.encode(x), "retrieval": lambda: m.retrieve(f_r),
                 "pfr": lambda: m.coarse(f_c, idx), "re_retrieval": lambda: m.nearest(t_c, q_c),
                 "prp": lambda: m.refine_keyframes(f_f, near), "fusion": lambda: m.fuse(t_h, q_h)}
        out = {k: _median_ms(fn, runs, sync) for k, fn in steps.items()}
        out["whole_frame"] = _median_ms(lambda: m(x), runs, sync)
    out.update(backbone=backbone, input=f"{size[0]}x{size[1]}", keyframes=keyframes, device=device)
    if device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def database_scaling(sizes=(1_000, 10_000, 100_000), runs: int = 20, backbone: str = "resnet18",
                     size=(80, 80)) -> list[dict]:
    """Whole-frame and search latency, and database memory, against the number of key frames (CPU)."""
    import torch

    from reloc_ros.nets.camnet import CamNetConfig, build_camnet
    from reloc_ros.training.camnet_export import compile_camnet, wrap_camnet

    torch.manual_seed(0)
    net = build_camnet(CamNetConfig(backbone))
    rows = []
    x = torch.randint(0, 256, (1, 3, size[1], size[0]), dtype=torch.uint8)
    for n in sizes:
        db = _random_database(n, net.feature_dim, size, backbone)
        m = compile_camnet(wrap_camnet(net, db, size))
        with torch.no_grad():
            f_r, f_c, _ = m.encode(x)
            t_c, q_c = m.coarse(f_c, m.retrieve(f_r))
            rows.append({"keyframes": n, "database_mb": round(db.nbytes / 1e6, 1),
                         "whole_frame_ms": _median_ms(lambda: m(x), runs),
                         "retrieval_ms": _median_ms(lambda: m.retrieve(f_r), runs),
                         "re_retrieval_ms": _median_ms(lambda: m.nearest(t_c, q_c), runs)})
        log.info("database of %d key frames: %s", n, rows[-1])
    return rows


def run_camnet_benchmark(quick: bool = False, progress: bool = False) -> dict:
    """Everything of the module docstring, as a dict (JSON-ready)."""
    import torch

    from reloc_ros.bench.data import machine_info
    from reloc_ros.bench.full import scene_bags
    from reloc_ros.training.trainer import TrainConfig

    frames, query, epochs, runs = (60, 20, 1, 3) if quick else (300, 120, 12, 30)
    budget = TrainConfig(input_size=(80, 80), epochs=epochs, batch_size=16, seed=0, backbone="resnet18")
    results: dict = {"machine": machine_info(), "scene": SCENE, "mapping_frames": frames, "query_frames": query,
                     "budget": {"epochs": epochs, "input_size": [80, 80], "batch_size": 16, "backbone": "resnet18",
                                "pretrained": False, "seed": 0,
                                "optimizers": "APR: Adam lr 1e-3; CamNet: SGD 0.01 poly (the paper's)"}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mapping, query_bag = scene_bags(root, SCENE, frames, query, progress)
        results["ablation"], results["camnet"] = _train_rows(root, mapping, query_bag, budget, progress)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results["stage_latency"] = [stage_latency("resnet18" if quick else "resnet34", (224, 224), 1000, runs, dev)
                                for dev in devices]
    results["database_scaling"] = database_scaling((1_000, 10_000) if quick else (1_000, 10_000, 100_000), runs)
    return results


def markdown_table(results: dict) -> str:
    """Render the README's CamNet tables."""
    b = results["budget"]
    lines = [f"Scene `{results['scene']}`: mapping {results['mapping_frames']} frames (2 laps, with depth), query "
             f"{results['query_frames']} frames of a different route. Every model: {b['backbone']} from random "
             f"initialisation, {b['epochs']} epochs, input {b['input_size'][0]}x{b['input_size'][1]}, batch "
             f"{b['batch_size']} ({b['optimizers']}).", "",
             "| method | median translation (m) | median rotation (deg) | errors within 2 sigma (pos / rot) "
             "| training (s) | model (MB) |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results["ablation"]:
        w = r.get("within_2sigma")
        cal = f"{100 * w['translation']:.0f} % / {100 * w['rotation']:.0f} %" if w else "-"
        lines.append(f"| {r['method']} | {r['median_translation_m']:.3f} | {r['median_rotation_deg']:.2f} | {cal} | "
                     f"{r['train_seconds']} | {r['model_mb']} |")
    lines += ["", "Latency per stage (ms, median, batch 1, the exported TorchScript file, 1000 key frames):", "",
              "| device | backbone, input | " + " | ".join(STAGES) + " | whole frame |",
              "| --- | --- | " + " | ".join("---" for _ in STAGES) + " | --- |"]
    for r in results["stage_latency"]:
        dev = r["device"] + (f" ({r['gpu']})" if "gpu" in r else "")
        lines.append(f"| {dev} | {r['backbone']}, {r['input']} | " + " | ".join(str(r[s]) for s in STAGES)
                     + f" | {r['whole_frame']} |")
    lines += ["", "Database size (CPU, ResNet-18 at 80x80, exact search):", "",
              "| key frames | database (MB) | whole frame (ms) | retrieval (ms) | re-retrieval (ms) |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['keyframes']} | {r['database_mb']} | {r['whole_frame_ms']} | {r['retrieval_ms']} | "
              f"{r['re_retrieval_ms']} |" for r in results["database_scaling"]]
    return "\n".join(lines) + "\n"
