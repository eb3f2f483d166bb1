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

"""What several ``reloc-ros`` subcommands share: argument types, declared options as arguments, bag source, map.

:func:`add_options` turns declared options
(:class:`~reloc_ros.training.options.TrainOption`) into argparse arguments;
the bag-source and feature-map arguments of every subcommand come from the
same declaration as those of ``reloc-ros train``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger("reloc_ros")


def parse_size(text: str) -> tuple[int, int]:
    """'160x120' -> (160, 120); argparse type with a clear error."""
    from reloc_ros.training.options import parse_size as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    """Argparse type: an integer > 0."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be > 0")
    return v


ARG_TYPES = {"int": int, "float": float, "positive_int": positive_int, "size": parse_size, "path": Path}
"""The argparse type of each option type (:data:`reloc_ros.training.options.TYPES`); none for str and flag."""


def add_options(parser: argparse.ArgumentParser, options: Sequence, title: str | None = None) -> None:
    """Add declared options (``TrainOption``) as arguments, in their order and groups.

    ``title``: put them all in one group of this title instead of their own.
    """
    groups: dict[str, Any] = {}
    for o in options:
        group_title = title or o.group
        target = parser
        if group_title is not None:
            if group_title not in groups:
                groups[group_title] = parser.add_argument_group(group_title)
            target = groups[group_title]
        kwargs: dict = {"help": o.help}
        if o.type == "flag":
            kwargs["action"] = "store_true"
        else:
            if o.type in ARG_TYPES:
                kwargs["type"] = ARG_TYPES[o.type]
            for key in ("choices", "metavar", "nargs"):
                if getattr(o, key) is not None:
                    kwargs[key] = getattr(o, key)
            if not o.positional:
                kwargs["default"] = o.default
        target.add_argument(*(o.flags or (o.dest,)), **kwargs)


def add_bag_source_args(p: argparse.ArgumentParser, from_model: bool = False) -> None:
    """Add the options every subcommand that reads a bag accepts, with the same defaults.

    With ``from_model``, options left out take the values the model was
    trained with (argparse default None, merged by :func:`bag_source_from_args`).
    """
    from reloc_ros.training.options import BAG_SOURCE_OPTIONS, SOURCE_GROUP

    add_options(p, BAG_SOURCE_OPTIONS,
                title=SOURCE_GROUP + ("; options left out: as the model was trained" if from_model else ""))
    if from_model:
        p.set_defaults(**{o.dest: None for o in BAG_SOURCE_OPTIONS})


def bag_source_from_args(args: argparse.Namespace, trained_with: dict | None = None):
    """Build the BagSource from the options; those left out (None) come from ``trained_with``."""
    from reloc_ros.training.options import bag_source_from_options

    return bag_source_from_options(vars(args), trained_with)


def add_map_args(p: argparse.ArgumentParser) -> None:
    """Add ``--feature`` / ``--max-features`` (the feature map's options)."""
    from reloc_ros.training.options import MAP_OPTIONS

    add_options(p, MAP_OPTIONS)


def map_config_from_args(args: argparse.Namespace):
    """Return the MapConfig of ``--feature`` / ``--max-features``."""
    from reloc_ros.training.options import map_config_from_options

    return map_config_from_options(vars(args))


def build_map(model: Path, bags: Sequence[Path], source, config, progress: bool) -> dict:
    """Build, calibrate and store the model's feature map; print what was stored."""
    from reloc_ros.mapping.mapper import build_model_map, describe_map

    entry = build_model_map(model, bags, source, config, progress=progress)
    print(describe_map(entry, model))
    return entry
