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

"""The data subcommands of ``reloc-ros``: synth, extract and bench."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reloc_ros.cli.common import add_bag_source_args, bag_source_from_args, parse_size, positive_int


def cmd_synth(args: argparse.Namespace) -> int:
    """Write a synthetic indoor-scene bag with exact ground truth."""
    from reloc_ros.data.synth import write_synthetic_bag

    summary = write_synthetic_bag(args.out_bag, route=args.route, frames=args.frames, seed=args.seed,
                                  size=args.size, storage=args.storage, depth=args.depth, scene=args.scene,
                                  progress=not args.quiet)
    print(f"wrote {args.out_bag}: {summary}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    """Write the image-aligned ground-truth trajectory of bags (TUM format).

    The output path is checked before the bags are read; frames whose image
    cannot be decoded are left out and counted, as in training.
    """
    from reloc_ros.data.bag import read_bag_dataset
    from reloc_ros.data.types import write_tum
    from reloc_ros.io_utils import check_output_file

    check_output_file(args.tum, "--tum output")
    ds = read_bag_dataset(args.bags, bag_source_from_args(args), load_images=False, progress=not args.quiet)
    write_tum(args.tum, ds.stamps_ns, ds.poses_n44)
    print(f"wrote {len(ds)} poses of '{ds.camera_frame}' in '{ds.map_frame}' to {args.tum} (TUM format)")
    print(ds.summary())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run a benchmark suite; print (and write) its results."""
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


def add_synth_parser(sub) -> None:
    """Add the ``synth`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser("synth", help="write a synthetic indoor-scene rosbag2 with exact ground truth")
    p.add_argument("out_bag", type=Path, help="output bag directory (must not exist)")
    p.add_argument("--route", choices=("train", "test"), default="train",
                   help="train: the mapping run; test: a different query run over the same space")
    p.add_argument("--frames", type=positive_int, default=200, help="number of camera frames (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="scene and route seed (default: 0)")
    p.add_argument("--size", type=parse_size, default=(160, 120), metavar="WxH",
                   help="image size (default: 160x120)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (default: mcap)")
    p.add_argument("--depth", action="store_true", help="also write aligned depth (32FC1, metres)")
    p.add_argument("--scene", default="room", help="scene preset (default: room)")
    p.set_defaults(func=cmd_synth)


def add_extract_parser(sub) -> None:
    """Add the ``extract`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser("extract", help="write the image-aligned ground-truth trajectory of a bag as TUM")
    p.add_argument("bags", nargs="+", type=Path, help="rosbag2 directory / .mcap / .db3, or ROS 1 .bag")
    add_bag_source_args(p)
    p.add_argument("--tum", type=Path, required=True, help="output trajectory (stamp tx ty tz qx qy qz qw)")
    p.set_defaults(func=cmd_extract)


def add_bench_parser(sub) -> None:
    """Add the ``bench`` subcommand to the subparsers ``sub``."""
    from reloc_ros.bench import SUITES

    p = sub.add_parser("bench", help="benchmarks: data throughput, or the APR comparison and speed")
    p.add_argument("--suite", choices=SUITES, default="data",
                   help="data: bag decode + TF and rendering (default); apr: the papers' comparison on the "
                        "synthetic scene plus training/inference speed; runtime: message-to-pose latency by "
                        "stage, sustained rate and memory under a 10x replay; full: every method (learned, "
                        "geometric reference, baselines) on two scenes with cost and scaling; camnet: CamNet's "
                        "ablation (CamNet paper, Table 2) beside the APRs, latency by stage and against database size; "
                        "pmnet: PMNet and PMNet_ud beside PoseNet, the loss ablation (PMNet paper, Table 5), "
                        "NeRF-P quality and training time by stage; verify: geometric verification's ablation "
                        "(learned, model / retrieval / oracle candidates, wrong proposals) on two scenes, latency "
                        "by stage at 640x480 and mapping cost up to 1000 frames")
    p.add_argument("--markdown", type=Path,
                   help="write the apr / runtime / full / camnet / pmnet tables (markdown) here")
    p.add_argument("--frames", type=positive_int, default=300, help="frames per measurement (default: 300)")
    p.add_argument("--quick", action="store_true", help="fewer frames, for a smoke run")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.set_defaults(func=cmd_bench)
