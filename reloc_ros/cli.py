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

"""``reloc-ros``: the command line of reloc_ros (works without ROS).

Subcommands:
  synth    write a synthetic indoor-scene rosbag2 with exact ground truth
  extract  write the image-aligned ground-truth trajectory of a bag (TUM format)
  train    train a pose regressor on bags; export one TorchScript model file
  eval     accuracy of a model on a bag with ground truth
  demo     the main job on the built-in synthetic default
  bench    measure data throughput (bag decode + TF, synthetic rendering)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

from reloc_ros import __version__
from reloc_ros.errors import RelocError

log = logging.getLogger("reloc_ros")


def parse_size(text: str) -> tuple[int, int]:
    """'160x120' -> (160, 120); argparse type with a clear error."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size '{text}' is not WIDTHxHEIGHT (e.g. 160x120)") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size '{text}' must have positive width and height")
    return w, h


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be > 0")
    return v


def add_bag_source_args(p: argparse.ArgumentParser, from_model: bool = False) -> None:
    """Add the options every subcommand that reads a bag accepts, with the same defaults.

    With ``from_model``, options left out take the values the model was
    trained with (argparse default None, merged by :func:`bag_source_from_args`).
    """
    from reloc_ros.data.bag import BagSource

    d = BagSource()
    g = p.add_argument_group("bag source (images and ground truth)" +
                             ("; options left out: as the model was trained" if from_model else ""))
    g.add_argument("--image-topic", default=d.image_topic,
                   help="colour image topic (Image or CompressedImage); default: the bag's only colour image topic")
    g.add_argument("--map-frame", default=d.map_frame, help=f"frame poses are expressed in (default: {d.map_frame})")
    g.add_argument("--camera-frame", default=d.camera_frame,
                   help="camera frame looked up in TF (default: the images' header frame_id)")
    g.add_argument("--pose-topic", default=d.pose_topic,
                   help="take ground truth from this PoseStamped / PoseWithCovarianceStamped / Odometry / "
                        "TransformStamped topic instead of TF")
    g.add_argument("--depth-topic", default=d.depth_topic, help="aligned depth image topic (optional)")
    g.add_argument("--tolerance", type=float, default=d.tolerance_s, metavar="S",
                   help=f"how far ground truth may be held beyond its samples, in s (default: {d.tolerance_s})")
    g.add_argument("--max-gap", type=float, default=d.max_gap_s, metavar="S",
                   help=f"widest gap between ground-truth samples that is interpolated, in s (default: {d.max_gap_s})")
    if from_model:
        p.set_defaults(**{dest: None for dest in _SOURCE_OPTIONS})


_SOURCE_OPTIONS = {"image_topic": "image_topic", "map_frame": "map_frame", "camera_frame": "camera_frame",
                   "pose_topic": "pose_topic", "tolerance": "tolerance_s", "max_gap": "max_gap_s",
                   "depth_topic": "depth_topic"}


def bag_source_from_args(args: argparse.Namespace, trained_with: dict | None = None):
    """Build the BagSource from the options; those left out (None) come from ``trained_with``."""
    from dataclasses import asdict

    from reloc_ros.data.bag import BagSource, bag_source_from_metadata

    values = asdict(BagSource())
    values.update(asdict(bag_source_from_metadata({"bag_source": trained_with or {}})))  # never the depth topic
    for opt, field_name in _SOURCE_OPTIONS.items():
        v = getattr(args, opt)
        if v is not None:  # None: left out (every BagSource default that is not None is an argparse default too)
            values[field_name] = v
    return BagSource(**values)


# ---------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------

