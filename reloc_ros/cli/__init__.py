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
  map      build the feature map that verifies a model's poses (no retraining)
  align    PMNet_ud: fine-tune a PMNet model on bags of images without poses
  eval     accuracy of a model on a bag with ground truth
  replay   run a bag through the relocalizer as the node would
  demo     the main job on the built-in synthetic default
  bench    measure data throughput (bag decode + TF, synthetic rendering)

The subcommands live by group in :mod:`~reloc_ros.cli.data_cmds`,
:mod:`~reloc_ros.cli.train_cmds`, :mod:`~reloc_ros.cli.eval_cmds` and
:mod:`~reloc_ros.cli.demo_cmd`; what they share in :mod:`~reloc_ros.cli.common`.
The options of ``train`` are declared in :mod:`reloc_ros.training.options`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from reloc_ros import __version__
from reloc_ros.cli.common import (ArgumentParser, add_bag_source_args, bag_source_from_args, map_config_from_args,
                                  parse_size, positive_int)
from reloc_ros.cli.data_cmds import add_bench_parser, add_extract_parser, add_synth_parser
from reloc_ros.cli.demo_cmd import add_demo_parser
from reloc_ros.cli.eval_cmds import add_eval_parser, add_replay_parser
from reloc_ros.cli.train_cmds import (add_align_parser, add_map_parser, add_train_parser, load_config_file,
                                      train_config_from_args)
from reloc_ros.errors import RelocError

__all__ = ["main", "build_parser", "parse_size", "positive_int", "add_bag_source_args", "bag_source_from_args",
           "map_config_from_args", "train_config_from_args", "load_config_file"]

log = logging.getLogger("reloc_ros")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``reloc-ros`` and every subcommand."""
    parser = ArgumentParser(prog="reloc-ros", description="Learned visual relocalization for ROS 2.")
    parser.add_argument("--version", action="version", version=f"reloc_ros {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_synth_parser, add_extract_parser, add_train_parser, add_map_parser, add_align_parser,
                add_eval_parser, add_replay_parser, add_demo_parser, add_bench_parser):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``reloc-ros`` with ``argv`` (default: the command line); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        train_parser = args.train_parser
        if args.config is not None:
            try:
                train_parser.set_defaults(**load_config_file(args.config))
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
