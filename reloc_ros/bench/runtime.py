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

"""Runtime benchmark: message-to-pose latency by stage, sustained rate, and memory under a 10x replay.

What is measured, for a 640x480 ``rgb8`` ``sensor_msgs/Image``
and a ResNet-18 APR at 224x224 (untrained weights: speed does not depend on
them), exported exactly as the trainer exports (TorchScript with MC dropout):

* latency per stage from message to the published pose: decode (message ->
  RGB array), preprocess (resize to the model input), inference (the network,
  MC-dropout samples included), postprocess (covariance, confidence,
  hypotheses, camera -> base_link, map -> odom and the ~/pose message); then
  the node's other outputs of the frame (camera pose, hypotheses PoseArray,
  TF); medians over many frames measured in one process;
* the rate the engine sustains when frames arrive faster than it infers
  (through :class:`~reloc_ros.runtime.engine.LatestFrameWorker`, as in the node);
* resident memory sampled while a recorded synthetic bag is fed to the worker
  at 10x its recorded rate: it must stay flat (the worker drops stale frames
  instead of queueing them);
* the same on CUDA when a GPU is present, and the ONNX Runtime backend on CPU.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SIZE = (640, 480)
INPUT = (224, 224)


def _rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except OSError:
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _export_model(path: Path) -> Path:
    import torch

    from reloc_ros.nets.apr import APRConfig, build_apr
    from reloc_ros.training.export import export_torchscript
    from reloc_ros.training.onnx_export import export_onnx

    torch.manual_seed(0)
    meta = {"model_kind": "apr", "model": "posenet", "preprocessing": "resize", "training_data": {},
            "metrics": {}, "frames": {"map_frame": "map", "camera_frame": "camera_optical_frame"},
            "uncertainty": {"method": "mc_dropout", "samples": 32,
                            "calibration": {"scale_t": 1.0, "floor_t": 0.01, "scale_r": 1.0, "floor_r": 0.01}}}
    export_torchscript(build_apr(APRConfig(backbone="resnet18")), path, meta, pos_mean=(0.0, 0.0, 0.0),
                       pos_scale=1.0, input_size=INPUT)
    export_onnx(path, path.with_suffix(".onnx"))
    return path


def _frame_path(reloc, msg, types, T_base_cam, T_odom_base) -> dict[str, float]:
    """Time one frame from message to the published pose, then the other outputs; return ms per stage."""
    from reloc_ros import conversions as conv
    from reloc_ros.runtime.pipeline import localize_frame

    est = reloc.relocalize_msg(msg)
    t0 = time.perf_counter()
    fr = localize_frame(est, T_base_cam=T_base_cam, base_frame="base_link", camera_frame="camera_optical_frame",
                        T_odom_base=T_odom_base, min_confidence=0.0, allow_unverified=True)  # the whole path
    conv.make_pose_with_covariance_stamped(types, fr.T_map_base, fr.cov_base, est.stamp_ns, "map")
    t1 = time.perf_counter()
    # What the node publishes after ~/pose: camera pose, hypotheses, the map -> odom TF.
    conv.make_pose_with_covariance_stamped(types, est.T_map_cam, est.covariance, est.stamp_ns, "map")
    conv.make_pose_array(types, fr.hypotheses, est.stamp_ns, "map")
    conv.make_tf_message(types, [conv.make_transform_stamped(types, fr.tf[2], est.stamp_ns, fr.tf[0], fr.tf[1])])
    t2 = time.perf_counter()
    times = {k: est.timings_ms[k] for k in ("decode", "preprocess", "inference")}
    times["postprocess"] = est.timings_ms["postprocess"] + (t1 - t0) * 1e3
    times["total"] = sum(times.values())
    times["non_inference"] = times["total"] - times["inference"]
    times["other_outputs"] = (t2 - t1) * 1e3
    return times


def _latency(model: Path, device: str, backend: str, runs: int) -> dict:
    from rosbags.typesys import Stores, get_typestore

    from reloc_ros import conversions as conv
    from reloc_ros.geometry import make_pose
    from reloc_ros.runtime.engine import Relocalizer

    types = get_typestore(Stores.ROS2_HUMBLE).types
    reloc = Relocalizer(model, device=device, backend=backend, warmup=3)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8) for _ in range(4)]
    msgs = [conv.make_image_msg(types, im, "rgb8", 1_000_000_000 + k, "camera_optical_frame")
            for k, im in enumerate(images)]
    T_base_cam = make_pose(np.array([0.2, 0.0, 0.8]), np.array([-0.5, 0.5, -0.5, 0.5]))
    T_odom_base = make_pose(np.array([1.0, 2.0, 0.0]), np.array([0.0, 0.0, 0.38268343, 0.92387953]))
    for k in range(3):
        _frame_path(reloc, msgs[k % 4], types, T_base_cam, T_odom_base)
    rows = [_frame_path(reloc, msgs[k % 4], types, T_base_cam, T_odom_base) for k in range(runs)]
    out = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
    return {"device": reloc.device, "backend": backend, "runs": runs, "median_ms": out,
            "uncertainty": reloc.uncertainty, "sustained": _sustained(reloc, msgs)}


def _sustained(reloc, msgs, seconds: float = 5.0) -> dict:
    """Feed frames as fast as possible through the drop-oldest worker; return the processed rate."""
    from reloc_ros.runtime.worker import LatestFrameWorker

    worker = LatestFrameWorker(reloc.relocalize_msg)
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < seconds:
        worker.submit(msgs[k % len(msgs)])
        k += 1
        time.sleep(0.001)  # a camera far faster than the engine (~1 kHz)
    worker.wait_idle(30.0)
    elapsed = time.perf_counter() - t0
    worker.stop()
    s = worker.stats
    return {"seconds": round(elapsed, 2), "submitted": s.submitted, "processed": s.processed,
            "dropped": s.dropped, "frames_per_s": round(s.processed / elapsed, 1)}


def _memory_under_replay(model: Path, quick: bool, tmp: Path) -> dict:
    """Feed a recorded bag's images at 10x their recorded rate through the worker; sample RSS."""
    from reloc_ros.data.bag import Bag
    from reloc_ros.data.synth import write_synthetic_bag
    from reloc_ros.runtime.engine import Relocalizer
    from reloc_ros.runtime.worker import LatestFrameWorker

    frames = 60 if quick else 300
    bag_path = tmp / "replay_bag"
    write_synthetic_bag(bag_path, route="test", frames=frames, size=(320, 240), progress=False)
    reloc = Relocalizer(model, device="cpu", warmup=2)
    with Bag(bag_path) as bag:
        msgs = [(t, m) for _, t, m in bag.messages(["/camera/image_raw"])]
    passes = 2 if quick else 5
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sampler() -> None:
        t0 = time.perf_counter()
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, _rss_mb()))
            time.sleep(0.2)

    worker = LatestFrameWorker(reloc.relocalize_msg)
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    t_start = time.perf_counter()
    speed = 10.0
    offset = 0.0
    for _ in range(passes):  # the bag played several times over, at 10x
        t_first = msgs[0][0]
        for t_log, msg in msgs:
            due = offset + (t_log - t_first) * 1e-9 / speed
            delay = due - (time.perf_counter() - t_start)
            if delay > 0:
                time.sleep(delay)
            worker.submit(msg)
        offset = time.perf_counter() - t_start
    worker.wait_idle(30.0)
    stop.set()
    th.join()
    worker.stop()
    rss = np.array([m for _, m in samples])
    third = max(len(rss) // 3, 1)
    s = worker.stats
    return {"bag_frames": frames, "image_size": [320, 240], "passes": passes, "speed": speed,
            "input_rate_hz": 10.0 * speed, "submitted": s.submitted, "processed": s.processed,
            "dropped": s.dropped, "rss_mb_first_third_median": round(float(np.median(rss[:third])), 1),
            "rss_mb_last_third_median": round(float(np.median(rss[-third:])), 1),
            "rss_mb_peak": round(float(rss.max()), 1), "samples": len(rss)}


def run_runtime_benchmark(quick: bool = False) -> dict:
    """All runtime figures; see the module docstring."""
    import torch

    from reloc_ros.bench.data import machine_info

    runs = 20 if quick else 100
    results: dict = {"machine": machine_info(), "image": f"{SIZE[0]}x{SIZE[1]} rgb8",
                     "model": f"ResNet-18 APR (PoseNet FC head), input {INPUT[0]}x{INPUT[1]}, MC dropout 32 samples"}
    with tempfile.TemporaryDirectory() as tmp:
        model = _export_model(Path(tmp) / "r18.pt")
        rows = [_latency(model, "cpu", "torchscript", runs), _latency(model.with_suffix(".onnx"), "cpu", "onnx", runs)]
        if torch.cuda.is_available():
            rows.append(_latency(model, "cuda", "torchscript", runs))
            rows[-1]["gpu"] = torch.cuda.get_device_name(0)
        results["latency"] = rows
        results["memory_10x_replay"] = _memory_under_replay(model, quick, Path(tmp))
    return results


def markdown_table(results: dict) -> str:
    """Render the runtime figures as the README's markdown table."""
    lines = [f"{results['image']} message to published pose, {results['model']}; milliseconds, medians of "
             f"{results['latency'][0]['runs']} frames in one process.", "",
             "| backend / device | decode | preprocess | inference | postprocess | all but inference | total "
             "| then other outputs | sustained (frames/s) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results["latency"]:
        m = r["median_ms"]
        dev = r["device"] + (f" ({r['gpu']})" if r.get("gpu") else "")
        lines.append(f"| {r['backend']} / {dev} | {m['decode']:.2f} | {m['preprocess']:.2f} | {m['inference']:.1f} "
                     f"| {m['postprocess']:.2f} | **{m['non_inference']:.2f}** | {m['total']:.1f} | "
                     f"{m['other_outputs']:.2f} | {r['sustained']['frames_per_s']} |")
    mem = results["memory_10x_replay"]
    lines += ["", f"Memory while a {mem['bag_frames']}-frame {mem['image_size'][0]}x{mem['image_size'][1]} bag is fed "
              f"{mem['passes']} times at {mem['speed']:g}x its recorded rate ({mem['input_rate_hz']:g} frames/s): "
              f"resident {mem['rss_mb_first_third_median']} MB (median, first third) -> "
              f"{mem['rss_mb_last_third_median']} MB (last third), peak {mem['rss_mb_peak']} MB; "
              f"{mem['processed']} frames processed, {mem['dropped']} stale frames dropped."]
    return "\n".join(lines) + "\n"