def cmd_synth(args: argparse.Namespace) -> int:
    from reloc_ros.data.synth import write_synthetic_bag

    summary = write_synthetic_bag(args.out_bag, route=args.route, frames=args.frames, seed=args.seed,
                                  size=args.size, storage=args.storage, depth=args.depth, scene=args.scene,
                                  progress=not args.quiet)
    print(f"wrote {args.out_bag}: {summary}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from reloc_ros.data.bag import read_bag_dataset
    from reloc_ros.data.types import write_tum

    ds = read_bag_dataset(args.bags, bag_source_from_args(args), load_images=False, progress=not args.quiet)
    write_tum(args.tum, ds.stamps_ns, ds.poses_n44)
    print(f"wrote {len(ds)} poses of '{ds.camera_frame}' in '{ds.map_frame}' to {args.tum} (TUM format)")
    print(ds.summary())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the main job on the built-in default: synthetic bags -> train -> replay -> accuracy report.

    Renders a mapping bag (the robot drives its loop twice) and a query bag of
    a different route, trains a model on the first through the same trainer
    ``reloc-ros train`` uses, builds the feature map that verifies its poses
    (triangulated from the mapping run's poses, as ``reloc-ros map``),
    replays the second through the relocalizer as ``reloc-ros replay`` (and
    the node) would, and reports its accuracy, verification status and
    covariance calibration, beside the mean-pose baseline: the same figures
    ``reloc-ros eval`` gives for the same files. Bags and the model already
    in ``--out`` from an earlier run are reused.
    """
    from reloc_ros.data.bag import BagSource, read_bag_dataset
    from reloc_ros.data.synth import DEPTH_TOPIC, make_run, write_synthetic_bag
    from reloc_ros.data.types import write_tum
    from reloc_ros.plots import plot_topdown
    from reloc_ros.runtime.replay import replay
    from reloc_ros.training.evaluate import format_report, mean_pose_baseline, save_eval_plots, write_report_json
    from reloc_ros.training.trainer import TrainConfig, checkpoint_path_for, train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rate_hz = 10.0
    lap_m = make_run(route="train", frames=args.frames, size=args.size, seed=args.seed,
                     scene=args.scene).curve.length_m
    runs = {"mapping": ("train", args.frames, 2 * lap_m * rate_hz / args.frames),
            "query": ("test", max(1, args.frames // 2), None)}
    datasets = {}
    for name, (route, frames, speed) in runs.items():
        bag = out / f"{name}_bag"
        if bag.exists():
            log.info("reusing %s (delete it to render again)", bag)
        else:
            write_synthetic_bag(bag, route=route, frames=frames, seed=args.seed, size=args.size, depth=True,
                                progress=not args.quiet, speed_mps=speed, rate_hz=rate_hz, scene=args.scene)
        ds = read_bag_dataset(bag, BagSource(), load_images=False)
        write_tum(out / f"{name}_gt.tum", ds.stamps_ns, ds.poses_n44)
        datasets[name] = ds
        print(f"{name:8s} {bag}: {ds.summary()}")
    plot_topdown(out / "routes.png", {n: d.poses_n44 for n, d in datasets.items()},
                 title="synthetic scene: mapping and query routes (ground truth from TF)")

    model = out / "model.pt"
    if model.exists():
        log.info("reusing %s (delete it to train again)", model)
    else:
        camnet = args.model == "camnet"
        cfg = TrainConfig(model=args.model, input_size=args.input_size, epochs=args.epochs, batch_size=16,
                          lr=None if camnet else 1e-3, backbone="resnet18" if camnet else None,
                          nerf_steps=1000, nerf_pose_steps=300, nerf_rays=2048)  # NeRF-P (pmnet): sized for a CPU
        # CamNet labels its training pairs by frustum overlap, and PMNet's NeRF-P fits faster, from the depth.
        source = BagSource(depth_topic=DEPTH_TOPIC if args.model in ("camnet", "pmnet") else None)
        train([out / "mapping_bag"], source, cfg, model, resume=checkpoint_path_for(model).exists(),
              cache_dir=out / "cache", progress=not args.quiet)
    from reloc_ros.training.export import read_metadata

    if args.verify and "feature_map" not in read_metadata(model):
        # The feature map that verifies every pose, triangulated from the mapping run's poses (no depth used).
        _build_map(model, [out / "mapping_bag"], BagSource(), map_config_from_args(args), not args.quiet)
    # The query bag goes through the relocalizer exactly as the node would run it (reloc-ros replay).
    relocalized = out / "relocalized_bag"
    if relocalized.exists():
        shutil.rmtree(relocalized)  # the demo's own output of an earlier run
    result = replay(model, [out / "query_bag"], relocalized, progress=not args.quiet,
                    verify="auto" if args.verify else "off")
    report = result.report
    if report is None:
        raise RelocError(f"the query bag {out / 'query_bag'} has no ground truth for the replayed frames")
    baseline = mean_pose_baseline(datasets["mapping"].poses_n44, result.gt_n44)
    report["mean_pose_baseline"] = {k: baseline[k] for k in ("median_translation_m", "median_rotation_deg")}
    write_report_json(out / "report.json", report)
    save_eval_plots(out / "plots", result.pred_n44, result.gt_n44, report, title=f"{args.model} on the query route",
                    covariances=result.cov_n66)
    write_tum(out / "query_pred.tum", result.stamps_ns, result.T_map_cam)
    print(f"replayed the query bag through the relocalizer into {relocalized}: {result.summary()}")
    print(format_report(report, title=f"{args.model} on the query route ({datasets['query'].source})"))
    print(f"mean-pose baseline (no learning): median {baseline['median_translation_m']:.3f} m, "
          f"{baseline['median_rotation_deg']:.2f} deg")
    print(f"wrote {out / 'report.json'}, {out / 'plots'}/, {out / 'routes.png'}, {model}, {relocalized} and TUM "
          f"trajectories")
    return 0


def train_config_from_args(args: argparse.Namespace):
    """Build the TrainConfig of ``reloc-ros train``'s options (also the trainer node's, through them)."""
    from reloc_ros.training.trainer import TrainConfig

    return TrainConfig(model=args.model, backbone=args.backbone, head=args.head, preprocessing=args.preprocessing,
                       input_size=args.input_size, loss=args.loss, beta=args.beta, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, dropout=args.dropout, val_fraction=args.val_fraction,
                       augment=not args.no_augment, seed=args.seed, backbone_weights=args.backbone_weights,
                       similarity=args.similarity, keyframe_distance=args.keyframe_distance,
                       retrieval_k=args.retrieval_k, optimizer=args.optimizer, pmnet_losses=args.pmnet_losses,
                       rvs_translation=args.rvs_translation, rvs_rotation=args.rvs_rotation,
                       nerf_steps=args.nerf_steps, nerf_pose_steps=args.nerf_pose_steps,
                       nerf_resolution=args.nerf_resolution, nerf_rays=args.nerf_rays)


def cmd_train(args: argparse.Namespace) -> int:
    from reloc_ros.training.trainer import train

    cfg = train_config_from_args(args)
    source = bag_source_from_args(args)
    map_config = map_config_from_args(args) if args.map != "none" else None
    if map_config is not None:  # before hours of training: a map that cannot be built is said now
        from reloc_ros.mapping.mapper import check_camera_info

        check_camera_info(args.bags, source.image_topic)
    result = train(args.bags, source, cfg, args.out, resume=args.resume,
                   cache_dir=args.cache_dir, device=args.device, progress=not args.quiet, onnx=args.onnx)
    if result.val_metrics:
        from reloc_ros.training.evaluate import format_report

        print(format_report(result.val_metrics, title=f"validation (best epoch) of {args.out}"))
        b = result.baseline
        print(f"mean-pose baseline on the same frames: {b['median_translation_m']:.3f} m, "
              f"{b['median_rotation_deg']:.2f} deg")
    if map_config is not None and int(os.environ.get("RANK", "0")) == 0:  # under torchrun: rank 0 only
        try:
            _build_map(args.out, args.bags, source, map_config, not args.quiet)
        except RelocError as e:
            raise RelocError(f"training is done and {args.out} is written, but its feature map could not be built: "
                             f"{e}. The model works without it (poses unverified); build it later with 'reloc-ros "
                             f"map {args.out} BAG...', or train with --map none") from e
    return 0


def map_config_from_args(args: argparse.Namespace):
    """Return the MapConfig of ``--feature`` / ``--max-features``."""
    from reloc_ros.mapping.build import MapConfig

    return MapConfig(feature=args.feature, max_features=args.max_features)


def _build_map(model: Path, bags: Sequence[Path], source, config, progress: bool) -> dict:
    """Build, calibrate and store the model's feature map; print what was stored."""
    from reloc_ros.mapping.mapper import build_model_map, describe_map

    entry = build_model_map(model, bags, source, config, progress=progress)
    print(describe_map(entry, model))
    return entry


def cmd_map(args: argparse.Namespace) -> int:
    """Build (or rebuild) the feature map of an existing model from mapping bags, without retraining."""
    from reloc_ros.training.export import read_model_metadata

    meta = read_model_metadata(args.model)
    source = bag_source_from_args(args, trained_with=meta.get("bag_source"))
    _build_map(args.model, args.bags, source, map_config_from_args(args), not args.quiet)
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    """PMNet_ud: align a PMNet model on the images of bags whose poses are never read."""
    from reloc_ros.io_utils import atomic_write_text
    from reloc_ros.training.pmnet_trainer import align_unlabelled

    print(f"aligning {args.model} on the images of {', '.join(map(str, args.unlabelled))}; no ground truth is read "
          "from them (no TF, no pose topic)")
    result = align_unlabelled(args.model, args.unlabelled, out=args.out, image_topic=args.image_topic,
                              losses=args.losses, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                              seed=args.seed, device=args.device, progress=not args.quiet)
    r = result.report
    print(f"wrote {result.model_path} (the original {args.model} is unchanged)")
    print(f"predictions on the {r['images']} images moved by median {r['moved_median_m']:.3f} m, "
          f"{r['moved_median_deg']:.2f} deg (max {r['moved_max_m']:.3f} m, {r['moved_max_deg']:.2f} deg)")
    print(f"NeRF-P renders at the predicted poses match the images at {r['render_match_db_before']:.2f} dB before, "
          f"{r['render_match_db_after']:.2f} dB after (held-out mapping frames: {r['mapping_holdout_psnr_db']:.2f} dB)")
    if args.json:
        atomic_write_text(args.json, json.dumps(r, indent=2) + "\n")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from reloc_ros.training.evaluate import evaluate_model_on_bags, format_report
    from reloc_ros.training.export import read_model_metadata

    meta = read_model_metadata(args.model)
    source = bag_source_from_args(args, trained_with=meta.get("bag_source"))
    pred, ds, report, cov = evaluate_model_on_bags(args.model, args.bags, source, progress=not args.quiet,
                                                   device=args.device, backend=args.backend, verify=args.verify)
    print(format_report(report, title=f"{args.model} on {ds.source}"))
    _write_outputs(args, report if len(pred) else None, pred, ds.poses_n44, cov, (ds.stamps_ns, pred))
    if args.json and not len(pred):
        from reloc_ros.training.evaluate import write_report_json

        write_report_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def _write_outputs(args: argparse.Namespace, report: dict | None, pred, gt, cov, tum: tuple) -> None:
    """Write eval/replay's --json and --plots (when there is a report) and --tum (stamps, poses) where asked."""
    from reloc_ros.data.types import write_tum
    from reloc_ros.training.evaluate import save_eval_plots, write_report_json

    if args.json and report is not None:
        write_report_json(args.json, report)
        print(f"wrote {args.json}")
    if args.plots and report is not None:
        for path in save_eval_plots(args.plots, pred, gt, report, title=Path(args.model).name, covariances=cov):
            print(f"wrote {path}")
    if args.tum:
        write_tum(args.tum, *tum)
        print(f"wrote {args.tum}")


def cmd_replay(args: argparse.Namespace) -> int:
    from reloc_ros.runtime.recovery import RecoveryConfig
    from reloc_ros.runtime.replay import replay
    from reloc_ros.training.evaluate import format_report
    from reloc_ros.training.export import read_model_metadata

    meta = read_model_metadata(args.model)
    source = bag_source_from_args(args, trained_with=meta.get("bag_source"))
    result = replay(args.model, [args.in_bag], args.out_bag, source, base_frame=args.base_frame,
                    odom_frame=args.odom_frame, publish_tf=not args.no_tf, min_confidence=args.min_confidence,
                    recovery=RecoveryConfig(enabled=not args.no_recovery), device=args.device,
                    backend=args.backend, progress=not args.quiet, verify=args.verify,
                    allow_unverified=args.allow_unverified)
    print(f"wrote {result.out_bag}: {result.summary()}")
    for stamp, reason in result.reinitialisations:
        print(f"  /initialpose at {stamp * 1e-9:.3f} s: {reason}")
    if result.report is None:
        print("no ground truth for these frames in the input bag: no accuracy report")
    else:
        print(format_report(result.report, title=f"{args.model} on {args.in_bag} (replay)"))
    # --tum holds every published camera pose, ground truth or not.
    _write_outputs(args, result.report, result.pred_n44, result.gt_n44, result.cov_n66,
                   (result.stamps_ns, result.T_map_cam))
    return 0


def load_config_file(path: Path, parser: argparse.ArgumentParser) -> dict:
    """Read a YAML mapping of train options (names as on the command line, - or _)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read config file '{path}': {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file '{path}' must hold a mapping of option: value")
    # Every option name the train parser knows (it accepts an empty command line).
    valid = set(vars(parser.parse_args([]))) - {"config", "bags", "func", "train_parser"}
    out = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in valid:
            raise ValueError(f"config file '{path}': unknown option '{key}'; valid: {', '.join(sorted(valid))}")
        if dest == "input_size" and isinstance(value, str):
            value = parse_size(value)
        out[dest] = value
    return out


def cmd_bench(args: argparse.Namespace) -> int:
    from reloc_ros.bench import run_suite
    from reloc_ros.io_utils import atomic_write_text

    results, markdown = run_suite(args.suite, quick=args.quick, progress=not args.quiet, frames=args.frames)
    text = json.dumps(results, indent=2)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    if args.markdown and markdown:
        atomic_write_text(args.markdown, markdown)
    print(markdown or text)
    return 0


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from reloc_ros.training.trainer import LOSSES, MODELS, OPTIMIZERS, SIMILARITIES, TrainConfig

    d = TrainConfig()
    p.add_argument("bags", nargs="*", type=Path, help="bag(s) of the mapping run")
    add_bag_source_args(p)
    p.add_argument("--config", type=Path, help="YAML file of these options (command line wins)")
    p.add_argument("--model", choices=tuple(MODELS), default=d.model, help=f"default: {d.model}")
    p.add_argument("--out", type=Path, help="model file to write (TorchScript); its checkpoint is OUT.ckpt")
    p.add_argument("--epochs", type=_positive_int, default=d.epochs, help=f"default: {d.epochs}")
    p.add_argument("--input-size", type=parse_size, default=d.input_size, metavar="WxH",
                   help=f"network input (default: {d.input_size[0]}x{d.input_size[1]})")
    p.add_argument("--backbone", choices=("resnet18", "resnet34", "resnet50"), default=d.backbone,
                   help="default: resnet18 for the APRs, resnet34 for camnet")
    p.add_argument("--backbone-weights", help="torchvision ImageNet state_dict (.pth) to start from")
    p.add_argument("--head", choices=("fc", "lstm"), help="default: fc for posenet, lstm for lrf-posenet")
    p.add_argument("--preprocessing", choices=("crop", "resize"),
                   help="default: crop for posenet, resize (whole image) for lrf-posenet")
    p.add_argument("--loss", choices=LOSSES, default=d.loss, help=f"default: {d.loss}")
    p.add_argument("--beta", type=float, help="rotation weight of the beta/geometric losses (default: the loss's)")
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help=f"default: {d.batch_size}")
    p.add_argument("--lr", type=float, default=d.lr,
                   help="learning rate (default: Adam 5e-4 for the APRs; SGD with the poly schedule from 0.01 "
                        "for camnet, as its paper)")
    p.add_argument("--dropout", type=float, default=d.dropout, help=f"default: {d.dropout}")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help=f"share of contiguous time blocks held out (default: {d.val_fraction})")
    p.add_argument("--no-augment", action="store_true", help="no colour jitter, blur and noise")
    p.add_argument("--seed", type=int, default=d.seed, help=f"default: {d.seed}")
    p.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is OUT.ckpt")
    p.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "reloc_ros",
                   help="decoded-frame cache (default: ~/.cache/reloc_ros)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    p.add_argument("--onnx", action="store_true", help="also export OUT.onnx, checked against the TorchScript")
    p.add_argument("--map", choices=("auto", "none"), default="auto",
                   help="auto: after training, build the feature map that verifies poses (the bags need "
                        "CameraInfo) and store it in OUT; none: learned poses only (default: auto)")
    _add_map_args(p)
    g = p.add_argument_group("camnet")
    g.add_argument("--similarity", choices=SIMILARITIES, default=d.similarity,
                   help="pair overlap for the retrieval losses: frustum (needs --depth-topic), orb, or auto "
                        "(frustum with depth) (default: auto)")
    g.add_argument("--keyframe-distance", type=float, default=d.keyframe_distance, metavar="ZETA",
                   help="database key frames at least this far apart, in metres + angle/pi; 0 keeps every "
                        f"training frame (default: {d.keyframe_distance})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                   help="sgd (momentum 0.9, poly schedule; the paper's, and the default) or adam")
    g.add_argument("--retrieval-k", type=_positive_int, default=d.retrieval_k,
                   help=f"key frames retrieved per query (default: {d.retrieval_k}, as the paper)")
    g = p.add_argument_group("pmnet")
    g.add_argument("--pmnet-losses", default=d.pmnet_losses, metavar="TERMS",
                   help="terms of eq. 2, comma-separated, from pose, image, posemap, rvs (the Table 5 ablation; "
                        f"default: {d.pmnet_losses})")
    g.add_argument("--rvs-translation", type=float, default=d.rvs_translation, metavar="M",
                   help=f"random view synthesis: offsets up to this per axis, metres (default: {d.rvs_translation}, "
                        "the paper's indoors; 3.0 outdoors)")
    g.add_argument("--rvs-rotation", type=float, default=d.rvs_rotation, metavar="DEG",
                   help=f"random view synthesis: rotations up to this per axis (default: {d.rvs_rotation}; 7.5 "
                        "outdoors)")
    g.add_argument("--nerf-steps", type=_positive_int, default=d.nerf_steps,
                   help=f"NeRF-P rendering-branch steps (default: {d.nerf_steps})")
    g.add_argument("--nerf-pose-steps", type=_positive_int, default=d.nerf_pose_steps,
                   help=f"NeRF-P pose-branch steps, rendering frozen (default: {d.nerf_pose_steps})")
    g.add_argument("--nerf-resolution", type=_positive_int, default=d.nerf_resolution, metavar="CELLS",
                   help=f"finest NeRF-P grid cells along the scene's longest side (default: {d.nerf_resolution}); "
                        "lower it when memory runs out")
    g.add_argument("--nerf-rays", type=_positive_int, default=d.nerf_rays,
                   help=f"rays per NeRF-P step (default: {d.nerf_rays}); lower it when memory runs out")


def _add_map_args(p: argparse.ArgumentParser) -> None:
    from reloc_ros.mapping.build import MapConfig
    from reloc_ros.mapping.features import FEATURE_TYPES

    d = MapConfig()
    g = p.add_argument_group("feature map (geometric verification)")
    g.add_argument("--feature", choices=FEATURE_TYPES, default=d.feature,
                   help=f"local features of the map: sift (accurate) or orb (fast); default: {d.feature}")
    g.add_argument("--max-features", type=_positive_int, default=d.max_features,
                   help=f"features per image (default: {d.max_features})")


def _add_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", type=Path, help="write the report as JSON")
    p.add_argument("--plots", type=Path, metavar="DIR",
                   help="write error CDFs, a trajectory plot and the covariance calibration (PNG) here")
    p.add_argument("--tum", type=Path, help="write the predicted camera trajectory (TUM format, for evo)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--backend", choices=("auto", "torchscript", "onnx"), default="auto",
                   help="auto: ONNX Runtime for .onnx files, TorchScript otherwise")
    p.add_argument("--verify", choices=("auto", "on", "off"), default="auto",
                   help="geometric verification against the model file's feature map: auto (when it has one), on "
                        "(an error without one), off (the learned poses alone, for comparison); default: auto")


def build_parser() -> argparse.ArgumentParser:
    from reloc_ros.bench import SUITES

    parser = argparse.ArgumentParser(prog="reloc-ros", description="Learned visual relocalization for ROS 2.")
    parser.add_argument("--version", action="version", version=f"reloc_ros {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a synthetic indoor-scene rosbag2 with exact ground truth")
    p.add_argument("out_bag", type=Path, help="output bag directory (must not exist)")
    p.add_argument("--route", choices=("train", "test"), default="train",
                   help="train: the mapping run; test: a different query run over the same space")
    p.add_argument("--frames", type=_positive_int, default=200, help="number of camera frames (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="scene and route seed (default: 0)")
    p.add_argument("--size", type=parse_size, default=(160, 120), metavar="WxH",
                   help="image size (default: 160x120)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (default: mcap)")
    p.add_argument("--depth", action="store_true", help="also write aligned depth (32FC1, metres)")
    p.add_argument("--scene", default="room", help="scene preset (default: room)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("extract", help="write the image-aligned ground-truth trajectory of a bag as TUM")
    p.add_argument("bags", nargs="+", type=Path, help="rosbag2 directory / .mcap / .db3, or ROS 1 .bag")
    add_bag_source_args(p)
    p.add_argument("--tum", type=Path, required=True, help="output trajectory (stamp tx ty tz qx qy qz qw)")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("train", help="train a pose regressor on bags and export one TorchScript model file")
    _add_train_args(p)
    p.set_defaults(func=cmd_train, train_parser=p)  # for --config: its defaults are reset from the file

    p = sub.add_parser("map", help="build the 3-D feature map that verifies a model's poses, from mapping bags, "
                                   "and store it in the model file (no retraining)")
    p.add_argument("model", type=Path, help="exported model file (.pt TorchScript)")
    p.add_argument("bags", nargs="+", type=Path, help="mapping bag(s) with ground truth and CameraInfo")
    add_bag_source_args(p, from_model=True)
    _add_map_args(p)
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("align", help="PMNet_ud: fine-tune a PMNet model on bags of images without poses; the "
                                     "aligned model is written beside the original")
    p.add_argument("model", type=Path, help="PMNet model file (.pt with its .pt.pmnet beside it)")
    p.add_argument("--unlabelled", nargs="+", type=Path, required=True, metavar="BAG",
                   help="bag(s) whose images are used; their TF and pose topics are never read")
    p.add_argument("--out", type=Path, help="aligned model to write (default: MODEL_ud.pt beside MODEL)")
    p.add_argument("--image-topic", help="colour image topic (default: the bags' only one)")
    p.add_argument("--losses", default="image,posemap", help="terms of eq. 5 (default: image,posemap)")
    p.add_argument("--epochs", type=_positive_int, default=2, help="default: 2")
    p.add_argument("--lr", type=float, default=1e-5, help="default: 1e-5 (the paper's)")
    p.add_argument("--batch-size", type=_positive_int, default=4,
                   help="default: 4 (the triplet loss takes its negatives from the batch)")
    p.add_argument("--seed", type=int, default=0, help="default: 0")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    p.add_argument("--json", type=Path, help="write the alignment report as JSON")
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("eval", help="accuracy and covariance calibration of a model on a bag with ground truth")
    p.add_argument("model", type=Path, help="exported model file (.pt, or .onnx)")
    p.add_argument("bags", nargs="+", type=Path, help="bag(s) with ground truth")
    add_bag_source_args(p, from_model=True)
    _add_report_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("replay", help="run a bag through the relocalizer as the node would; write its outputs "
                                      "to a new bag (and report accuracy where the bag has ground truth)")
    p.add_argument("model", type=Path, help="exported model file (.pt, or .onnx)")
    p.add_argument("in_bag", type=Path, help="recorded bag (rosbag2 directory / .mcap / .db3, or ROS 1 .bag)")
    p.add_argument("out_bag", type=Path, help="rosbag2 (mcap) to write; must not exist")
    add_bag_source_args(p, from_model=True)
    p.add_argument("--base-frame", default="base_link", help="robot body frame (default: base_link)")
    p.add_argument("--odom-frame", default="odom", help="odom frame; '' if the robot has none (default: odom)")
    p.add_argument("--no-tf", action="store_true", help="do not write the map -> odom correction")
    p.add_argument("--min-confidence", type=float, default=0.5,
                   help="below this confidence no TF correction is written (default: 0.5)")
    p.add_argument("--no-recovery", action="store_true", help="no kidnapped-robot detection (/initialpose)")
    p.add_argument("--allow-unverified", action="store_true",
                   help="also write TF and /initialpose for learned-only (unverified) poses; by default only "
                        "verified poses do, as in the node")
    _add_report_args(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("demo", help="run the main job on the built-in synthetic default")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    p.add_argument("--frames", type=_positive_int, default=300, help="mapping frames; query gets half (default: 300)")
    p.add_argument("--size", type=parse_size, default=(160, 120), metavar="WxH", help="image size (default: 160x120)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default: 0)")
    p.add_argument("--scene", default="textured_room",
                   help="synthetic scene preset: textured_room (default: surfaces with grain, as real rooms have), "
                        "room (smooth patterns: few local features, most frames fail verification), two_rooms")
    p.add_argument("--model", choices=("posenet", "lrf-posenet", "camnet", "pmnet"), default="posenet",
                   help="default: posenet (camnet trains with a ResNet-18 here, for time)")
    p.add_argument("--epochs", type=_positive_int, default=20, help="default: 20 (more is more accurate)")
    p.add_argument("--input-size", type=parse_size, default=(80, 80), metavar="WxH",
                   help="network input (default: 80x80, small for CPUs)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="no feature map: the learned poses alone (for comparison)")
    _add_map_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="benchmarks: data throughput, or the APR comparison and speed")
    p.add_argument("--suite", choices=SUITES, default="data",
                   help="data: bag decode + TF and rendering (default); apr: the seeds' comparison on the "
                        "synthetic scene plus training/inference speed; runtime: message-to-pose latency by "
                        "stage, sustained rate and memory under a 10x replay; full: every method (learned, "
                        "geometric reference, baselines) on two scenes with cost and scaling; camnet: CamNet's "
                        "ablation (seed 001 Table 2) beside the APRs, latency by stage and against database size; "
                        "pmnet: PMNet and PMNet_ud beside PoseNet, the loss ablation (seed 003 Table 5), "
                        "NeRF-P quality and training time by stage; verify: geometric verification's ablation "
                        "(learned, model / retrieval / oracle candidates, wrong proposals) on two scenes, latency "
                        "by stage at 640x480 and mapping cost up to 1000 frames")
    p.add_argument("--markdown", type=Path,
                   help="write the apr / runtime / full / camnet / pmnet tables (markdown) here")
    p.add_argument("--frames", type=_positive_int, default=300, help="frames per measurement (default: 300)")
    p.add_argument("--quick", action="store_true", help="fewer frames, for a smoke run")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        train_parser = args.train_parser
        if args.config is not None:
            try:
                train_parser.set_defaults(**load_config_file(args.config, train_parser))
            except ValueError as exc:
                parser.error(str(exc))
            args = parser.parse_args(argv)
        if not args.bags or args.out is None:
            train_parser.error("needs at least one BAG and --out (on the command line or in --config)")
    level = logging.DEBUG if args.verbose else (logging.WARNING if args.quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, RelocError) as exc:
        # User-facing failures: one clear line, no traceback (use -v for one).
        if args.verbose:
            log.exception("failed")
        print(f"reloc-ros {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"reloc-ros {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
