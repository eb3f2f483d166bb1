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

"""The model-building subcommands of ``reloc-ros``: train, map and align.

The arguments of ``train`` are :data:`reloc_ros.training.options.TRAIN_OPTIONS`
(the declaration the trainer node's parameters come from too), and its
``--config`` file is read by :func:`reloc_ros.training.options.read_config_file`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from reloc_ros.cli.common import (add_bag_source_args, add_map_args, add_options, bag_source_from_args, build_map,
                                  map_config_from_args, positive_float, positive_int)
from reloc_ros.errors import RelocError


def train_config_from_args(args: argparse.Namespace):
    """Build the TrainConfig of ``reloc-ros train``'s options."""
    from reloc_ros.training.options import train_config_from_options

    return train_config_from_options(vars(args))


def load_config_file(path: Path) -> dict:
    """Read a YAML mapping of train options (names as on the command line, - or _) into ``{dest: value}``."""
    from reloc_ros.training.options import read_config_file

    return read_config_file(path)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model on bags and export it (and, unless --map none, build its feature map)."""
    from reloc_ros.training.loop import check_outputs
    from reloc_ros.training.trainer import EXIT_WEAK, train, weak_model_refusal

    check_outputs(args.out, onnx=args.onnx)  # the model, its .ckpt and .onnx: before any work
    cfg = train_config_from_args(args)
    source = bag_source_from_args(args)
    map_config = map_config_from_args(args) if args.map != "none" else None
    if map_config is not None:  # before hours of training: a map that cannot be built is said now
        from reloc_ros.mapping.mapper import check_camera_info

        check_camera_info(args.bags, source.image_topic)
    result = train(args.bags, source, cfg, args.out, resume=args.resume,
                   cache_dir=args.cache_dir, device=args.device, progress=not args.quiet, onnx=args.onnx)
    if result.val_metrics:
        from reloc_ros.evaluation import format_report

        print(format_report(result.val_metrics, title=f"validation (best epoch) of {args.out}"))
        b = result.baseline
        print(f"mean-pose baseline on the same frames: {b['median_translation_m']:.3f} m, "
              f"{b['median_rotation_deg']:.2f} deg")
    if map_config is not None and int(os.environ.get("RANK", "0")) == 0:  # under torchrun: rank 0 only
        try:
            build_map(args.out, args.bags, source, map_config, not args.quiet)
        except RelocError as e:
            raise RelocError(f"training is done and {args.out} is written, but its feature map could not be built: "
                             f"{e}. The model works without it (poses unverified); build it later with 'reloc-ros "
                             f"map {args.out} BAG...', or train with --map none") from e
    refusal = weak_model_refusal(result, args.allow_weak)
    if refusal:
        print(f"reloc-ros train: error: {refusal}", file=sys.stderr)
        return EXIT_WEAK
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    """Build (or rebuild) the feature map of an existing model from mapping bags, without retraining."""
    from reloc_ros.modelfile import read_model_metadata

    meta = read_model_metadata(args.model)  # build_map checks that the model can be rewritten before any work
    source = bag_source_from_args(args, trained_with=meta.get("bag_source"))
    build_map(args.model, args.bags, source, map_config_from_args(args), not args.quiet)
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    """PMNet_ud: align a PMNet model on the images of bags whose poses are never read."""
    from reloc_ros.io_utils import atomic_write_text, check_output_file
    from reloc_ros.training.pmnet_align import align_unlabelled
    from reloc_ros.training.pmnet_trainer import sidecar_path_for

    # Before any work: the aligned model (default MODEL_ud.pt beside MODEL, as align_unlabelled names it),
    # its .pmnet sidecar and the report.
    model = Path(args.model)
    out = Path(args.out) if args.out is not None else model.with_name(model.stem + "_ud" + model.suffix)
    check_output_file(out, "aligned model")
    check_output_file(sidecar_path_for(out), "aligned model's sidecar")
    if args.json:
        check_output_file(args.json, "report JSON")

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


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Add the arguments of ``reloc-ros train``: every option of the declaration, in its order."""
    from reloc_ros.training.options import TRAIN_OPTIONS

    add_options(p, TRAIN_OPTIONS)


def add_train_parser(sub) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to the subparsers ``sub``; return its parser."""
    p = sub.add_parser("train", help="train a pose regressor on bags and export one TorchScript model file")
    add_train_args(p)
    p.set_defaults(func=cmd_train, train_parser=p)  # for --config: its defaults are reset from the file
    return p


def add_map_parser(sub) -> None:
    """Add the ``map`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser("map", help="build the 3-D feature map that verifies a model's poses, from mapping bags, "
                                   "and store it in the model file (no retraining)")
    p.add_argument("model", type=Path, help="exported model file (.pt TorchScript)")
    p.add_argument("bags", nargs="+", type=Path, help="mapping bag(s) with ground truth and CameraInfo")
    add_bag_source_args(p, from_model=True)
    add_map_args(p)
    p.set_defaults(func=cmd_map)


def add_align_parser(sub) -> None:
    """Add the ``align`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser("align", help="PMNet_ud: fine-tune a PMNet model on bags of images without poses; the "
                                     "aligned model is written beside the original")
    p.add_argument("model", type=Path, help="PMNet model file (.pt with its .pt.pmnet beside it)")
    p.add_argument("--unlabelled", nargs="+", type=Path, required=True, metavar="BAG",
                   help="bag(s) whose images are used; their TF and pose topics are never read")
    p.add_argument("--out", type=Path, help="aligned model to write (default: MODEL_ud.pt beside MODEL)")
    p.add_argument("--image-topic", help="colour image topic (default: the bags' only one)")
    p.add_argument("--losses", default="image,posemap", help="terms of eq. 5 (default: image,posemap)")
    p.add_argument("--epochs", type=positive_int, default=2, help="default: 2")
    p.add_argument("--lr", type=positive_float, default=1e-5, help="default: 1e-5 (the paper's)")
    p.add_argument("--batch-size", type=positive_int, default=4,
                   help="default: 4 (the triplet loss takes its negatives from the batch)")
    p.add_argument("--seed", type=int, default=0, help="default: 0")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    p.add_argument("--json", type=Path, help="write the alignment report as JSON")
    p.set_defaults(func=cmd_align)
