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

"""The trainer node's ROS parameters, made from the train options, and what they turn into. ROS-free.

:data:`TRAINER_PARAMS` are generated from the options of ``reloc-ros train``
that carry a :class:`~reloc_ros.training.options.NodeParam`
(:data:`~reloc_ros.training.options.TRAIN_OPTIONS`), so a parameter's default,
choices and type are those of its command-line option. ``trainer_node``
declares them (all read-only), reads the values back as a plain dict and
passes it to :func:`trainer_options`, which checks them against the specs
(:func:`~reloc_ros.runtime.node_params.check_values`) and builds the
arguments of :func:`~reloc_ros.training.trainer.train` from the same option
values ``reloc-ros train`` would have, without argparse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import re
from typing import Any, Mapping, Sequence

from reloc_ros.data.bag import BagSource
from reloc_ros.mapping.build import MapConfig
from reloc_ros.runtime.node_params import ParamSpec, check_values
from reloc_ros.training.options import (CONFIG_DEST, TRAIN_OPTIONS, TrainOption, bag_source_from_options,
                                        check_option_value, default_options, map_config_from_options,
                                        read_config_file, train_config_from_options)
from reloc_ros.training.config import TrainConfig

__all__ = ["param_spec", "param_specs", "param_options", "TRAINER_PARAMS", "TrainerOptions", "trainer_options",
           "option_value", "parse_epoch_line"]


def param_spec(option: TrainOption) -> ParamSpec:
    """Return the ROS parameter spec of an option that is a trainer-node parameter (read-only).

    Default: the option's; ``''`` for a default that is None or a path (the
    option's default is then meant). Choices: the parameter's own, else the
    option's, with ``''`` first for a None default. Type: from the option's
    (a list of paths is ``str[]``, a size ``int[]``).
    """
    p = option.param
    if p is None:
        raise ValueError(f"train option '{option.dest}' is not a trainer node parameter")
    kind = ""
    default = option.default
    if option.nargs:
        kind, default = "str[]", tuple(str(v) for v in default)
    elif option.type == "size":
        kind, default = "int[]", tuple(default)
    elif default is None or isinstance(default, Path):
        if option.type not in ("str", "path"):
            raise ValueError(f"train option '{option.dest}': a {option.type} parameter needs a default")
        kind, default = "str", ""
    choices = p.choices
    if choices is None and option.choices is not None:
        choices = (("",) if option.default is None else ()) + option.choices
    return ParamSpec(p.name, default, p.description, read_only=True, min=p.min, max=p.max, choices=choices, kind=kind)


def param_specs(options: Sequence[TrainOption] = TRAIN_OPTIONS) -> tuple[ParamSpec, ...]:
    """Return the specs of the options that are trainer-node parameters, in the options' order."""
    return tuple(param_spec(o) for o in options if o.param is not None)


def param_options(options: Sequence[TrainOption] = TRAIN_OPTIONS) -> dict[str, TrainOption]:
    """Return ``{parameter name: option}`` for the options that are trainer-node parameters."""
    return {o.param.name: o for o in options if o.param is not None}


TRAINER_PARAMS: tuple[ParamSpec, ...] = param_specs(TRAIN_OPTIONS)
"""Parameters of ``trainer_node`` (defaults: ``config/train.yaml``). All are read once, at start-up."""


def option_value(option: TrainOption, value: Any) -> Any:
    """Turn a parameter's checked value into the option's: paths (``~`` expanded), a size as a tuple."""
    if option.type == "path":
        if option.nargs:
            return [Path(v).expanduser() for v in value]
        return Path(value).expanduser()
    if option.type == "size":
        return tuple(int(v) for v in value)
    return value


