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
(:class:`~reloc_ros.training.options.TrainOption`) into argparse arguments,
each checked by :func:`~reloc_ros.training.options.check_option_value` as a
``--config`` file and the trainer node check it; the bag-source and
feature-map arguments of every subcommand come from the same declaration as
those of ``reloc-ros train``. :class:`ArgumentParser` takes a value that
starts with '-' where one is due (``--input-size -32x32``, ``--lr -1e-3``),
so the option's own check says what is wrong with it.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
import re
from typing import Any, Callable, Sequence

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


def positive_float(text: str) -> float:
    """Argparse type: a finite number > 0 (not nan, not inf)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"'{text}' is invalid: must be a finite number > 0")
    return v


def option_type(option) -> Callable[[str], Any]:
    """Return the argparse type of a declared option: its value checked by ``check_option_value``."""
    from reloc_ros.training.options import check_option_value

    def parse(text: str) -> Any:
        try:
            return check_option_value(option, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.type
    return parse


ARG_TYPES = {"int": int, "float": float, "positive_int": positive_int, "size": parse_size, "path": Path}
"""Plain argparse types of the option types; declared options get :func:`option_type` (none for str and flag)."""

_VALUE_LIKE = re.compile(r"-(\d|\.\d|inf|nan)", re.IGNORECASE)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that an option due one value takes the next word even if it starts with '-'.

    argparse reads ``--input-size -32x32`` or ``--lr -1e-3`` as an option
    without its value ("expected one argument"); here the word is the value,
    as in ``--input-size=-32x32``, so the option's type says what is wrong
    with it (a negative size, a learning rate <= 0). Only words that start
    with '-' and a digit, '.', 'inf' or 'nan' are taken so: no option of
    reloc-ros looks like that. Subcommand parsers are of this class too.
    """

    def parse_known_args(self, args=None, namespace=None):
        """Parse as argparse does, after joining such option/value pairs into ``--option=value``."""
        import sys

        words = list(sys.argv[1:] if args is None else args)
        joined, i = [], 0
        while i < len(words):
            word = words[i]
            if word == "--":
                joined += words[i:]
                break
            action = self._value_option(word)
            if action is not None and i + 1 < len(words) and _VALUE_LIKE.match(words[i + 1]):
                joined.append(f"{word}={words[i + 1]}")
                i += 2
                continue
            joined.append(word)
            i += 1
        return super().parse_known_args(joined, namespace)

    def _value_option(self, word: str):
        """Return the action of ``word`` if it is an option (or a unique prefix of one) due exactly one value."""
        if not word.startswith("--") or "=" in word:
            return None
        actions = {flag: a for a in self._actions for flag in a.option_strings}
        names = [word] if word in actions else [f for f in actions if f.startswith(word)] if self.allow_abbrev else []
        if len(names) != 1:
            return None
        action = actions[names[0]]
        return action if action.nargs is None else None


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
            if o.type == "path":
                kwargs["type"] = Path
            elif o.type != "str":
                kwargs["type"] = option_type(o)
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
