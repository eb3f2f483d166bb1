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

"""The options of ``reloc-ros train``, declared once, as data, and what they build. No argparse.

Each :class:`TrainOption` gives its name (``dest``: the key in a plain dict of
option values, argparse's destination and the name in a ``--config`` YAML
file), default, type, help, choices, command-line flag, the field of
``TrainConfig`` / ``BagSource`` / ``MapConfig`` it fills, and, where it is one,
the trainer node's ROS parameter it is (:class:`NodeParam`). Defaults are
read from those dataclasses. From this one declaration:

* :mod:`reloc_ros.cli` adds the arguments of ``reloc-ros train`` (and the
  bag-source and feature-map arguments of the other subcommands);
* :mod:`reloc_ros.training.node_params` makes the trainer node's parameter
  specs;
* :func:`train_config_from_options`, :func:`bag_source_from_options` and
  :func:`map_config_from_options` turn a plain dict of option values
  (argparse's, a config file's, the trainer node's) into the core's options,
  and :func:`read_config_file` reads such a dict from YAML;
* :func:`check_option_value` checks one value against its option's type and
  range (``min``/``max``: finite numbers, sizes of at most
  :data:`MAX_IMAGE_SIDE` pixels), with one message naming the option, the
  value and what is valid, the same from the command line, a ``--config``
  file and the trainer node.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import math
import numbers
from pathlib import Path
from typing import Any, Mapping, Sequence

from reloc_ros.data.bag import BagSource, bag_source_from_metadata
from reloc_ros.mapping.build import MapConfig
from reloc_ros.mapping.features import FEATURE_TYPES
from reloc_ros.training.config import LOSSES, MODELS, OPTIMIZERS, SIMILARITIES, VAL_SPLITS, TrainConfig

__all__ = [
    "TYPES", "SECTIONS", "NodeParam", "TrainOption", "BACKBONES", "DEVICES", "SOURCE_GROUP", "MAP_GROUP",
    "BAG_SOURCE_OPTIONS", "MAP_OPTIONS", "TRAIN_OPTIONS", "CONFIG_DEST", "option_by_dest", "default_options",
    "MAX_IMAGE_SIDE", "MAX_NERF_RESOLUTION", "parse_size", "check_option_value", "valid_values",
    "read_config_file", "train_config_from_options", "bag_source_from_options",
    "map_config_from_options",
]

TYPES = ("str", "int", "positive_int", "float", "size", "path", "flag")
"""Option value types: text, integer, integer > 0, number, WIDTHxHEIGHT, file path, on/off flag."""

SECTIONS = ("train", "source", "map")
"""What an option fills: a ``TrainConfig``, ``BagSource`` or ``MapConfig`` field (None: an argument of train())."""

BACKBONES = ("resnet18", "resnet34", "resnet50")
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
SOURCE_GROUP = "bag source (images and ground truth)"
MAP_GROUP = "feature map (geometric verification)"
MAX_IMAGE_SIDE = 4096
"""Largest width or height of an image size (``--input-size``, the synthetic ``--size``), in pixels."""
MAX_NERF_RESOLUTION = 512
"""Finest NeRF-P grid resolution (``reloc_ros.nets.nerfp.MAX_GRID_RESOLUTION``, kept torch-free here)."""
CONFIG_DEST = "config"
"""The option naming the YAML file of options (``--config``; the trainer node's ``config_file``)."""


@dataclass(frozen=True)
class NodeParam:
    """The trainer node's ROS parameter an option is.

    Its default is the option's, except that ``''`` stands for a default that
    is None or a path; its choices are the option's (with ``''`` first when the
    option's default is None) unless given here, e.g. where the command line
    takes free text. ``min``/``max`` is the range ROS enforces.
    """

    name: str
    description: str
    min: float | None = None  # noqa: A003 (ParamSpec's names)
    max: float | None = None  # noqa: A003
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TrainOption:
    """One option of ``reloc-ros train``: see the module docstring.

    ``flags`` None means ``--dest-with-dashes``; ``()`` a positional argument.
    ``section`` and ``field`` say which ``TrainConfig`` / ``BagSource`` /
    ``MapConfig`` field it fills (``field`` defaults to ``dest``); ``negate``
    fills it with the flag's opposite (``--no-augment`` -> ``augment``).
    ``group`` is the title of its group in ``--help`` (None: the main one).
    ``min``/``max`` bound a number (inclusive, or exclusive with
    ``min_open``/``max_open``); a ``positive_int``'s ``min`` is 1 unless
    given; numbers must be finite (:func:`check_option_value`).
    """

    dest: str
    default: Any
    help: str  # noqa: A003 (argparse's names)
    type: str = "str"  # noqa: A003
    flags: tuple[str, ...] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    nargs: str | None = None
    group: str | None = None
    section: str | None = None
    field: str | None = None
    negate: bool = False
    param: NodeParam | None = None
    min: float | None = None  # noqa: A003 (as NodeParam's and ParamSpec's)
    max: float | None = None  # noqa: A003
    min_open: bool = False
    max_open: bool = False

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"train option '{self.dest}': type must be one of {', '.join(TYPES)}, got {self.type!r}")
        if self.section is not None and self.section not in SECTIONS:
            raise ValueError(f"train option '{self.dest}': section must be one of {', '.join(SECTIONS)}")
        if self.flags is None:
            object.__setattr__(self, "flags", ("--" + self.dest.replace("_", "-"),))
        if self.field is None and self.section is not None:
            object.__setattr__(self, "field", self.dest)
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
            if self.default is not None and self.default not in self.choices:
                raise ValueError(f"train option '{self.dest}': default {self.default!r} is not one of its choices")
        if (self.min is not None or self.max is not None) and self.type not in ("int", "positive_int", "float"):
            raise ValueError(f"train option '{self.dest}': a range needs an int, positive_int or float option")
        if self.type == "positive_int" and self.min is None:
            object.__setattr__(self, "min", 1)
        if self.default is not None and not self.positional:
            check_option_value(self, self.default, what="default of train option")  # a typo is said at import

    @property
    def positional(self) -> bool:
        """Whether it is a positional argument on the command line."""
        return not self.flags


