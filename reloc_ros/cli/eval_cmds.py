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

"""The subcommands of ``reloc-ros`` that run a model on bags: eval and replay."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from reloc_ros.cli.common import add_bag_source_args, bag_source_from_args


def probability(text: str) -> float:
    """Parse a probability option: a finite number in [0, 1] (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text!r}")
    return value


def check_outputs(args: argparse.Namespace) -> None:
    """Check --json, --tum and --plots can be written, before any work (ValueError naming the path)."""
    from reloc_ros.io_utils import check_output_dir, check_output_file

    for opt, path in (("--json", args.json), ("--tum", args.tum)):
        if path is not None:
            check_output_file(path, f"{opt} output", make_parents=True)
    if args.plots is not None:
        check_output_dir(args.plots, "--plots folder")


def cmd_eval(args: argparse.Namespace) -> int:
    """Accuracy and covariance calibration of a model on bags with ground truth."""
    from reloc_ros.evaluation import evaluate_model_on_bags, format_report
    from reloc_ros.modelfile import read_model_metadata

    check_outputs(args)
    meta = read_model_metadata(args.model)
    source = bag_source_from_args(args, trained_with=meta.get("bag_source"))
    pred, ds, report, cov = evaluate_model_on_bags(args.model, args.bags, source, progress=not args.quiet,
                                                   device=args.device, backend=args.backend, verify=args.verify)
    print(format_report(report, title=f"{args.model} on {ds.source}"))
    write_outputs(args, report if len(pred) else None, pred, ds.poses_n44, cov, (ds.stamps_ns, pred))
    if args.json and not len(pred):
        from reloc_ros.evaluation import write_report_json

        write_report_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def write_outputs(args: argparse.Namespace, report: dict | None, pred, gt, cov, tum: tuple) -> None:
    """Write eval/replay's --json and --plots (when there is a report) and --tum (stamps, poses) where asked."""
    from reloc_ros.data.types import write_tum
    from reloc_ros.evaluation import save_eval_plots, write_report_json

    if args.json and report is not None:
        write_report_json(args.json, report)
        print(f"wrote {args.json}")
    if args.plots and report is not None:
        for path in save_eval_plots(args.plots, pred, gt, report, title=Path(args.model).name, covariances=cov):
            print(f"wrote {path}")
    if args.tum:
        Path(args.tum).parent.mkdir(parents=True, exist_ok=True)  # as --json and --plots do
        write_tum(args.tum, *tum)
        print(f"wrote {args.tum}")


def cmd_replay(args: argparse.Namespace) -> int:
    """Run a bag through the relocalizer as the node would; write its outputs to a new bag."""
    from reloc_ros.io_utils import check_new_dir
    from reloc_ros.runtime.recovery import RecoveryConfig
    from reloc_ros.runtime.replay import replay
    from reloc_ros.evaluation import format_report
    from reloc_ros.modelfile import read_model_metadata

    check_new_dir(args.out_bag, "output bag")  # before reading the model or the bag
    check_outputs(args)
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
    write_outputs(args, result.report, result.pred_n44, result.gt_n44, result.cov_n66,
                  (result.stamps_ns, result.T_map_cam))
    return 0


def add_report_args(p: argparse.ArgumentParser) -> None:
    """Add the report and inference options eval and replay share."""
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


def add_eval_parser(sub) -> None:
    """Add the ``eval`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser("eval", help="accuracy and covariance calibration of a model on a bag with ground truth")
    p.add_argument("model", type=Path, help="exported model file (.pt, or .onnx)")
    p.add_argument("bags", nargs="+", type=Path, help="bag(s) with ground truth")
    add_bag_source_args(p, from_model=True)
    add_report_args(p)
    p.set_defaults(func=cmd_eval)


def add_replay_parser(sub) -> None:
    """Add the ``replay`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser("replay", help="run a bag through the relocalizer as the node would; write its outputs "
                                      "to a new bag (and report accuracy where the bag has ground truth)")
    p.add_argument("model", type=Path, help="exported model file (.pt, or .onnx)")
    p.add_argument("in_bag", type=Path, help="recorded bag (rosbag2 directory / .mcap / .db3, or ROS 1 .bag)")
    p.add_argument("out_bag", type=Path, help="rosbag2 (mcap) to write; must not exist")
    add_bag_source_args(p, from_model=True)
    p.add_argument("--base-frame", default="base_link", help="robot body frame (default: base_link)")
    p.add_argument("--odom-frame", default="odom", help="odom frame; '' if the robot has none (default: odom)")
    p.add_argument("--no-tf", action="store_true", help="do not write the map -> odom correction")
    p.add_argument("--min-confidence", type=probability, default=0.5,
                   help="below this confidence (a probability in [0, 1]) no TF correction is written (default: 0.5)")
    p.add_argument("--no-recovery", action="store_true", help="no kidnapped-robot detection (/initialpose)")
    p.add_argument("--allow-unverified", action="store_true",
                   help="also write TF and /initialpose for learned-only (unverified) poses; by default only "
                        "verified poses do, as in the node")
    add_report_args(p)
    p.set_defaults(func=cmd_replay)
