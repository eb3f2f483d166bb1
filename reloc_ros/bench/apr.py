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

"""APR benchmark: the papers' comparison on the synthetic scene, and speed figures.

Variants, each trained with the same budget on the same mapping bag and
evaluated on a different query route of the same scene:

* PoseNet: centre crop, FC head, beta loss (the baseline of LRF-PoseNet and of Ward et al.);
* resize: the whole image resized without cropping (LRF-PoseNet's input);
* LSTM head: the four directional LSTMs of LRF-PoseNet on PoseNet's crop;
* LRF-PoseNet: resize + LSTM head;
* geometric loss (Ward et al., eq. 10) and learned weighting (Kendall 2017)
  on PoseNet's network.

Speed: training throughput (images/s) and exported-model latency (batch 1)
at 224x224 for ResNet-18 and -34, on this CPU and on CUDA when present.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

log = logging.getLogger(__name__)

VARIANTS = (
    ("PoseNet (crop, FC, beta loss)", {"model": "posenet"}),
    ("resize without crop", {"model": "posenet", "preprocessing": "resize"}),
    ("LSTM head (on crop)", {"model": "posenet", "head": "lstm"}),
    ("LRF-PoseNet (resize + LSTM)", {"model": "lrf-posenet"}),
    ("geometric loss (Ward eq. 10)", {"model": "posenet", "loss": "geometric"}),
    ("learned weighting (sx, sq)", {"model": "posenet", "loss": "learned"}),
)


def _accuracy(root: Path, quick: bool, progress: bool) -> dict:
    from reloc_ros.data.bag import BagSource, read_bag_dataset
    from reloc_ros.data.synth import write_synthetic_bag
    from reloc_ros.evaluation import evaluate_model_on_bags, mean_pose_baseline
    from reloc_ros.training.trainer import TrainConfig, train

    from reloc_ros.data.synth import make_run

    frames, query, epochs = (80, 40, 2) if quick else (300, 120, 20)
    size, rate_hz = (160, 120), 10.0
    budget = TrainConfig(input_size=(80, 80), epochs=epochs, batch_size=16, lr=1e-3, seed=0)
    # The mapping run drives its loop twice, as real mapping runs revisit places.
    lap_m = make_run(route="train", frames=frames, size=size).curve.length_m
    write_synthetic_bag(root / "map", route="train", frames=frames, size=size, seed=0, progress=progress,
                        speed_mps=2 * lap_m * rate_hz / frames)
    write_synthetic_bag(root / "query", route="test", frames=query, size=size, seed=0, progress=progress)
    gt_map = read_bag_dataset(root / "map", load_images=False).poses_n44
    rows = []
    for name, overrides in VARIANTS:
        cfg = replace(budget, **overrides)
        out = root / f"{len(rows)}.pt"
        t0 = time.perf_counter()
        train([root / "map"], BagSource(), cfg, out, cache_dir=root / "cache", progress=progress)
        train_s = time.perf_counter() - t0
        _, _, rep, _ = evaluate_model_on_bags(out, [root / "query"], variant=name,
                                              train_seconds=round(train_s, 1), config=cfg.resolved().to_dict())
        log.info("%s: %.3f m %.2f deg", name, rep["median_translation_m"], rep["median_rotation_deg"])
        rows.append(rep)
    query_gt = read_bag_dataset(root / "query", load_images=False).poses_n44
    rows.append(mean_pose_baseline(gt_map, query_gt, variant="mean-pose baseline (no learning)"))
    return {"mapping_frames": frames, "query_frames": query, "image_size": list(size),
            "mapping_laps": 2,
            "budget": {"epochs": epochs, "input_size": [80, 80], "batch_size": 16, "lr": 1e-3, "backbone": "resnet18",
                       "seed": 0, "pretrained": False},
            "rows": rows}


def _speed(device: torch.device, quick: bool) -> list[dict]:
    from reloc_ros.nets.apr import APRConfig, build_apr
    from reloc_ros.nets.losses import build_loss
    from reloc_ros.training.data import to_network_input
    from reloc_ros.modelfile import load_model
    from reloc_ros.training.export import export_torchscript

    rows = []
    steps, runs = (2, 5) if quick else (6, 30)
    for backbone in ("resnet18", "resnet34"):
        torch.manual_seed(0)
        net = build_apr(APRConfig(backbone=backbone, head="fc")).to(device)
        loss_fn = build_loss("beta")
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        batch = 16
        imgs = torch.randint(0, 256, (batch, 224, 224, 3), dtype=torch.uint8)
        t_gt, q_gt = torch.zeros(batch, 3, device=device), torch.tensor([[0.0, 0, 0, 1]] * batch, device=device)
        rates = []
        for step in range(steps + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            t, q = net(to_network_input(imgs.to(device)))
            loss, _ = loss_fn(t, q, t_gt, q_gt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step:  # the first step pays for allocation and kernel selection
                rates.append(batch / (time.perf_counter() - t0))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.pt"
            meta = {"model_kind": "apr", "model": "posenet", "preprocessing": "crop", "training_data": {},
                    "metrics": {}, "frames": {"map_frame": "map", "camera_frame": "camera_optical_frame"}}
            export_torchscript(net.cpu().eval(), path, meta, pos_mean=(0.0, 0.0, 0.0), pos_scale=1.0,
                               input_size=(224, 224))
            module, _ = load_model(path, device=device)
            x = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8, device=device)
            lat = []
            with torch.no_grad():
                for i in range(runs + 3):
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    module(x)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    if i >= 3:  # warm-up runs excluded
                        lat.append(1000 * (time.perf_counter() - t0))
        rows.append({"backbone": backbone, "device": str(device),
                     "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                     "train_images_per_s_median": round(statistics.median(rates), 1),
                     "train_batch": batch, "train_steps": steps,
                     "export_latency_ms_median": round(statistics.median(lat), 2), "latency_runs": runs,
                     "torch_threads": torch.get_num_threads()})
        log.info("%s on %s: train %.1f img/s, exported latency %.1f ms", backbone, device,
                 rows[-1]["train_images_per_s_median"], rows[-1]["export_latency_ms_median"])
    return rows


def markdown_table(results: dict) -> str:
    """Render the accuracy and speed results as the README's markdown tables."""
    acc = results["accuracy"]
    b = acc["budget"]
    lines = [f"Same budget for every row: {b['backbone']} from random initialisation, {b['epochs']} epochs, "
             f"input {b['input_size'][0]}x{b['input_size'][1]}, batch {b['batch_size']}, Adam lr {b['lr']}, "
             f"seed {b['seed']}; trained on a {acc['mapping_frames']}-frame mapping bag ({acc['mapping_laps']} laps), "
             f"evaluated on a "
             f"{acc['query_frames']}-frame query bag of a different route ({acc['image_size'][0]}x"
             f"{acc['image_size'][1]} images, synthetic 'room').",
             "",
             "| variant | median translation (m) | median rotation (deg) | within 25 cm, 2 deg | within 50 cm, 5 deg "
             "| training time (s) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in acc["rows"]:
        lines.append(f"| {r['variant']} | {r['median_translation_m']:.3f} | {r['median_rotation_deg']:.2f} | "
                     f"{100 * r['within']['25cm_2deg']:.1f} % | {100 * r['within']['50cm_5deg']:.1f} % | "
                     f"{r.get('train_seconds', '-')} |")
    lines += ["", "| backbone | device | training (images/s, batch 16, 224x224) | exported model latency "
              "(ms, batch 1, 224x224, median) |", "| --- | --- | --- | --- |"]
    for r in results["speed"]:
        dev = r["device"] + (f" ({r['gpu']})" if r["gpu"] else f", {r['torch_threads']} threads")
        lines.append(f"| {r['backbone']} | {dev} | {r['train_images_per_s_median']} | "
                     f"{r['export_latency_ms_median']} |")
    return "\n".join(lines) + "\n"


def run_apr_benchmark(quick: bool = False, progress: bool = False) -> dict:
    """Run the APR accuracy comparison and the speed figures; return everything as a dict."""
    from reloc_ros.bench.data import machine_info

    results = {"machine": machine_info()}
    with tempfile.TemporaryDirectory() as tmp:
        results["accuracy"] = _accuracy(Path(tmp), quick, progress)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    results["speed"] = [row for dev in devices for row in _speed(dev, quick)]
    return results