def parse_size(text: str) -> tuple[int, int]:
    """'160x120' -> (160, 120); ``ValueError`` saying what is wrong (sides in [1, :data:`MAX_IMAGE_SIDE`])."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size '{text}' is not WIDTHxHEIGHT (e.g. 160x120)") from None
    if not (0 < w <= MAX_IMAGE_SIDE and 0 < h <= MAX_IMAGE_SIDE):
        raise ValueError(f"size '{text}' is out of range: width and height must be positive and at most "
                         f"{MAX_IMAGE_SIDE} pixels")
    return w, h


def _bound(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def valid_values(option: TrainOption) -> str:
    """Return what ``option`` takes, in words: 'a finite number > 0', 'an integer in [2, 100000]', ..."""
    if option.nargs:
        return "a list of paths"
    if option.type == "flag":
        return "true or false"
    if option.type == "size":
        return f"WIDTHxHEIGHT with width and height in [1, {MAX_IMAGE_SIDE}] pixels (e.g. 160x120)"
    if option.choices:
        return "one of " + ", ".join(option.choices)
    if option.type not in ("int", "positive_int", "float"):
        return "a path" if option.type == "path" else "text"
    what = "a finite number" if option.type == "float" else "an integer"
    lo, hi = option.min, option.max
    if lo is not None and hi is not None:
        return (f"{what} in {'(' if option.min_open else '['}{_bound(lo)}, {_bound(hi)}"
                f"{')' if option.max_open else ']'}")
    if lo is not None:
        return f"{what} {'>' if option.min_open else '>='} {_bound(lo)}"
    if hi is not None:
        return f"{what} {'<' if option.max_open else '<='} {_bound(hi)}"
    return what


def _show(value: Any) -> str:
    return f"'{value}'" if isinstance(value, (str, Path)) else repr(value)


def _in_range(option: TrainOption, v: float) -> bool:
    lo, hi = option.min, option.max
    if lo is not None and (v < lo or (option.min_open and v == lo)):
        return False
    return hi is None or not (v > hi or (option.max_open and v == hi))


def check_option_value(option: TrainOption, value: Any, name: str | None = None, what: str = "option") -> Any:
    """Return ``value`` as ``option`` takes it, checked; ``ValueError`` naming the option, the value and what is valid.

    Text is parsed as on the command line (``'1e-3'``, ``'64x48'``, as YAML
    leaves them); numbers must be finite and in the option's range, sizes
    WIDTHxHEIGHT text or ``[width, height]`` with both in
    [1, :data:`MAX_IMAGE_SIDE`]; None stands for "not given" where the
    default is None. ``name``: as the user wrote it (default ``dest``);
    ``what``: 'option', 'parameter', ...
    """
    def bad(valid: str | None = None) -> ValueError:
        return ValueError(f"{what} '{name or option.dest}' = {_show(value)} is invalid: must be "
                          f"{valid or valid_values(option)}")

    kind = option.type
    if value is None and option.default is None:
        return None
    if option.nargs:
        items = [value] if isinstance(value, (str, Path)) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in items):
            raise bad()
        return list(items)
    if kind == "flag":
        if not isinstance(value, bool):
            raise bad()
        return value
    if kind in ("str", "path"):
        if not isinstance(value, str) and not (kind == "path" and isinstance(value, Path)):
            raise bad()
        if option.choices and value not in option.choices:
            raise bad()
        return value
    if kind == "size":
        if isinstance(value, str):
            try:
                return parse_size(value.strip())
            except ValueError:
                raise bad() from None
        valid = f"[width, height] with both in [1, {MAX_IMAGE_SIDE}] pixels"
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2 or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
            raise bad(valid)
        w, h = (int(v) for v in value)
        if not (0 < w <= MAX_IMAGE_SIDE and 0 < h <= MAX_IMAGE_SIDE):
            raise bad(valid)
        return w, h
    integer = kind in ("int", "positive_int")
    if isinstance(value, str):
        try:
            number: float = int(value.strip()) if integer else float(value.strip())
        except ValueError:
            raise bad() from None
    elif isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
        raise bad()
    else:
        number = int(value) if integer else float(value)
    if not (math.isfinite(number) and _in_range(option, number)):
        raise bad()
    return number


_TRAIN = TrainConfig()
_SOURCE = BagSource()
_MAP = MapConfig()

BAG_SOURCE_OPTIONS: tuple[TrainOption, ...] = (
    TrainOption("image_topic", _SOURCE.image_topic, "colour image topic (Image or CompressedImage); default: the "
                "bag's only colour image topic", group=SOURCE_GROUP, section="source",
                param=NodeParam("image_topic", "Colour image topic in the bags; '' = the bags' only colour image "
                                "topic.")),
    TrainOption("map_frame", _SOURCE.map_frame, f"frame poses are expressed in (default: {_SOURCE.map_frame})",
                group=SOURCE_GROUP, section="source",
                param=NodeParam("map_frame", "Frame the ground-truth poses are expressed in.")),
    TrainOption("camera_frame", _SOURCE.camera_frame, "camera frame looked up in TF (default: the images' header "
                "frame_id)", group=SOURCE_GROUP, section="source",
                param=NodeParam("camera_frame", "Camera frame looked up in TF; '' = the images' header.frame_id.")),
    TrainOption("pose_topic", _SOURCE.pose_topic, "take ground truth from this PoseStamped / "
                "PoseWithCovarianceStamped / Odometry / TransformStamped topic instead of TF", group=SOURCE_GROUP,
                section="source",
                param=NodeParam("pose_topic", "Ground truth from this PoseStamped / PoseWithCovarianceStamped / "
                                "Odometry / TransformStamped topic instead of TF; '' = TF.")),
    TrainOption("depth_topic", _SOURCE.depth_topic, "aligned depth image topic (optional)", group=SOURCE_GROUP,
                section="source", param=NodeParam("depth_topic", "Aligned depth image topic; '' = none.")),
    TrainOption("tolerance", _SOURCE.tolerance_s, "how far ground truth may be held beyond its samples, in s "
                f"(default: {_SOURCE.tolerance_s})", type="float", metavar="S", group=SOURCE_GROUP,
                section="source", field="tolerance_s", min=0),
    TrainOption("max_gap", _SOURCE.max_gap_s, "widest gap between ground-truth samples that is interpolated, in s "
                f"(default: {_SOURCE.max_gap_s})", type="float", metavar="S", group=SOURCE_GROUP,
                section="source", field="max_gap_s", min=0, min_open=True),
)
"""Where images and ground truth come from: options of every subcommand that reads a bag."""

MAP_OPTIONS: tuple[TrainOption, ...] = (
    TrainOption("feature", _MAP.feature, f"local features of the map: sift (accurate) or orb (fast); default: "
                f"{_MAP.feature}", choices=FEATURE_TYPES, group=MAP_GROUP, section="map",
                param=NodeParam("feature", "Local features of the feature map: sift (accurate) or orb (fast).")),
    TrainOption("max_features", _MAP.max_features, f"features per image (default: {_MAP.max_features})",
                type="positive_int", group=MAP_GROUP, section="map"),
)
"""How the feature map that verifies poses is built: options of train, map and demo."""

TRAIN_OPTIONS: tuple[TrainOption, ...] = (
    TrainOption("bags", (), "bag(s) of the mapping run", type="path", flags=(), nargs="*",
                param=NodeParam("bags", "Mapping bag(s): rosbag2 directories / .mcap / .db3 files or ROS 1 .bag "
                                "files. Required.")),
    *BAG_SOURCE_OPTIONS,
    TrainOption(CONFIG_DEST, None, "YAML file of these options (command line wins)", type="path",
                param=NodeParam("config_file", "YAML file of training options as for 'reloc-ros train --config' "
                                "(e.g. lr, loss, beta, out). Precedence: a parameter set to something other than its "
                                "default (and not '') overrides the file; a parameter left at its default does "
                                "not.")),
    TrainOption("model", _TRAIN.model, f"default: {_TRAIN.model}", choices=tuple(MODELS), section="train",
                param=NodeParam("model", "Model: posenet (Kendall et al.), lrf-posenet (whole image, directional "
                                "LSTMs), camnet (coarse-to-fine retrieval and relative poses; set depth_topic) or "
                                "pmnet (PoseMap: an APR trained with a NeRF of the scene; depth_topic makes the NeRF "
                                "faster; options such as pmnet_losses go in config_file).")),
    TrainOption("out", None, "model file to write (TorchScript); its checkpoint is OUT.ckpt", type="path",
                param=NodeParam("output", "Model file to write (TorchScript .pt; its checkpoint is OUTPUT.ckpt). "
                                "Required here or as 'out' in config_file.")),
    TrainOption("epochs", _TRAIN.epochs, f"default: {_TRAIN.epochs}", type="positive_int", section="train",
                max=100000, param=NodeParam("epochs", "Training epochs.", min=1, max=100000)),
    TrainOption("input_size", _TRAIN.input_size, f"network input (default: {_TRAIN.input_size[0]}x"
                f"{_TRAIN.input_size[1]}; width and height at most {MAX_IMAGE_SIDE})", type="size", metavar="WxH",
                section="train",
                param=NodeParam("input_size", "Network input [width, height] in pixels.")),
    TrainOption("backbone", _TRAIN.backbone, "default: resnet18 for the APRs, resnet34 for camnet",
                choices=BACKBONES, section="train",
                param=NodeParam("backbone", "ResNet backbone; '' = the model's (resnet18 for the APRs, resnet34 for "
                                "camnet).")),
    TrainOption("backbone_weights", _TRAIN.backbone_weights, "torchvision ImageNet state_dict (.pth) to start from",
                section="train"),
    TrainOption("head", _TRAIN.head, "default: fc for posenet, lstm for lrf-posenet", choices=("fc", "lstm"),
                section="train"),
    TrainOption("preprocessing", _TRAIN.preprocessing, "default: crop for posenet, resize (whole image) for "
                "lrf-posenet", choices=("crop", "resize"), section="train"),
    TrainOption("loss", _TRAIN.loss, f"default: {_TRAIN.loss}", choices=LOSSES, section="train"),
    TrainOption("beta", _TRAIN.beta, "rotation weight of the beta/geometric losses (default: the loss's)",
                type="float", section="train", min=0, min_open=True),
    TrainOption("batch_size", _TRAIN.batch_size, f"default: {_TRAIN.batch_size}", type="positive_int",
                section="train", min=2, max=100000,
                param=NodeParam("batch_size", "Images per batch (>= 2: batch normalisation).", min=2, max=100000)),
    TrainOption("lr", _TRAIN.lr, "learning rate (default: Adam 5e-4 for the APRs; SGD with the poly schedule from "
                "0.01 for camnet, as its paper)", type="float", section="train", min=0, min_open=True),
    TrainOption("dropout", _TRAIN.dropout, f"default: {_TRAIN.dropout}", type="float", section="train", min=0,
                max=1, max_open=True),
    TrainOption("val_fraction", _TRAIN.val_fraction, "share of the mapping frames held out for validation "
                f"(default: {_TRAIN.val_fraction})", type="float", section="train", min=0, max=1, min_open=True,
                max_open=True),
    TrainOption("val_split", _TRAIN.val_split, "validation frames: spatial (whole regions of place and view, away "
                "from every training frame: predicts a new route) or time (contiguous time blocks, on the mapping "
                f"path: the former behaviour) (default: {_TRAIN.val_split})", choices=VAL_SPLITS, section="train"),
    TrainOption("no_augment", not _TRAIN.augment, "no colour jitter, blur and noise", type="flag", section="train",
                field="augment", negate=True),
    TrainOption("seed", _TRAIN.seed, f"default: {_TRAIN.seed}", type="int", section="train", min=0,
                max=2**32 - 1),
    TrainOption("resume", False, "continue the run whose checkpoint is OUT.ckpt", type="flag",
                param=NodeParam("resume", "Continue the run whose checkpoint is OUTPUT.ckpt (after Ctrl-C or a "
                                "crash).")),
    TrainOption("cache_dir", Path.home() / ".cache" / "reloc_ros", "decoded-frame cache (default: "
                "~/.cache/reloc_ros)", type="path",
                param=NodeParam("cache_dir", "Decoded-frame cache directory; '' = ~/.cache/reloc_ros.")),
    TrainOption("device", "auto", "auto (CUDA if available), cpu, cuda or cuda:N",
                param=NodeParam("device", "Training device: auto (CUDA if available), cpu, cuda or cuda:N.",
                                choices=DEVICES)),
    TrainOption("allow_weak", False, "accept a weak model (one that does not beat the mean mapping pose on its "
                "validation frames by the required margin): exit status 0 instead of 3; its metadata still says it "
                "is weak", type="flag",
                param=NodeParam("allow_weak", "Accept a weak model (no better than the mean mapping pose on its "
                                "validation frames): exit code 0 instead of 3; its metadata still says it is weak.")),
    TrainOption("onnx", False, "also export OUT.onnx, checked against the TorchScript", type="flag",
                param=NodeParam("onnx", "Also export OUTPUT.onnx, checked against the TorchScript model.")),
    TrainOption("map", "auto", "auto: after training, build the feature map that verifies poses (the bags need "
                "CameraInfo) and store it in OUT; none: learned poses only (default: auto)", choices=("auto", "none"),
                param=NodeParam("feature_map", "auto: after training, build the 3-D feature map that verifies poses "
                                "(the bags need CameraInfo; checked before training) and store it in the model file; "
                                "none: learned poses only.")),
    *MAP_OPTIONS,
    TrainOption("similarity", _TRAIN.similarity, "pair overlap for the retrieval losses: frustum (needs "
                "--depth-topic), orb, or auto (frustum with depth) (default: auto)", choices=SIMILARITIES,
                group="camnet", section="train"),
    TrainOption("keyframe_distance", _TRAIN.keyframe_distance, "database key frames at least this far apart, in "
                f"metres + angle/pi; 0 keeps every training frame (default: {_TRAIN.keyframe_distance})",
                type="float", metavar="ZETA", group="camnet", section="train", min=0),
    TrainOption("optimizer", _TRAIN.optimizer, "sgd (momentum 0.9, poly schedule; the paper's, and the default) or "
                "adam", choices=OPTIMIZERS, group="camnet", section="train"),
    TrainOption("retrieval_k", _TRAIN.retrieval_k, f"key frames retrieved per query (default: {_TRAIN.retrieval_k}, "
                "as the paper)", type="positive_int", group="camnet", section="train"),
    TrainOption("pmnet_losses", _TRAIN.pmnet_losses, "terms of eq. 2, comma-separated, from pose, image, posemap, "
                f"rvs (the Table 5 ablation; default: {_TRAIN.pmnet_losses})", metavar="TERMS", group="pmnet",
                section="train"),
    TrainOption("rvs_translation", _TRAIN.rvs_translation, "random view synthesis: offsets up to this per axis, "
                f"metres (default: {_TRAIN.rvs_translation}, the paper's indoors; 3.0 outdoors)", type="float",
                metavar="M", group="pmnet", section="train", min=0),
    TrainOption("rvs_rotation", _TRAIN.rvs_rotation, "random view synthesis: rotations up to this per axis "
                f"(default: {_TRAIN.rvs_rotation}; 7.5 outdoors)", type="float", metavar="DEG", group="pmnet",
                section="train", min=0, max=180),
    TrainOption("nerf_steps", _TRAIN.nerf_steps, f"NeRF-P rendering-branch steps (default: {_TRAIN.nerf_steps})",
                type="positive_int", group="pmnet", section="train"),
    TrainOption("nerf_pose_steps", _TRAIN.nerf_pose_steps, "NeRF-P pose-branch steps, rendering frozen (default: "
                f"{_TRAIN.nerf_pose_steps})", type="positive_int", group="pmnet", section="train"),
    TrainOption("nerf_resolution", _TRAIN.nerf_resolution, "finest NeRF-P grid cells along the scene's longest side "
                f"(default: {_TRAIN.nerf_resolution}); lower it when memory runs out", type="positive_int",
                metavar="CELLS", group="pmnet", section="train", min=8, max=MAX_NERF_RESOLUTION),
    TrainOption("nerf_rays", _TRAIN.nerf_rays, f"rays per NeRF-P step (default: {_TRAIN.nerf_rays}); lower it when "
                "memory runs out", type="positive_int", group="pmnet", section="train"),
)
"""Every option of ``reloc-ros train``, in the order of its ``--help``."""


def option_by_dest(options: Sequence[TrainOption] = TRAIN_OPTIONS) -> dict[str, TrainOption]:
    """Return the options keyed by ``dest``."""
    return {o.dest: o for o in options}


def default_options(options: Sequence[TrainOption] = TRAIN_OPTIONS) -> dict[str, Any]:
    """Return ``{dest: default}``: the values of an empty ``reloc-ros train`` command line."""
    return {o.dest: list(o.default) if o.nargs else o.default for o in options}


def read_config_file(path: str | Path, options: Sequence[TrainOption] = TRAIN_OPTIONS) -> dict[str, Any]:
    """Read a YAML mapping of train options (names as on the command line, - or _) into ``{dest: value}``.

    ``ValueError`` for a file that cannot be read, is not a mapping, names
    an unknown option (listing the valid ones) or gives one a bad value
    (:func:`check_option_value`: type, finite, range). Sizes may be written
    ``WIDTHxHEIGHT``, numbers as text (YAML reads ``1e-3`` so).
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read config file '{path}': {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file '{path}' must hold a mapping of option: value")
    by_dest = {o.dest: o for o in options if o.dest != CONFIG_DEST and not o.positional}
    out = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in by_dest:
            raise ValueError(f"config file '{path}': unknown option '{key}'; valid: {', '.join(sorted(by_dest))}")
        try:
            out[dest] = check_option_value(by_dest[dest], value, name=str(key))
        except ValueError as exc:
            raise ValueError(f"config file '{path}': {exc}") from None
    return out


def _section_fields(values: Mapping[str, Any], section: str, left_out_none: bool = False) -> dict[str, Any]:
    """Return the ``section`` fields the option values give; missing options take their defaults (or are left out)."""
    out = {}
    for o in TRAIN_OPTIONS:
        if o.section != section:
            continue
        if o.dest in values:
            value = values[o.dest]
        elif left_out_none:
            continue
        else:
            value = o.default
        if left_out_none and value is None:
            continue
        out[o.field] = (not value) if o.negate else value
    return out


def train_config_from_options(values: Mapping[str, Any]) -> TrainConfig:
    """Build the ``TrainConfig`` of a dict of option values (``{dest: value}``); missing ones: defaults."""
    return TrainConfig(**_section_fields(values, "train"))


def bag_source_from_options(values: Mapping[str, Any], trained_with: dict | None = None) -> BagSource:
    """Build the ``BagSource`` of a dict of option values; those missing or None come from ``trained_with``.

    ``trained_with`` is a model's ``bag_source`` metadata (never its depth
    topic); without it, BagSource's defaults. Every BagSource default that
    is not None is an option default too, so a value left out of the command
    line of train is the default either way.
    """
    fields = asdict(BagSource())
    fields.update(asdict(bag_source_from_metadata({"bag_source": trained_with or {}})))
    fields.update(_section_fields(values, "source", left_out_none=True))
    return BagSource(**fields)


def map_config_from_options(values: Mapping[str, Any]) -> MapConfig:
    """Build the ``MapConfig`` of a dict of option values (``feature``, ``max_features``); missing: defaults."""
    return MapConfig(**_section_fields(values, "map"))
