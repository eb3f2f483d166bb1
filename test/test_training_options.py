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

"""The one declaration of the train options: its defaults, the CLI made from it, and what option dicts build."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
import re

import pytest

from reloc_ros.cli import build_parser, main
from reloc_ros.data.bag import BagSource
from reloc_ros.mapping.build import MapConfig
from reloc_ros.training import options as TO
from reloc_ros.training.config import TrainConfig

DATACLASSES = {"train": TrainConfig, "source": BagSource, "map": MapConfig}


def _train_parser():
    return build_parser().parse_args(["train"]).train_parser


# --------------------------------------------------------------------------
# The declaration
# --------------------------------------------------------------------------

def test_options_are_unique_and_fill_real_fields_with_their_defaults():
    dests = [o.dest for o in TO.TRAIN_OPTIONS]
    assert len(dests) == len(set(dests))
    flags = [f for o in TO.TRAIN_OPTIONS for f in o.flags]
    assert len(flags) == len(set(flags)) and all(f.startswith("--") for f in flags)
    assert [o.dest for o in TO.TRAIN_OPTIONS if o.positional] == ["bags"]
    for o in TO.TRAIN_OPTIONS:
        assert o.help.strip() and o.type in TO.TYPES, o.dest
        if o.section is None:
            continue
        cls = DATACLASSES[o.section]
        assert o.field in {f.name for f in fields(cls)}, o.dest
        dataclass_default = getattr(cls(), o.field)
        assert ((not o.default) if o.negate else o.default) == dataclass_default, o.dest
    # The bag source and feature map options are the train options' too, in one place.
    assert set(TO.BAG_SOURCE_OPTIONS) | set(TO.MAP_OPTIONS) <= set(TO.TRAIN_OPTIONS)
    assert {o.field for o in TO.BAG_SOURCE_OPTIONS} == {f.name for f in fields(BagSource)}


def test_train_option_rejects_inconsistent_declarations():
    with pytest.raises(ValueError, match="'x': type must be one of"):
        TO.TrainOption("x", 1, "h", type="number")
    with pytest.raises(ValueError, match="'x': section must be one of"):
        TO.TrainOption("x", 1, "h", type="int", section="nerf")
    with pytest.raises(ValueError, match="'x': default 'c' is not one of its choices"):
        TO.TrainOption("x", "c", "h", choices=("a", "b"))
    o = TO.TrainOption("some_thing", None, "h", section="train")
    assert o.flags == ("--some-thing",) and o.field == "some_thing" and not o.positional


# --------------------------------------------------------------------------
# The CLI's train options come from it
# --------------------------------------------------------------------------

def test_the_train_parser_is_the_declaration():
    parser = _train_parser()
    by_dest = TO.option_by_dest()
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help",)}
    assert set(actions) == set(by_dest)     # no option is added beside the declaration
    for dest, a in actions.items():
        o = by_dest[dest]
        assert tuple(a.option_strings) == o.flags and a.help == o.help, dest
        assert (tuple(a.choices) if a.choices else None) == o.choices, dest
        if not o.positional:
            assert a.default == o.default, dest
    # An empty command line gives the declared defaults.
    parsed = vars(parser.parse_args([]))
    for key in ("func", "train_parser"):
        parsed.pop(key)
    assert parsed == TO.default_options()


def test_cli_train_values_build_what_the_option_dict_builds():
    args = build_parser().parse_args(["train", "a_bag", "--out", "m.pt", "--no-augment", "--input-size", "64x48",
                                      "--tolerance", "0.2", "--max-features", "500", "--model", "camnet"])
    from reloc_ros.cli import bag_source_from_args, map_config_from_args, train_config_from_args

    cfg = train_config_from_args(args)
    assert cfg == TrainConfig(model="camnet", augment=False, input_size=(64, 48))
    assert cfg == TO.train_config_from_options({"model": "camnet", "no_augment": True, "input_size": (64, 48)})
    assert bag_source_from_args(args) == BagSource(tolerance_s=0.2)
    assert map_config_from_args(args) == MapConfig(max_features=500) == TO.map_config_from_options(
        {"max_features": 500})


def test_cli_config_file_errors_say_the_option(tmp_path, capsys):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("input-size: 96by72\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "a_bag", "--out", str(tmp_path / "m.pt"), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "option 'input-size' = '96by72' is invalid: must be WIDTHxHEIGHT" in err


# --------------------------------------------------------------------------
# Option dicts -> TrainConfig, BagSource, MapConfig
# --------------------------------------------------------------------------

def test_missing_options_take_their_defaults():
    assert TO.train_config_from_options({}) == TrainConfig()
    assert TO.train_config_from_options(TO.default_options()) == TrainConfig()
    assert TO.train_config_from_options({"epochs": 3, "no_augment": False, "out": "ignored"}) == \
        TrainConfig(epochs=3)
    assert TO.map_config_from_options({"feature": "orb"}) == MapConfig(feature="orb")
    assert TO.bag_source_from_options({}) == BagSource()


def test_bag_source_left_out_options_come_from_the_model():
    trained = {"image_topic": "/cam", "map_frame": "world", "tolerance_s": 0.3, "depth_topic": "/depth"}
    s = TO.bag_source_from_options({"image_topic": None, "map_frame": None, "max_gap": 2.0}, trained_with=trained)
    assert (s.image_topic, s.map_frame, s.tolerance_s, s.max_gap_s) == ("/cam", "world", 0.3, 2.0)
    assert s.depth_topic is None   # a query bag need not have the training depth
    s = TO.bag_source_from_options({"map_frame": "odom", "depth_topic": "/d"}, trained_with=trained)
    assert (s.map_frame, s.image_topic, s.depth_topic) == ("odom", "/cam", "/d")


def test_default_options_are_fresh_lists():
    a, b = TO.default_options(), TO.default_options()
    assert a["bags"] == [] and a["bags"] is not b["bags"]
    assert a["cache_dir"] == Path.home() / ".cache" / "reloc_ros" and a["out"] is None


# --------------------------------------------------------------------------
# Config files and sizes
# --------------------------------------------------------------------------

def test_read_config_file(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("epochs: 7\nval-fraction: 0.2\ninput-size: 96x72\nmax_features: 100\nout: /x/m.pt\n")
    assert TO.read_config_file(cfg) == {"epochs": 7, "val_fraction": 0.2, "input_size": (96, 72),
                                        "max_features": 100, "out": "/x/m.pt"}
    cfg.write_text("")
    assert TO.read_config_file(cfg) == {}


@pytest.mark.parametrize("text, pattern", [
    ("epoch: 3\n", r"unknown option 'epoch'; valid: allow_weak, backbone, backbone_weights, batch_size, beta, "
                   r"cache_dir"),
    ("bags: [a]\n", r"unknown option 'bags'"),
    ("config: other.yaml\n", r"unknown option 'config'"),
    ("- epochs\n", r"must hold a mapping of option: value"),
    ("epochs: [\n", r"cannot read config file"),
    ("input_size: -3x10\n", r"option 'input_size' = '-3x10' is invalid: must be WIDTHxHEIGHT with width and "
                            r"height in \[1, 4096\] pixels"),
    ("input_size: [100000, 100000]\n", r"option 'input_size' = \[100000, 100000\] is invalid: must be \[width, "
                                       r"height\] with both in \[1, 4096\] pixels"),
    ("epochs: 2.5\n", r"option 'epochs' = 2.5 is invalid: must be an integer in \[1, 100000\]"),
    ("no-augment: 'yes'\n", r"option 'no-augment' = 'yes' is invalid: must be true or false"),
    ("backbone: resnet99\n", r"option 'backbone' = 'resnet99' is invalid: must be one of resnet18, resnet34"),
])
def test_read_config_file_errors(tmp_path, text, pattern):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        TO.read_config_file(cfg)


def test_read_config_file_missing(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read config file '.*nope\.yaml'"):
        TO.read_config_file(tmp_path / "nope.yaml")


def test_parse_size():
    assert TO.parse_size("160x120") == (160, 120) and TO.parse_size("64X48") == (64, 48)
    assert TO.parse_size("4096x4096") == (4096, 4096)  # the largest
    for bad, pattern in (("160by120", "not WIDTHxHEIGHT"), ("1x2x3", "not WIDTHxHEIGHT"), ("0x5", "positive"),
                         ("-32x32", "positive"), ("100000x100000", "at most 4096 pixels"), ("4097x10", "at most 4096")):
        with pytest.raises(ValueError, match=pattern):
            TO.parse_size(bad)


# --------------------------------------------------------------------------
# Bad values: refused alike by the command line, a --config file and the trainer node
# --------------------------------------------------------------------------

BAD_VALUES = [  # (dest, value as typed, what is valid)
    ("tolerance", "nan", "a finite number >= 0"),
    ("tolerance", "-1", "a finite number >= 0"),
    ("max_gap", "0", "a finite number > 0"),
    ("max_gap", "inf", "a finite number > 0"),
    ("epochs", "0", "an integer in [1, 100000]"),
    ("epochs", "1000001", "an integer in [1, 100000]"),
    ("input_size", "-32x32", "WIDTHxHEIGHT with width and height in [1, 4096] pixels"),
    ("input_size", "100000x100000", "WIDTHxHEIGHT with width and height in [1, 4096] pixels"),
    ("beta", "-1", "a finite number > 0"),
    ("beta", "nan", "a finite number > 0"),
    ("batch_size", "1", "an integer in [2, 100000]"),
    ("lr", "nan", "a finite number > 0"),
    ("lr", "-1e-3", "a finite number > 0"),
    ("lr", "0", "a finite number > 0"),
    ("dropout", "1", "a finite number in [0, 1)"),
    ("dropout", "-0.1", "a finite number in [0, 1)"),
    ("val_fraction", "0", "a finite number in (0, 1)"),
    ("val_fraction", "1.5", "a finite number in (0, 1)"),
    ("seed", "-1", "an integer in [0, 4294967295]"),
    ("seed", "1.5", "an integer in [0, 4294967295]"),
    ("max_features", "0", "an integer >= 1"),
    ("keyframe_distance", "-inf", "a finite number >= 0"),
    ("retrieval_k", "0", "an integer >= 1"),
    ("rvs_translation", "nan", "a finite number >= 0"),
    ("rvs_rotation", "200", "a finite number in [0, 180]"),
    ("nerf_steps", "0", "an integer >= 1"),
    ("nerf_pose_steps", "-5", "an integer >= 1"),
    ("nerf_resolution", "4", "an integer in [8, 512]"),
    ("nerf_rays", "0", "an integer >= 1"),
]


def test_every_numeric_option_has_bad_values_checked():
    numeric = {o.dest for o in TO.TRAIN_OPTIONS if o.type in ("int", "positive_int", "float", "size")}
    assert numeric == {dest for dest, _, _ in BAD_VALUES}


@pytest.mark.parametrize("dest, value, valid", BAD_VALUES)
def test_bad_values_are_refused_alike_by_the_cli_a_config_file_and_the_trainer_node(
        tmp_path, capsys, dest, value, valid):
    from reloc_ros.training.node_params import trainer_options

    said = re.compile(rf"option '{dest}' = '?{re.escape(value)}'? is invalid: must be {re.escape(valid)}")
    flag = "--" + dest.replace("_", "-")
    # The command line: the value after a space, even when it starts with '-' (argparse took it for an option).
    with pytest.raises(SystemExit) as exc:
        main(["train", "a_bag", "--out", str(tmp_path / "m.pt"), flag, value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and said.search(err), err
    assert "expected one argument" not in err
    # A --config file, with the CLI and alone.
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"{dest}: {value}\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "a_bag", "--out", str(tmp_path / "m.pt"), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and said.search(err), err
    with pytest.raises(ValueError, match=said.pattern):
        TO.read_config_file(cfg)
    # The trainer node (whose config_file is the same YAML).
    with pytest.raises(ValueError, match=said.pattern):
        trainer_options({"bags": ["a_bag"], "output": str(tmp_path / "m.pt"), "config_file": str(cfg)})


def test_good_values_pass_the_checks_unchanged(tmp_path):
    args = build_parser().parse_args([
        "train", "a_bag", "--out", "m.pt", "--lr", "1e-3", "--tolerance", "0", "--seed", "0", "--input-size=4096x1",
        "--dropout", "0", "--batch-size", "2", "--epochs", "100000", "--beta", "0.5", "--rvs-rotation", "180",
        "--nerf-resolution", "512", "--max-gap", "1e-3"])
    assert (args.lr, args.tolerance, args.seed, args.input_size, args.dropout, args.batch_size, args.epochs) == \
        (1e-3, 0.0, 0, (4096, 1), 0.0, 2, 100000)
    assert (args.beta, args.rvs_rotation, args.nerf_resolution, args.max_gap) == (0.5, 180.0, 512, 1e-3)
    # YAML reads 1e-3 as text: a number all the same, as on the command line.
    cfg = tmp_path / "t.yaml"
    cfg.write_text("lr: 1e-3\nbeta: 2\nseed: 7\ninput_size: [64, 48]\nbackbone: null\n")
    assert TO.read_config_file(cfg) == {"lr": 1e-3, "beta": 2.0, "seed": 7, "input_size": (64, 48), "backbone": None}


def test_check_option_value_and_the_declaration_of_ranges():
    by_dest = TO.option_by_dest()
    assert TO.check_option_value(by_dest["lr"], "0.01") == 0.01 and TO.check_option_value(by_dest["epochs"], 3) == 3
    assert TO.check_option_value(by_dest["input_size"], [64, 48]) == (64, 48)
    with pytest.raises(ValueError, match=r"^parameter 'epochs' = True is invalid: must be an integer in"):
        TO.check_option_value(by_dest["epochs"], True, what="parameter")
    with pytest.raises(ValueError, match="'x': a range needs an int, positive_int or float option"):
        TO.TrainOption("x", "a", "h", min=0)
    with pytest.raises(ValueError, match=r"default of train option 'x' = -1.0 is invalid: must be a finite number "
                                         r">= 0"):
        TO.TrainOption("x", -1.0, "h", type="float", min=0)
    assert TO.TrainOption("x", 3, "h", type="positive_int").min == 1
    # The trainer node's ROS ranges are the options' own.
    for o in TO.TRAIN_OPTIONS:
        if o.param is not None and o.param.min is not None:
            assert (o.param.min, o.param.max) == (o.min, o.max), o.dest
    from reloc_ros.nets.nerfp import MAX_GRID_RESOLUTION

    assert TO.MAX_NERF_RESOLUTION == MAX_GRID_RESOLUTION
    assert "at most 4096" in by_dest["input_size"].help  # the limit is in --help too


def test_a_value_starting_with_a_dash_is_taken_as_the_value():
    parser = build_parser()
    assert parser.parse_args(["train", "--input-size", "64x48", "--seed", "-0"]).seed == 0
    # Nothing else is joined: a flag after a flag stays a flag, '--' ends the options.
    args = parser.parse_args(["train", "--out", "m.pt", "--onnx", "--", "-1bag"])
    assert args.onnx and args.bags == [Path("-1bag")]
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--out", "--onnx"])
