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

"""``reloc-ros demo``: the main job on the built-in synthetic default, end to end."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from reloc_ros.cli.common import add_map_args, build_map, log, map_config_from_args, parse_size, positive_int
from reloc_ros.errors import RelocError
from reloc_ros.training.options import MAX_IMAGE_SIDE


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
    from reloc_ros.evaluation import format_report, mean_pose_baseline, save_eval_plots, write_report_json
    from reloc_ros.io_utils import check_output_dir
    from reloc_ros.training.trainer import TrainConfig, checkpoint_path_for, train

    out = check_output_dir(args.out)  # a file there, or an unwritable folder: said before any work
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
    from reloc_ros.modelfile import read_metadata

    if args.verify and "feature_map" not in read_metadata(model):
        # The feature map that verifies every pose, triangulated from the mapping run's poses (no depth used).
        build_map(model, [out / "mapping_bag"], BagSource(), map_config_from_args(args), not args.quiet)
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


def add_demo_parser(sub) -> None:
    """Add the ``demo`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser("demo", help="run the main job on the built-in synthetic default")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    p.add_argument("--frames", type=positive_int, default=300, help="mapping frames; query gets half (default: 300)")
    p.add_argument("--size", type=parse_size, default=(160, 120), metavar="WxH",
                   help=f"image size (default: 160x120; width and height at most {MAX_IMAGE_SIDE})")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default: 0)")
    p.add_argument("--scene", default="textured_room",
                   help="synthetic scene preset: textured_room (default: surfaces with grain, as real rooms have), "
                        "room (smooth patterns: few local features, most frames fail verification), two_rooms")
    p.add_argument("--model", choices=("posenet", "lrf-posenet", "camnet", "pmnet"), default="posenet",
                   help="default: posenet (camnet trains with a ResNet-18 here, for time)")
    p.add_argument("--epochs", type=positive_int, default=20, help="default: 20 (more is more accurate)")
    p.add_argument("--input-size", type=parse_size, default=(80, 80), metavar="WxH",
                   help=f"network input (default: 80x80, small for CPUs; width and height at most {MAX_IMAGE_SIDE})")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="no feature map: the learned poses alone (for comparison)")
    add_map_args(p)
    p.set_defaults(func=cmd_demo)
