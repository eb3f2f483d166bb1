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
  demo     the main job on the built-in synthetic default
  bench    measure data throughput (bag decode + TF, synthetic rendering)
"""

from __future__ import annotations

import argparse
import json
import logging
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


def add_bag_source_args(p: argparse.ArgumentParser) -> None:
    """Add the options every subcommand that reads a bag accepts, with the same defaults."""
    from reloc_ros.data.bag import BagSource

    d = BagSource()
    g = p.add_argument_group("bag source (images and ground truth)")
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


def bag_source_from_args(args: argparse.Namespace):
    from reloc_ros.data.bag import BagSource

    return BagSource(image_topic=args.image_topic, map_frame=args.map_frame, camera_frame=args.camera_frame,
                     pose_topic=args.pose_topic, tolerance_s=args.tolerance, max_gap_s=args.max_gap,
                     depth_topic=args.depth_topic)


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
    """Run the main job on the built-in default, as far as it exists today.

    Renders a mapping bag and a query bag of the synthetic scene, reads both
    back through the bag reader users' bags go through, and writes their
    ground-truth trajectories (TUM) and a top-down plot.
    """
    import numpy as np

    from reloc_ros.data.bag import BagSource, read_bag_dataset
    from reloc_ros.data.synth import write_synthetic_bag
    from reloc_ros.data.types import write_tum
    from reloc_ros.plots import plot_topdown

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {"mapping": ("train", args.frames), "query": ("test", max(1, args.frames // 2))}
    datasets = {}
    for name, (route, frames) in runs.items():
        bag = out / f"{name}_bag"
        if bag.exists():
            log.info("reusing %s (delete it to render again)", bag)
        else:
            write_synthetic_bag(bag, route=route, frames=frames, seed=args.seed, size=args.size, depth=True,
                                progress=not args.quiet)
        ds = read_bag_dataset(bag, BagSource(depth_topic="/camera/depth/image_raw"), progress=not args.quiet)
        write_tum(out / f"{name}.tum", ds.stamps_ns, ds.poses_n44)
        datasets[name] = ds
        print(f"{name:8s} {bag}: {ds.summary()}")
    plot_topdown(out / "routes.png", {n: d.poses_n44 for n, d in datasets.items()},
                 title="synthetic scene: mapping and query routes (ground truth from TF)")
    q, m = datasets["query"].poses_n44[:, :3, 3], datasets["mapping"].poses_n44[:, :3, 3]
    nearest = np.min(np.linalg.norm(q[:, None, :2] - m[None, :, :2], axis=-1), axis=1)
    print(f"query frames' distance to the nearest mapping position: median {np.median(nearest):.2f} m, "
          f"max {nearest.max():.2f} m")
    print(f"wrote {out / 'mapping.tum'}, {out / 'query.tum'} and {out / 'routes.png'}")
    print("training and relocalization are not built yet (issues 3 and 5); this demo stops at the data.")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from reloc_ros.bench_data import run_data_benchmark

    results = run_data_benchmark(frames=args.frames, quick=args.quick)
    text = json.dumps(results, indent=2)
    if args.json:
        from reloc_ros.io_utils import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
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

    p = sub.add_parser("demo", help="run the main job on the built-in synthetic default")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    p.add_argument("--frames", type=_positive_int, default=300, help="mapping frames; query gets half (default: 300)")
    p.add_argument("--size", type=parse_size, default=(160, 120), metavar="WxH", help="image size (default: 160x120)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default: 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="measure data throughput: bag decode + TF, synthetic rendering")
    p.add_argument("--frames", type=_positive_int, default=300, help="frames per measurement (default: 300)")
    p.add_argument("--quick", action="store_true", help="fewer frames, for a smoke run")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