@dataclass(frozen=True)
class TrainerOptions:
    """Arguments of :func:`reloc_ros.training.trainer.train`, from the trainer node's parameters."""

    bags: tuple[Path, ...]
    out: Path
    source: BagSource
    config: TrainConfig
    resume: bool
    device: str
    onnx: bool
    cache_dir: Path
    allow_weak: bool = False
    map_config: MapConfig | None = None  # None for feature_map: none


def trainer_options(values: Mapping[str, Any]) -> TrainerOptions:
    """Turn the trainer node's parameter values into :func:`~reloc_ros.training.trainer.train` arguments.

    Options come from, lowest precedence first: the defaults of
    ``reloc-ros train``, ``config_file`` (the same YAML as ``reloc-ros train
    --config``), then every parameter whose value differs from its default
    and is not ''. Every value is checked as ``reloc-ros train`` checks it
    (:func:`~reloc_ros.training.options.check_option_value`: type, finite,
    range), and the model file, its checkpoint and (with onnx) its .onnx
    must be writable, before any work. Raises ``ValueError`` naming the bad
    parameter or option, the value and what is valid.
    """
    v = check_values(TRAINER_PARAMS, values)
    by_param = param_options()
    checked = {name: check_option_value(by_param[name], value, name=name, what="parameter")
               for name, value in v.items() if by_param[name].dest != CONFIG_DEST and value != ""}
    opts = default_options()
    config_param = next(name for name, o in by_param.items() if o.dest == CONFIG_DEST)
    if v[config_param]:
        path = Path(v[config_param]).expanduser()
        if not path.is_file():
            raise ValueError(f"parameter '{config_param}' = '{v[config_param]}': no such file")
        opts.update(read_config_file(path))
    for spec in TRAINER_PARAMS:
        option = by_param[spec.name]
        value = v[spec.name]
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        if option.dest == CONFIG_DEST or value == default or value == "":
            continue
        opts[option.dest] = option_value(option, checked[spec.name])
    if not opts["bags"]:
        raise ValueError("parameter 'bags' is empty: list the mapping bag(s), e.g. bags:=['/data/map_bag'] "
                         "(or the launch argument bags:=/data/a_bag,/data/b_bag)")
    if opts["out"] is None:
        raise ValueError("parameter 'output' is empty: give the model file to write, e.g. output:=/data/lab.pt "
                         "(or 'out' in config_file)")
    if opts["input_size"] is not None:
        opts["input_size"] = tuple(int(x) for x in opts["input_size"])
    cfg = train_config_from_options(opts)
    cfg.resolved()  # check now, with a clear error, not after loading the bags
    from reloc_ros.training.loop import check_outputs

    check_outputs(Path(opts["out"]), onnx=bool(opts["onnx"]))
    return TrainerOptions(bags=tuple(Path(b) for b in opts["bags"]), out=Path(opts["out"]),
                          source=bag_source_from_options(opts), config=cfg, resume=bool(opts["resume"]),
                          device=str(opts["device"]), onnx=bool(opts["onnx"]), cache_dir=Path(opts["cache_dir"]),
                          allow_weak=bool(opts["allow_weak"]),
                          map_config=None if opts["map"] == "none" else map_config_from_options(opts))


_EPOCH_RE = re.compile(r"epoch (\d+)/(\d+) loss (\S+) val (\S+) m (\S+) deg")


def parse_epoch_line(text: str) -> dict | None:
    """Read the trainer's per-epoch summary line; ``None`` for any other line.

    ``'epoch 3/30 loss 0.1234 val 0.210 m 3.10 deg spread 0.25 (4.6 s)'`` ->
    ``{'epoch': 3, 'epochs': 30, 'loss': 0.1234, 'val_m': 0.21, 'val_deg': 3.1}``.
    """
    m = _EPOCH_RE.search(text)
    if not m:
        return None
    try:
        return {"epoch": int(m.group(1)), "epochs": int(m.group(2)), "loss": float(m.group(3)),
                "val_m": float(m.group(4)), "val_deg": float(m.group(5))}
    except ValueError:
        return None
